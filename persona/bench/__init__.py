"""persona bench: before/after on held-out questions (docs/benchmark.md).

Nothing here imports torch, sklearn or openpyxl at module level.
"""

from __future__ import annotations

from persona.errors import PersonaError


class BenchDepsMissing(PersonaError):
    """The [bench] extra (scikit-learn, openpyxl, ...) is not installed."""


def require_bench_deps() -> None:
    """Raise BenchDepsMissing (one line, exit 2) unless the bench's libraries import."""
    import importlib.util

    missing = [pkg for mod, pkg in (("sklearn", "scikit-learn"), ("openpyxl", "openpyxl"),
                                    ("matplotlib", "matplotlib"))
               if importlib.util.find_spec(mod) is None]
    if missing:
        raise BenchDepsMissing(f"missing {', '.join(missing)}: install with "
                               "pip install -e '.[bench]'")
