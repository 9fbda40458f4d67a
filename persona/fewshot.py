"""The few-shot contender (`persona prompt`): a system prompt holding K train examples chosen
for coverage, to compare a prompted base model with a fine-tuned one.

Examples come from the train split only (a benchmark asks test questions). They are picked
greedily, each time the example that adds the most not yet shown — a style (counted twice:
the style is what the prompt must teach), a template, a topic — among those that still fit
the token budget; ties are broken by a seeded shuffle, so a seed gives the same prompt.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path

from persona.errors import InputError

HEADER = "Examples of questions and how you answer them:"


@dataclass
class FewShot:
    text: str
    shots: list[dict]
    tokens: int
    covered: dict[str, tuple[int, int]] = field(default_factory=dict)  # what: (shown, in train)


def _train_examples(final_dir: Path) -> list[tuple[dict, dict]]:
    from persona.pairs import read_examples

    return [(ex, meta) for ex, meta in read_examples(final_dir) if meta.get("split") == "train"]


def build(final_dir: Path, shots: int, *, max_tokens: int = 2000, seed: int = 42,
          model: str = "gpt-4o-mini") -> FewShot:
    from persona.checks.tokens import count_text, encoding_for_model

    examples = _train_examples(Path(final_dir))
    if not examples:
        raise InputError("no train examples to show", file=str(final_dir))
    enc = encoding_for_model(model)[0]
    system = next((m["content"] for m in examples[0][0]["messages"] if m["role"] == "system"),
                  "")
    order = list(range(len(examples)))
    random.Random(f"{seed}:fewshot").shuffle(order)

    def block(ex: dict) -> str:
        q, a = ex["messages"][-2]["content"], ex["messages"][-1]["content"]
        return f"Q: {q}\nA: {a}"

    def traits(meta: dict) -> dict[str, str]:
        values = meta.get("values") or {}
        return {"style": str(meta.get("style")), "template": str(meta.get("template_id")),
                "topic": str(values.get("tema") or next(iter(values.values()), ""))}

    head = f"{system}\n\n{HEADER}" if system else HEADER
    used = count_text(head, enc)
    seen: dict[str, set[str]] = {"style": set(), "template": set(), "topic": set()}
    picked: list[int] = []
    costs = {i: count_text("\n\n" + block(examples[i][0]), enc) for i in order}
    while len(picked) < shots:
        best, best_gain = None, -1
        for i in order:
            if i in picked or used + costs[i] > max_tokens:
                continue
            t = traits(examples[i][1])
            gain = sum((2 if k == "style" else 1) for k, v in t.items() if v not in seen[k])
            if gain > best_gain:
                best, best_gain = i, gain
        if best is None:
            break  # the budget is full
        picked.append(best)
        used += costs[best]
        for k, v in traits(examples[best][1]).items():
            seen[k].add(v)
    text = head + "".join("\n\n" + block(examples[i][0]) for i in picked)
    everything = [traits(m) for _, m in examples]
    covered = {k: (len(seen[k]), len({t[k] for t in everything})) for k in seen}
    return FewShot(text, [{"question": examples[i][0]["messages"][-2]["content"],
                           **traits(examples[i][1])} for i in picked],
                   count_text(text, enc), covered)


def write(final_dir: Path, out: Path, shots: int, *, max_tokens: int = 2000, seed: int = 42
          ) -> FewShot:
    from persona.io import atomic_writer

    got = build(final_dir, shots, max_tokens=max_tokens, seed=seed)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_writer(out) as fh:
        fh.write(got.text + "\n")
    return got

