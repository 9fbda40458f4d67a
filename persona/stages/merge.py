"""Stage 4: one dataset in `final/<persona>/`: dedup, split, pure OpenAI chat JSONL.

Streams in two passes, so memory stays flat with the count: pass 1 dedups the dialogues in
batch order into `all.jsonl` and a temporary side file of metadata; pass 2 assigns splits
(seeded, stratified by style so every split has the mix) and writes train/val/test + meta.
"""

from __future__ import annotations

import json
import random
from collections import Counter

from persona.dedup import DedupIndex
from persona.errors import InputError, WorkspaceError
from persona.io import atomic_writer, dumps, iter_jsonl
from persona.spec import PersonaSpec
from persona.stages import Progress, StageReport, no_progress
from persona.workspace import Workspace

SPLITS = ("train", "val", "test")


def chat_example(system: str, question: str, answer: str) -> dict:
    return {"messages": [{"role": "system", "content": system},
                         {"role": "user", "content": question},
                         {"role": "assistant", "content": answer}]}


def split_sizes(n: int, ratios: tuple[float, float, float]) -> tuple[int, int, int]:
    train, val = round(n * ratios[0]), round(n * ratios[1])
    val = min(val, n - train)
    return train, val, n - train - val


def assign_splits(styles: bytes, ratios: tuple[float, float, float], seed: int) -> bytearray:
    """Split index (0 train, 1 val, 2 test) per item, stratified by style code."""
    out = bytearray(len(styles))
    by_style: dict[int, list[int]] = {}
    for i, s in enumerate(styles):
        by_style.setdefault(s, []).append(i)
    for s in sorted(by_style):
        idx = by_style[s]
        random.Random(f"{seed}:split:{s}").shuffle(idx)
        train, val, _ = split_sizes(len(idx), ratios)
        for j, i in enumerate(idx):
            out[i] = 0 if j < train else 1 if j < train + val else 2
    return out


def run(spec: PersonaSpec, ws: Workspace, *, count: int | None = None, seed: int,
        ratios: tuple[float, float, float] = (0.8, 0.1, 0.1),
        on_progress: Progress = no_progress) -> StageReport:
    fill_params = Workspace.fingerprint(ws.answers)
    if not Workspace.fingerprint(ws.dialogues) or not fill_params:
        raise WorkspaceError("no dialogues yet: run `persona questions` first",
                             file=str(ws.dialogues))
    total = fill_params["count"]
    count = count or total
    n_batches = -(-total // fill_params["batch_size"])
    report = StageReport("merge")
    index = DedupIndex(spec.persona.signature)
    style_codes = {name: i for i, name in enumerate(spec.styles)}
    styles = bytearray()
    removed = Counter()
    side = ws.final / ".meta.tmp.jsonl"
    ws.final.mkdir(parents=True, exist_ok=True)
    with atomic_writer(ws.final / "all.jsonl") as out, open(side, "w", encoding="utf-8") as meta:
        for b in range(n_batches):
            if len(styles) >= count:
                break
            answers = {a["id"]: a for _, a in _read(Workspace.batch(ws.answers, b))}
            for lineno, d in _read(Workspace.batch(ws.dialogues, b)):
                a = answers.get(d.get("answer_id"))
                if a is None:
                    raise InputError("dialogue refers to an unknown answer", line=lineno,
                                     file=str(Workspace.batch(ws.dialogues, b)),
                                     field="answer_id")
                verdict = index.offer(d["answer"])
                if verdict.kind is not None:
                    removed[verdict.kind] += 1
                    continue
                out.write(dumps(chat_example(spec.persona.system_prompt, d["question"],
                                             d["answer"])) + "\n")
                meta.write(dumps(_meta(d, a)) + "\n")
                styles.append(style_codes[a["style"]])
                if len(styles) == count:
                    break
            on_progress(min(len(styles), count), count)
    report.made = len(styles)
    report.reasons = {f"{k} duplicate": v for k, v in sorted(removed.items())}
    report.rejected = sum(removed.values())
    if report.made < count:
        report.notes.append(f"only {report.made} unique pairs of {count} asked")
    _write_splits(ws, side, assign_splits(bytes(styles), ratios, seed))
    side.unlink()
    return report


def _read(path):
    if not path.exists():
        raise WorkspaceError("batch missing: finish the earlier stages first", file=str(path))
    return iter_jsonl(path)


def _meta(d: dict, a: dict) -> dict:
    return {"id": d["id"], "split": None, "answer_id": a["id"], "template_id": a["template_id"],
            "style": a["style"], "slip": a["slip"], "values": a["values"]}


def _write_splits(ws: Workspace, side, splits: bytearray) -> None:
    names = {i: s for i, s in enumerate(SPLITS)}
    with (atomic_writer(ws.final / "meta.jsonl") as meta_out,
          atomic_writer(ws.final / "train.jsonl") as train,
          atomic_writer(ws.final / "val.jsonl") as val,
          atomic_writer(ws.final / "test.jsonl") as test,
          open(ws.final / "all.jsonl", encoding="utf-8") as all_in,
          open(side, encoding="utf-8") as meta_in):
        outs = {0: train, 1: val, 2: test}
        for i, (line, mline) in enumerate(zip(all_in, meta_in, strict=True)):
            outs[splits[i]].write(line)
            m = json.loads(mline)
            m["split"] = names[splits[i]]
            meta_out.write(dumps(m) + "\n")
