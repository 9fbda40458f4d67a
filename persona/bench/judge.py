"""The optional LLM judge: pairwise in both orders, and a 1-10 score per answer.

Pairwise: every question is judged twice, with the before answer shown first (A) and then
with the after answer first. The verdicts are mapped back to models; the outcome is
- "after" / "before": both orders chose the same model;
- "tie": both orders said tie;
- "inconsistent": anything else (the verdict followed the position, or one order said tie).
Ties and inconsistent verdicts are counted separately and never count as wins; a judge with a
position bias therefore produces inconsistent verdicts, not wins.
Rubrics: persona/prompts/judge_pair.md and judge_score.md.
"""

from __future__ import annotations

import json
import re

from persona import prompts
from persona.providers.base import Failure
from persona.spec import PersonaSpec

OUTCOMES = ("after", "before", "tie", "inconsistent")
_OBJ_RE = re.compile(r"\{.*\}", re.S)


def _obj(content: str) -> dict | None:
    m = _OBJ_RE.search(content or "")
    if not m:
        return None
    try:
        obj = json.loads(m.group(0))
    except json.JSONDecodeError:
        return None
    return obj if isinstance(obj, dict) else None


def parse_pair(content: str) -> str | Failure:
    obj = _obj(content)
    w = str((obj or {}).get("winner", "")).strip().upper()
    if w in ("A", "B"):
        return w
    if w == "TIE":
        return "tie"
    return Failure(f"judge answer without winner A/B/tie: {content[:80]!r}", retry=True)


def parse_score(content: str) -> int | Failure:
    obj = _obj(content) or {}
    try:
        score = int(obj.get("score"))
    except (TypeError, ValueError):
        return Failure(f"judge answer without a score: {content[:80]!r}", retry=True)
    if not 1 <= score <= 10:
        return Failure(f"judge score {score} outside 1-10", retry=True)
    return score


def pair_messages(spec: PersonaSpec, question: str, a: str, b: str) -> list[dict]:
    task = {"task": "judge_pair", "persona": spec.persona.name,
            "signature": spec.persona.signature, "question": question,
            "answer_a": a, "answer_b": b}
    return prompts.messages("judge_pair", spec, task)


def score_messages(spec: PersonaSpec, question: str, answer: str) -> list[dict]:
    task = {"task": "judge_score", "persona": spec.persona.name,
            "signature": spec.persona.signature, "question": question, "answer": answer}
    return prompts.messages("judge_score", spec, task)


def outcome(first: str | Failure, swapped: str | Failure) -> str | None:
    """The model an order-swapped pair of verdicts chose. `first` saw A=before, B=after;
    `swapped` saw A=after, B=before. None when a verdict is missing (failed)."""
    if isinstance(first, Failure) or isinstance(swapped, Failure):
        return None
    one = {"A": "before", "B": "after", "tie": "tie"}[first]
    two = {"A": "after", "B": "before", "tie": "tie"}[swapped]
    return one if one == two else "inconsistent"


def judge_all(prov, spec: PersonaSpec, questions: list[str], before: list[str],
              after: list[str]) -> dict:
    """Pairwise outcomes (both orders) and single scores of both sides, per question."""
    pair_msgs = ([pair_messages(spec, q, b, a) for q, b, a in zip(questions, before, after,
                                                                   strict=True)]
                 + [pair_messages(spec, q, a, b) for q, b, a in zip(questions, before, after,
                                                                     strict=True)])
    verdicts = prov.complete("judge_pair", pair_msgs, parse_pair)
    n = len(questions)
    outcomes = [outcome(verdicts[i], verdicts[n + i]) for i in range(n)]
    score_msgs = ([score_messages(spec, q, b) for q, b in zip(questions, before, strict=True)]
                  + [score_messages(spec, q, a) for q, a in zip(questions, after, strict=True)])
    scores = [None if isinstance(s, Failure) else s
              for s in prov.complete("judge_score", score_msgs, parse_score)]
    return {"outcome": outcomes,
            "order1": [v if isinstance(v, str) else None for v in verdicts[:n]],
            "order2": [v if isinstance(v, str) else None for v in verdicts[n:]],
            "score_before": scores[:n], "score_after": scores[n:]}


def tally(outcomes: list[str | None]) -> dict:
    """Counts per outcome, with the after-model's win rate over decisive verdicts."""
    from persona.bench.scores import wilson

    counts = {k: sum(1 for o in outcomes if o == k) for k in OUTCOMES}
    counts["failed"] = sum(1 for o in outcomes if o is None)
    decisive = counts["after"] + counts["before"]
    lo, hi = wilson(counts["after"], decisive)
    return {**counts, "decisive": decisive,
            "win_rate_after": round(counts["after"] / decisive, 4) if decisive else None,
            "ci95": [lo, hi]}


JUDGE_PARAMS = {"temperature": 0.0, "max_tokens": 200}
