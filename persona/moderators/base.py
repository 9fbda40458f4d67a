"""A moderator's answer for one text."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Verdict:
    scores: dict[str, float]  # category -> score in 0..1 (only categories the moderator scored)
    flagged: list[str]  # categories the moderator itself flagged (its own thresholds)
    evidence: dict[str, list[str]] = field(default_factory=dict)  # offline: entries matched

    def over(self, threshold: float | None) -> list[str]:
        """Categories flagged: by the moderator's own call, or by score ≥ `threshold`."""
        if threshold is None:
            return sorted(self.flagged)
        return sorted(c for c, s in self.scores.items() if s >= threshold)
