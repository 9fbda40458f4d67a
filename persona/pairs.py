"""Preference pairs from a finished dataset: the persona's answer chosen, another voice's
answer to the same question rejected (`persona pairs`).

For every train and val example of FINAL_DIR (never test: no held-out question becomes a
training pair) the prompt is the example's system and user messages, *chosen* its
assistant answer, *rejected* an answer in another voice on the same topic. The source
implemented here is `neutral`: the built-in neutral spokesperson written by the offline
grammar, free and deterministic, its topic value set to the example's own (meta.jsonl), so
the pair differs in voice, not in subject — the contrast a style preference step learns.
Any other source is a model that answers the example's own prompt (its system prompt and
question): a local model folder, a `finetune --out` folder or a hub id (the base model:
on-policy rejected answers, the standard way to teach a style), or `openai:MODEL` through
the request pool (cache, `--max-cost`, a cost estimate first). Its answers are kept in
OUT/rejected-answers.jsonl as they arrive, so a rerun asks only the missing ones; a pair
whose rejected answer is empty or equals the chosen one is left out and counted.

Written (all atomically, `OUT` defaults to FINAL_DIR/pairs):
- `train.jsonl`, `val.jsonl`: TRL's conversational preference format, one
  `{"prompt": [system, user], "chosen": [assistant], "rejected": [assistant]}` per line
  (DPOTrainer / ORPOTrainer read it as it is);
- `llamafactory/`: LLaMA-Factory's ShareGPT ranking format (`conversations` with the user
  turn, `system`, `chosen` / `rejected` as `{"from": "gpt", "value"}`) and its
  dataset_info.json entries `<name>_train` / `<name>_val` (`"ranking": true`);
- `openai/`: OpenAI's preference (DPO) fine-tuning JSONL (`input.messages`,
  `preferred_output`, `non_preferred_output`);
- `pairs.json`: counts, source, seed, the input's sha256, how many rejected answers name
  the example's topic.
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass, field
from pathlib import Path

from persona.errors import InputError
from persona.io import atomic_writer, iter_jsonl, write_json

SOURCES = ("neutral",)  # built in; anything else names a model (bench.generate.parse_model)
SPLITS = ("train", "val")
MAX_COMPOSE = 30


@dataclass
class PairsResult:
    out: Path
    counts: dict[str, int] = field(default_factory=dict)
    on_topic: int | None = 0  # None: a model wrote the rejected answers (not counted)
    files: list[Path] = field(default_factory=list)
    about: dict = field(default_factory=dict)  # a model source: asked, reused, left out


def read_examples(final_dir: Path) -> list[tuple[dict, dict]]:
    """(example, meta) of every line of FINAL_DIR/all.jsonl, with meta.jsonl's line beside it
    (line i of one is line i of the other)."""
    final_dir = Path(final_dir)
    paths = [final_dir / "all.jsonl", final_dir / "meta.jsonl"]
    for p in paths:
        if not p.is_file():
            raise InputError("not a finished dataset folder (persona run writes all.jsonl "
                             "and meta.jsonl there)", file=str(p))
    examples, metas = (list(iter_jsonl(p)) for p in paths)
    if len(examples) != len(metas):
        raise InputError(f"all.jsonl has {len(examples)} lines and meta.jsonl {len(metas)}: "
                         "line i of one must be line i of the other", file=str(paths[1]))
    out = []
    for (n, ex), (_, meta) in zip(examples, metas, strict=True):
        msgs = ex.get("messages")
        roles = [m.get("role") for m in msgs if isinstance(m, dict)] \
            if isinstance(msgs, list) else []
        if roles[-2:] != ["user", "assistant"]:
            raise InputError("expected messages ending with a user and an assistant turn",
                             file=str(paths[0]), line=n, field="messages")
        out.append((ex, meta))
    return out


def neutral_writer(seed: int):
    """A function (i, values) -> (the neutral spokesperson's answer on the example's topic,
    whether it names it): a neutral template that names the topic, composed by the offline
    grammar; the topic's value is the persona's own (its forms), where the categories share a
    name and forms."""
    from persona import text as T
    from persona.providers.offline import OfflineProvider, compose_answer
    from persona.spec import load_spec

    neutral = load_spec("neutral")
    templates = OfflineProvider().write_templates(neutral, neutral.grammar.count, seed)
    by_topic = {name: [t for t in templates if name in T.categories(t)]
                for name in neutral.placeholders}
    styles = list(neutral.styles)

    def write(i: int, values: dict[str, dict[str, str]]) -> tuple[str, bool]:
        rng = random.Random(f"{seed}:pairs:{i}")
        shared = [n for n in values if by_topic.get(n)
                  and set(neutral.placeholders[n].forms) <= set(values[n])]
        fixed = {n: {f: values[n][f] for f in neutral.placeholders[n].forms} for n in shared}
        pool = by_topic[shared[0]] if shared else templates
        for _ in range(MAX_COMPOSE):
            made = compose_answer(neutral, rng.choice(styles), rng.choice(pool), rng, fixed)
            if made is not None:
                return made[0], any(n in made[1] for n in shared)
        raise InputError("the neutral persona could not compose an answer")  # a spec bug

    return write


def build(final_dir: Path, *, source: str = "neutral", seed: int = 42
          ) -> tuple[dict[str, list[dict]], int]:
    """{split: [pair]} of the train and val examples (TRL's conversational form), and how
    many rejected answers name the example's topic."""
    from persona.providers.offline import lookup_values
    from persona.spec import load_spec

    if source not in SOURCES:
        raise InputError(f"unknown --rejected source {source!r}; choose one of "
                         f"{', '.join(SOURCES)} or a model", field="--rejected")
    examples = read_examples(final_dir)
    persona_id = next((m.get("id", "").rsplit("-d", 1)[0] for _, m in examples), "")
    try:
        spec = load_spec(persona_id)
    except Exception:  # noqa: BLE001 - a custom spec's dataset: topics by key only
        spec = None
    write = neutral_writer(seed)
    out: dict[str, list[dict]] = {s: [] for s in SPLITS}
    on_topic = 0
    for i, (ex, meta) in enumerate(examples):
        split = meta.get("split")
        if split not in out:
            continue  # test (and anything else) never becomes a training pair
        keys = meta.get("values") or {}
        try:
            values = lookup_values(spec, keys) if spec is not None else {}
        except KeyError:
            values = {}
        rejected, named = write(i, values)
        on_topic += named
        msgs = ex["messages"]
        out[split].append({"prompt": msgs[:-1], "chosen": [msgs[-1]],
                           "rejected": [{"role": "assistant", "content": rejected}]})
    return out, on_topic


@dataclass
class ModelSource:
    """A model that writes the rejected answers, and how (bench's generation path)."""

    spec: str
    out: Path
    base_url: str | None = None
    api_key_env: str = "OPENAI_API_KEY"
    concurrency: int = 16
    max_cost: float | None = None
    max_new_tokens: int = 256
    batch_size: int = 16
    seed: int = 42
    dry_run: bool = False
    on_estimate: object = None  # callable(list[dict]) before any answer is asked
    on_progress: object = None  # callable(done, total)


def training_examples(final_dir: Path) -> list[tuple[str, dict]]:
    """(split, example) of every train and val example, in file order."""
    return [(m.get("split"), ex) for ex, m in read_examples(final_dir)
            if m.get("split") in SPLITS]


def build_from_model(final_dir: Path, src: ModelSource) -> tuple[dict[str, list[dict]], dict]:
    """{split: [pair]} with a model's answer to each example's own prompt as rejected, and
    what happened (answers asked / reused, pairs left out and why)."""
    from persona.bench.generate import (
        AnswerStore,
        Decoding,
        answer_side,
        parse_model,
        pending,
        remote_estimate,
    )

    try:
        ref = parse_model(src.spec)
    except InputError as e:
        raise InputError(f"{e.message}; or 'neutral', the built-in spokesperson",
                         file=e.file, field="--rejected") from None
    rows = training_examples(final_dir)
    dec = Decoding(max_new_tokens=src.max_new_tokens, seed=src.seed,
                   batch_size=src.batch_size)
    # one generation call per system prompt (a dataset has one, as a rule)
    groups: dict[str | None, list[int]] = {}
    for i, (_, ex) in enumerate(rows):
        msgs = ex["messages"]
        system = next((m["content"] for m in msgs[:-2] if m.get("role") == "system"), None)
        groups.setdefault(system, []).append(i)
    questions = [ex["messages"][-2]["content"] for _, ex in rows]
    remote = {"base_url": src.base_url, "api_key_env": src.api_key_env,
              "concurrency": src.concurrency, "max_cost": src.max_cost,
              "cache_dir": src.out / "cache"}
    store = AnswerStore(src.out / "rejected-answers.jsonl")
    asks = [(system, questions[i]) for system, idx in groups.items() for i in idx]
    est = remote_estimate(ref, asks, dec, store, "rejected")
    estimate = [est] if est else []
    if estimate and callable(src.on_estimate):
        src.on_estimate(estimate)
    if src.dry_run:
        return {s: [] for s in SPLITS}, {"estimate": estimate, "dry_run": True}
    answers: list[str] = [""] * len(rows)
    reused = 0
    model_tok = None
    if ref.kind == "local" and pending(ref, asks, dec, store):
        from persona.bench.generate import load_local

        model_tok = load_local(ref)
    for system, idx in groups.items():
        got, n = answer_side(ref, [f"pair-{i}" for i in idx], [questions[i] for i in idx],
                             system, dec, store, remote=remote, on_progress=src.on_progress,
                             model_tok=model_tok)
        reused += n
        for i, a in zip(idx, got, strict=True):
            answers[i] = a
    out: dict[str, list[dict]] = {s: [] for s in SPLITS}
    empty = same = 0
    for (split, ex), rejected in zip(rows, answers, strict=True):
        msgs = ex["messages"]
        text = (rejected or "").strip()
        if not text:
            empty += 1
            continue
        if text == msgs[-1]["content"].strip():
            same += 1
            continue
        out[split].append({"prompt": msgs[:-1], "chosen": [msgs[-1]],
                           "rejected": [{"role": "assistant", "content": text}]})
    if not any(out.values()):
        raise InputError(f"the rejected source {src.spec} answered nothing usable: {empty} "
                         f"empty answers, {same} equal to the chosen one", field="--rejected")
    return out, {"asked": len(rows) - reused, "reused": reused, "left_out_empty": empty,
                 "left_out_same_as_chosen": same, "model": ref.describe()}


def llamafactory_row(pair: dict) -> dict:
    system = next((m["content"] for m in pair["prompt"] if m["role"] == "system"), "")
    turns = [{"from": "human" if m["role"] == "user" else "gpt", "value": m["content"]}
             for m in pair["prompt"] if m["role"] != "system"]
    row = {"conversations": turns,
           "chosen": {"from": "gpt", "value": pair["chosen"][0]["content"]},
           "rejected": {"from": "gpt", "value": pair["rejected"][0]["content"]}}
    return {**row, "system": system} if system else row


def openai_row(pair: dict) -> dict:
    return {"input": {"messages": pair["prompt"]},
            "preferred_output": pair["chosen"],
            "non_preferred_output": pair["rejected"]}


def write(final_dir: Path, out: Path | None = None, *, source: str = "neutral",
          seed: int = 42, model: ModelSource | None = None) -> PairsResult:
    """Build the pairs (the neutral voice, or `model` when given) and write every format."""
    final_dir = Path(final_dir)
    out = Path(out) if out is not None else final_dir / "pairs"
    about: dict = {}
    if model is not None:
        read_examples(final_dir)  # a bad dataset fails before a model is loaded or asked
        model.out = out
        pairs, about = build_from_model(final_dir, model)
        on_topic = None
        if about.get("dry_run"):
            return PairsResult(out, {s: 0 for s in SPLITS}, 0, [], about)
    else:
        pairs, on_topic = build(final_dir, source=source, seed=seed)
    if not any(pairs.values()):
        raise InputError("no train or val examples to make pairs of", file=str(final_dir))
    name = final_dir.name
    result = PairsResult(out, {s: len(p) for s, p in pairs.items()}, on_topic, [], about)

    def jsonl(path: Path, rows) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_writer(path) as fh:
            for row in rows:
                fh.write(json.dumps(row, ensure_ascii=False) + "\n")
        result.files.append(path)

    info = {}
    for split, rows in pairs.items():
        jsonl(out / f"{split}.jsonl", rows)
        jsonl(out / "llamafactory" / f"{split}.jsonl", map(llamafactory_row, rows))
        jsonl(out / "openai" / f"{split}.jsonl", map(openai_row, rows))
        info[f"{name}_{split}"] = {
            "file_name": f"{split}.jsonl", "formatting": "sharegpt", "ranking": True,
            "columns": {"messages": "conversations", "chosen": "chosen",
                        "rejected": "rejected", "system": "system"}}
    write_json(out / "llamafactory" / "dataset_info.json", info)
    result.files.append(out / "llamafactory" / "dataset_info.json")
    digest = hashlib.sha256((final_dir / "all.jsonl").read_bytes()).hexdigest()
    write_json(out / "pairs.json", {"source": source, "seed": seed, "pairs": result.counts,
                                    "rejected_on_topic": on_topic,
                                    "input_sha256": digest, "splits": list(SPLITS),
                                    **({"rejected_model": about} if about else {})})
    result.files.append(out / "pairs.json")
    return result
