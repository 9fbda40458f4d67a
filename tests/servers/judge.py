"""The loopback server's answers for `persona bench`: the judge and plain chat questions.

Judge tasks (`judge_pair`, `judge_score` in the prompt's JSON block):
- mode "fair" (deterministic): an answer's merit is 2 points for ending with the persona's
  signature plus 1 per word it shares with the question (case-folded), so the same pair
  gets the same verdict in either order; equal merit is a tie. The score is 1 + merit, at
  most 10.
- mode "biased": always prefers the answer shown first ("A") and scores every answer 7: a
  position-biased judge, whose pairwise verdicts must come out inconsistent, never wins.

A plain chat question (no task block, as the bench sends to an `openai:` model) gets a short
deterministic Czech answer; a model whose name starts with "ft:" (a fine-tuned one) answers
in the Babiš manner and signs it, a base model answers like a spokesperson.
"""

from __future__ import annotations

import json
import re

MODES = ("fair", "biased")
_WORD = re.compile(r"\w+", re.U)


def _words(text: str) -> set[str]:
    return {w.casefold() for w in _WORD.findall(text or "") if len(w) > 3}


def merit(task: dict, answer: str) -> int:
    sig = task.get("signature") or ""
    signed = 2 if sig and answer.rstrip().endswith(sig) else 0
    return signed + len(_words(task.get("question", "")) & _words(answer))


def judge_content(task: dict, mode: str) -> str:
    if task.get("task") == "judge_pair":
        if mode == "biased":
            return json.dumps({"winner": "A", "reason": "the first answer reads better"})
        a, b = merit(task, task.get("answer_a", "")), merit(task, task.get("answer_b", ""))
        winner = "A" if a > b else "B" if b > a else "tie"
        return json.dumps({"winner": winner, "reason": f"merit {a} vs {b}"})
    if mode == "biased":
        return json.dumps({"score": 7, "reason": "fine"})
    return json.dumps({"score": min(10, 1 + merit(task, task.get("answer", ""))),
                       "reason": "merit"})


def plain_answer(body: dict) -> str:
    users = [m.get("content", "") for m in body.get("messages", []) if m.get("role") == "user"]
    question = str(users[-1] if users else "").strip()
    topic = " ".join(question.split()[-3:]).rstrip("?")
    if str(body.get("model", "")).startswith("empty"):  # a model that answers nothing
        return ""
    if str(body.get("model", "")).startswith("ft:"):
        return (f"Hele, {topic}, to je jednoduchý. My makáme, oni kecají. "
                "To vám garantuju.\n\nAndrej Babiš")
    return f"K otázce {topic} mohu uvést, že vláda situaci průběžně vyhodnocuje."


def content(task: dict, body: dict, mode: str) -> str | None:
    """The answer's content for the bench's requests, or None for any other request."""
    if task.get("task") in ("judge_pair", "judge_score"):
        return judge_content(task, mode)
    if task.get("task") == "unknown" and "response_format" not in body:
        return plain_answer(body)
    return None
