"""Held-out questions: the test split of a `final/<persona>/` dataset, never a training one.

The test split's questions are read with their reference answers and, where `meta.jsonl`
records them, their ids and slot values. Where meta.jsonl marks items of held-out topics
(`heldout_topic`, from `persona merge --holdout-topics N`: topics kept out of train), those
in the val split are included too; so is any further split meta.jsonl names. A question that also
occurs in train.jsonl (after case and whitespace folding) is refused and counted: a benchmark
on questions the model was trained on measures memory, not style transfer.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from persona.errors import InputError
from persona.io import iter_jsonl

TRAIN_SPLITS = ("train", "val")


@dataclass
class Question:
    id: str
    question: str
    reference: str
    split: str = "test"
    values: dict = field(default_factory=dict)


@dataclass
class HeldOut:
    questions: list[Question]
    refused: int  # questions dropped because they occur in train
    system_prompt: str | None  # the dataset's most common system prompt
    train_answers: list[str]  # the persona's training answers (the style classifier's class 1)
    hashes: dict[str, str]  # file name -> sha256 of its bytes
    splits: dict[str, int]  # held-out questions per split


def norm(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip().casefold()


def _pair(path: Path, lineno: int, obj: dict) -> tuple[str, str, str | None]:
    """(question, answer, system) of one chat example; InputError naming the line if not."""
    msgs = obj.get("messages")
    if not isinstance(msgs, list):
        raise InputError("expected a 'messages' list", file=str(path), line=lineno)
    by_role = {}
    for m in msgs:
        if isinstance(m, dict) and isinstance(m.get("content"), str):
            by_role.setdefault(m.get("role"), m["content"])
    if "user" not in by_role or "assistant" not in by_role:
        raise InputError("needs a user and an assistant message", file=str(path), line=lineno,
                         field="messages")
    return by_role["user"], by_role["assistant"], by_role.get("system")


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def held_out(final_dir: Path, limit: int | None = None) -> HeldOut:
    final_dir = Path(final_dir)
    if not final_dir.is_dir():
        raise InputError("not a dataset folder (expected final/<persona>/ with train.jsonl "
                         "and test.jsonl)", file=str(final_dir))
    train_f, test_f, meta_f = (final_dir / n for n in ("train.jsonl", "test.jsonl",
                                                        "meta.jsonl"))
    for f in (train_f, test_f):
        if not f.is_file():
            raise InputError(f"no {f.name} in the dataset folder", file=str(final_dir))
    train_q: set[str] = set()
    train_answers: list[str] = []
    systems: Counter = Counter()
    for lineno, obj in iter_jsonl(train_f):
        q, a, s = _pair(train_f, lineno, obj)
        train_q.add(norm(q))
        train_answers.append(a)
        if s:
            systems[s] += 1
    meta = _meta_by_split(meta_f)
    questions: list[Question] = []
    refused = 0
    for split in _held_out_splits(final_dir, meta):
        rows = [(lineno, *_pair(final_dir / f"{split}.jsonl", lineno, obj))
                for lineno, obj in iter_jsonl(final_dir / f"{split}.jsonl")]
        metas = meta.get(split, [])
        use_meta = len(metas) == len(rows)
        for i, (lineno, q, a, _s) in enumerate(rows):
            m = metas[i] if use_meta else {}
            held_topic = bool(m.get("heldout_topic"))
            if split == "val" and not held_topic:
                continue  # val counts only for its held-out topics
            if norm(q) in train_q:
                refused += 1
                continue
            label = f"{split} (held-out topic)" if held_topic else split
            questions.append(Question(m.get("id") or f"{split}-{lineno:05d}", q, a, label,
                                      m.get("values") or {}))
    if not questions:
        raise InputError(f"no held-out question left ({refused} occur in train)",
                         file=str(test_f))
    if limit:
        questions = questions[:limit]
    hashes = {f.name: sha256(f) for f in (train_f, final_dir / "val.jsonl", test_f, meta_f)
              if f.is_file()}
    return HeldOut(questions, refused, systems.most_common(1)[0][0] if systems else None,
                   train_answers, hashes, dict(Counter(q.split for q in questions)))


def _meta_by_split(meta_f: Path) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    if not meta_f.is_file():
        return out
    for _, m in iter_jsonl(meta_f):
        out.setdefault(str(m.get("split")), []).append(m)
    return out


def _held_out_splits(final_dir: Path, meta: dict[str, list[dict]]) -> list[str]:
    """test; val when meta.jsonl marks held-out topics in it; any other split meta.jsonl
    names whose file exists (train never)."""
    out = ["test"]
    if any(m.get("heldout_topic") for m in meta.get("val", [])) and \
            (final_dir / "val.jsonl").is_file():
        out.append("val")
    out += sorted(s for s in meta if s not in (*TRAIN_SPLITS, "test", "None")
                  and (final_dir / f"{s}.jsonl").is_file())
    return out
