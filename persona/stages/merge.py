"""Stage 4: one dataset in `final/<persona>/`: dedup, split, pure OpenAI chat JSONL.

Streams in two passes, so memory stays flat with the count: pass 1 dedups the dialogues in
batch order into temporary files of pairs and metadata; pass 2 assigns splits and writes
all/train/val/test + meta.

The split is held out by template: every template goes to one split, so no val or test
answer shares its template with train (and stage 3 never asks one question twice, so no
test question is in train either). `holdout_topics=N` also keeps N topics (the first
`journalist.match` category) out of train: their pairs go to val/test, and a pair of a
held-out topic whose template is in train is dropped, so both guarantees hold.
"""

from __future__ import annotations

import json
import random
from array import array
from collections import Counter
from pathlib import Path

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


DROP = 3  # split code of a pair left out (held-out topic, template in train)


def assign_template_splits(templates: array, ratios: tuple[float, float, float], seed: int,
                           topics: array | None = None, holdout: frozenset[int] = frozenset()
                           ) -> tuple[bytearray, list[str]]:
    """Split code per item (0 train, 1 val, 2 test, 3 dropped), whole templates at a time.

    Templates are shuffled (seeded) and dealt to test, then val, until each has its share of
    items; the rest is train. A split with a share > 0 gets at least one template when there
    are enough; otherwise a note says why it is empty. Items of a `holdout` topic never go to
    train: in a val/test template they stay, in a train template they are dropped."""
    n = len(templates)
    uses = Counter(templates)
    order = sorted(uses)
    random.Random(f"{seed}:split-templates").shuffle(order)
    _, want_val, want_test = split_sizes(n, ratios)
    notes: list[str] = []
    needed = [c for c in (0, 2, 1) if ratios[c] > 0]  # train first, then test, then val
    split_of: dict[int, int] = {}
    if len(order) < len(needed):
        notes.append(f"only {len(order)} distinct template(s) for {len(needed)} non-empty "
                     f"splits; a split by template leaves "
                     f"{', '.join(SPLITS[c] for c in needed[len(order):])} empty")
        split_of = {t: needed[i] for i, t in enumerate(order)}
    else:
        want = {2: max(want_test, 1 if ratios[2] > 0 else 0),
                1: max(want_val, 1 if ratios[1] > 0 else 0)}
        have = {1: 0, 2: 0}
        for pos, t in enumerate(order):
            left = len(order) - pos
            open_ = [c for c in (2, 1) if have[c] < want[c]]
            target = open_[0] if open_ else 0
            # what the templates after this one must still cover: train, and every other
            # split that is still empty
            later = (1 if ratios[0] > 0 else 0) + sum(
                have[c] == 0 for c in open_ if c != target)
            if target and left - 1 < later:  # give it to a split that has none yet
                target = next((c for c in open_ if have[c] == 0), 0)
            split_of[t] = target
            if target:
                have[target] += uses[t]
    out = bytearray(n)
    dropped = 0
    for i, t in enumerate(templates):
        code = split_of[t]
        if code == 0 and topics is not None and topics[i] in holdout:
            code = DROP
            dropped += 1
        out[i] = code
    if dropped:
        notes.append(f"{dropped} pair(s) of held-out topics dropped: their template is in train")
    return out, notes


