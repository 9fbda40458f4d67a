"""Small formatting helpers for messages people read."""

from __future__ import annotations


def plural(n: int, noun: str, nouns: str | None = None) -> str:
    """"1 example", "2,393 examples" (`nouns`: an irregular plural)."""
    return f"{n:,} {noun if n == 1 else (nouns or noun + 's')}"
