"""The generation stages: templates -> fill -> questions -> merge. One module each."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field

# on_progress(done, total): stages report progress through this; the CLI draws the bar.
Progress = Callable[[int, int], None]
# Tries per item (an answer slot, a question) before it goes to invalid/.
MAX_ATTEMPTS = 8


def no_progress(done: int, total: int) -> None:
    return None


@dataclass
class StageReport:
    stage: str
    made: int = 0  # items this call produced
    kept: int = 0  # items from batches a previous run had finished
    batches_written: int = 0
    batches_skipped: int = 0
    retried: int = 0
    rejected: int = 0
    reasons: dict[str, int] = field(default_factory=dict)
    usage: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    split: dict = field(default_factory=dict)  # merge: how train/val/test were made

    @property
    def total(self) -> int:
        return self.made + self.kept

    def count_reason(self, reason: str, n: int = 1) -> None:
        self.reasons[reason] = self.reasons.get(reason, 0) + n

    def add_stats(self, path) -> None:
        """Add a batch's `.stats.json` (retries, rejections, reasons), if it exists."""
        if not path.exists():
            return
        stats = json.loads(path.read_text(encoding="utf-8"))
        self.retried += stats.get("retried", 0)
        self.rejected += stats.get("rejected", 0)
        for reason, n in stats.get("reasons", {}).items():
            self.count_reason(reason, n)

    def to_dict(self) -> dict:
        return {"stage": self.stage, "items": self.total, "made": self.made, "kept": self.kept,
                "batches_written": self.batches_written, "batches_skipped": self.batches_skipped,
                "retried": self.retried, "rejected": self.rejected,
                "reasons": dict(sorted(self.reasons.items())), "usage": self.usage,
                "notes": self.notes}


def usage_mark(provider) -> dict | None:
    """The LLM provider's running totals (None for a provider without usage, e.g. offline)."""
    stats = getattr(provider, "stats", None)
    if stats is None:
        return None
    return {"requests": stats["requests"], "cached": stats["cached"],
            "malformed_reasked": stats.get("malformed_reasked", 0),
            "prompt_tokens": stats["prompt_tokens"],
            "completion_tokens": stats["completion_tokens"], "cost_usd": provider.spent}


def usage_since(provider, mark: dict | None) -> dict:
    """What one batch used: requests answered by the server and from the cache, tokens, USD."""
    if mark is None:
        return {}
    now = usage_mark(provider)
    out = {k: now[k] - mark[k] for k in mark}
    out["cost_usd"] = round(out["cost_usd"], 6)
    return out
