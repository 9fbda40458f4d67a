"""Datasets for the moderation tests and benchmark: a built-in persona's offline dataset with
harmful answers (tests/data/moderation/planted.jsonl) planted at seeded lines."""

from __future__ import annotations

import json
import random
from pathlib import Path

DATA = Path(__file__).parent / "data" / "moderation"


def rows(name: str) -> list[dict]:
    with open(DATA / name, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def build(workspace: Path, persona: str = "babis", count: int = 3000) -> Path:
    """final/<persona>/ made offline (a few seconds for 3,000)."""
    from persona.pipeline import RunOptions, run
    from persona.providers.offline import OfflineProvider
    from persona.spec import load_spec
    from persona.workspace import Workspace

    spec = load_spec(persona)
    ws = Workspace(workspace, spec.id)
    run(spec, ws, OfflineProvider(), RunOptions(count=count, batch_size=1000))
    return ws.final


def plant(final: Path, texts: list[dict], seed: int = 7, marker: bool = True
          ) -> dict[int, str]:
    """Put each harmful text into the answer of a seeded line of all.jsonl (before the
    signature), in all.jsonl and in its split file alike; {line in all.jsonl: category}."""
    all_lines = (final / "all.jsonl").read_text(encoding="utf-8").splitlines()
    picks = random.Random(seed).sample(range(len(all_lines)), len(texts))
    planted = {}
    for i, row in zip(picks, texts, strict=True):
        ex = json.loads(all_lines[i])
        answer = ex["messages"][-1]["content"]
        body, sep, sig = answer.rpartition("\n\n")
        extra = row["text"] + (f" [[flag:{row['category']}]]" if marker else "")
        ex["messages"][-1]["content"] = f"{body} {extra}{sep}{sig}"
        all_lines[i] = json.dumps(ex, ensure_ascii=False)
        planted[i + 1] = row["category"]
    _rewrite(final, all_lines)
    return planted


def _rewrite(final: Path, all_lines: list[str]) -> None:
    metas = (final / "meta.jsonl").read_text(encoding="utf-8").splitlines()
    splits: dict[str, list[str]] = {"train": [], "val": [], "test": []}
    for line, meta in zip(all_lines, metas, strict=True):
        splits[json.loads(meta)["split"]].append(line)
    (final / "all.jsonl").write_text("\n".join(all_lines) + "\n", encoding="utf-8")
    for name, lines in splits.items():
        (final / f"{name}.jsonl").write_text("".join(x + "\n" for x in lines),
                                             encoding="utf-8")