def run(spec: PersonaSpec, ws: Workspace, *, count: int | None = None, seed: int,
        ratios: tuple[float, float, float] = (0.8, 0.1, 0.1), holdout_topics: int = 0,
        on_progress: Progress = no_progress) -> StageReport:
    fill_params = Workspace.fingerprint(ws.answers)
    if not Workspace.fingerprint(ws.dialogues) or not fill_params:
        raise WorkspaceError("no dialogues yet: run `persona questions` first",
                             file=str(ws.dialogues))
    total = fill_params["count"]
    count = count or total
    n_batches = -(-total // fill_params["batch_size"])
    report = StageReport("merge")
    # Fill deduplicated its answers over the whole run; a dialogue still holding its fill
    # answer's text needs no second look. Only when one was edited since (by hand, by
    # another tool) does merge start again and dedup everything.
    collected = _collect(spec, ws, n_batches, count, None, on_progress)
    if collected is None:
        collected = _collect(spec, ws, n_batches, count, DedupIndex(spec.persona.signature),
                             on_progress)
    templates, topics, template_codes, topic_codes, removed = collected
    side, pairs = _tmp_files(ws)
    topic_cat = spec.journalist.match[0] if spec.journalist.match else None
    report.reasons = {f"{k} duplicate": v for k, v in sorted(removed.items())}
    report.rejected = sum(removed.values())
    if len(templates) < count:
        report.notes.append(f"only {len(templates)} unique pairs of {count} asked")
    held = choose_holdout(topic_codes, holdout_topics, seed)
    splits, notes = assign_template_splits(templates, ratios, seed, topics,
                                           frozenset(topic_codes[t] for t in held))
    report.notes += notes
    counts = _write_splits(ws, pairs, side, splits, set(held), topic_cat)
    report.made = sum(counts[s] for s in SPLITS)
    report.split = {"by": "template", "ratios": list(ratios), "holdout_topics": held,
                    "topic_category": topic_cat if held else None,
                    "dropped": counts.get("dropped", 0),
                    "templates": {s: len({templates[i] for i in range(len(splits))
                                          if splits[i] == c}) for c, s in enumerate(SPLITS)}}
    side.unlink()
    pairs.unlink()
    return report


def _tmp_files(ws: Workspace) -> tuple[Path, Path]:
    return ws.final / ".meta.tmp.jsonl", ws.final / ".all.tmp.jsonl"


def _collect(spec: PersonaSpec, ws: Workspace, n_batches: int, count: int,
             index: DedupIndex | None, on_progress: Progress):
    """Every dialogue in order into the temporary pairs and meta files, up to `count`, with
    `index` deduplicating them; without one, None as soon as a dialogue no longer holds the
    text its answer had when fill accepted it (then the caller dedups everything)."""
    templates, topics = array("I"), array("I")
    template_codes: dict[str, int] = {}
    topic_codes: dict[str, int] = {}
    topic_cat = spec.journalist.match[0] if spec.journalist.match else None
    removed: Counter = Counter()
    side, pairs = _tmp_files(ws)
    ws.final.mkdir(parents=True, exist_ok=True)
    with open(pairs, "w", encoding="utf-8") as out, open(side, "w", encoding="utf-8") as meta:
        for b in range(n_batches):
            if len(templates) >= count:
                break
            answers = {a["id"]: a for _, a in _read(Workspace.batch(ws.answers, b))}
            for lineno, d in _read(Workspace.batch(ws.dialogues, b)):
                a = answers.get(d.get("answer_id"))
                if a is None:
                    raise InputError("dialogue refers to an unknown answer", line=lineno,
                                     file=str(Workspace.batch(ws.dialogues, b)),
                                     field="answer_id")
                if index is None and a.get("text") != d.get("answer"):
                    return None
                verdict = index.offer(d["answer"]) if index is not None else None
                if verdict is not None and verdict.kind is not None:
                    removed[verdict.kind] += 1
                    continue
                out.write(dumps(chat_example(spec.persona.system_prompt, d["question"],
                                             d["answer"])) + "\n")
                meta.write(dumps(_meta(d, a)) + "\n")
                templates.append(template_codes.setdefault(a["template_id"],
                                                           len(template_codes)))
                topic = a["values"].get(topic_cat, "") if topic_cat else ""
                topics.append(topic_codes.setdefault(topic, len(topic_codes)))
                if len(templates) == count:
                    break
            on_progress(min(len(templates), count), count)
    return templates, topics, template_codes, topic_codes, removed


def choose_holdout(topic_codes: dict[str, int], n: int, seed: int) -> list[str]:
    """N topics (seeded) kept out of train, sorted; an error when there are not enough."""
    if n <= 0:
        return []
    seen = sorted(t for t in topic_codes if t)
    if n >= len(seen):
        raise InputError(f"--holdout-topics {n}: the dataset has only {len(seen)} topics; "
                         "keep at least one for train")
    return sorted(random.Random(f"{seed}:holdout-topics").sample(seen, n))


def _read(path):
    if not path.exists():
        raise WorkspaceError("batch missing: finish the earlier stages first", file=str(path))
    return iter_jsonl(path)


def _meta(d: dict, a: dict) -> dict:
    return {"id": d["id"], "split": None, "answer_id": a["id"], "template_id": a["template_id"],
            "style": a["style"], "slip": a["slip"], "values": a["values"]}


def _write_splits(ws: Workspace, pairs, side, splits: bytearray, held: set[str],
                  topic_cat: str | None) -> Counter:
    names = dict(enumerate(SPLITS))
    counts: Counter = Counter()
    with (atomic_writer(ws.final / "all.jsonl") as all_out,
          atomic_writer(ws.final / "meta.jsonl") as meta_out,
          atomic_writer(ws.final / "train.jsonl") as train,
          atomic_writer(ws.final / "val.jsonl") as val,
          atomic_writer(ws.final / "test.jsonl") as test,
          open(pairs, encoding="utf-8") as all_in,
          open(side, encoding="utf-8") as meta_in):
        outs = {0: train, 1: val, 2: test}
        for i, (line, mline) in enumerate(zip(all_in, meta_in, strict=True)):
            if splits[i] == DROP:
                counts["dropped"] += 1
                continue
            outs[splits[i]].write(line)
            all_out.write(line)
            m = json.loads(mline)
            m["split"] = names[splits[i]]
            if held:
                m["heldout_topic"] = m["values"].get(topic_cat) in held
            meta_out.write(dumps(m) + "\n")
            counts[names[splits[i]]] += 1
    return counts
