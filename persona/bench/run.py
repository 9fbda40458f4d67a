"""`persona bench`: held-out questions -> both sides' answers -> scores -> bench.json.

The sheet, CSV and report are written from the result by sheet.py; rescore.py reads human
scores back and writes them again. Heavy libraries are imported inside the functions.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from persona.bench import scores as S
from persona.bench.generate import (
    AnswerStore,
    Decoding,
    ModelRef,
    answer_side,
    parse_model,
    pending,
    remote_estimate,
)
from persona.bench.questions import HeldOut, held_out
from persona.errors import InputError
from persona.io import iter_jsonl

SIDES = ("before", "after")  # the two-sided form: --before / --after
# Names a side may not take: they are keys of a row or of a score's summary.
RESERVED = frozenset({"id", "split", "question", "reference", "scores", "judge", "header",
                      "n", "delta", "deltas", "higher_is_better", "human", "tie",
                      "inconsistent"})
_NAME_RE = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,31}")


def parse_sides(models: tuple[str, ...] | list[str]) -> dict[str, str]:
    """`--model NAME=SPEC` values, in order; InputError naming the bad one."""
    sides: dict[str, str] = {}
    for raw in models:
        name, eq, spec = raw.partition("=")
        name, spec = name.strip(), spec.strip()
        if not eq or not spec:
            raise InputError(f"--model {raw!r}: expected NAME=SPEC, e.g. sft=runs/babis",
                             field="--model")
        if not _NAME_RE.fullmatch(name) or name in RESERVED:
            raise InputError(f"--model {raw!r}: a side name is a letter then letters, digits, "
                             "'-' or '_' (at most 32), and none of "
                             f"{', '.join(sorted(RESERVED))}", field="--model")
        if name in sides:
            raise InputError(f"--model {name!r} given twice", field="--model")
        sides[name] = spec
    if len(sides) < 2:
        raise InputError("a bench needs at least two sides (--model NAME=SPEC twice, or "
                         "--before and --after)", field="--model")
    return sides


@dataclass
class BenchOptions:
    before: str | None = None  # the two-sided form; `sides` replaces both
    after: str | None = None
    out: Path = Path("bench")
    sides: dict[str, str] = field(default_factory=dict)  # name -> model spec, in order
    reference: str | None = None  # the side every other is compared with (default: first)
    persona: str | None = None  # spec id/path; default: the dataset folder's name
    system: str | None = None  # None: the dataset's system prompt; "" for none
    decoding: Decoding = field(default_factory=Decoding)
    base_url: str | None = None
    api_key_env: str = "OPENAI_API_KEY"
    concurrency: int = 16
    max_cost: float | None = None
    judge: str | None = None
    judge_base_url: str | None = None
    neutral: Path | None = None
    embed_model: str | None = None
    topic_category: str | None = None
    limit: int | None = None


Stage = Callable[[str, int], Callable[[int, int], None]]


def _no_stage(name: str, total: int) -> Callable[[int, int], None]:
    return lambda done, total: None


def neutral_answers(opts: BenchOptions, count: int) -> tuple[list[str], str]:
    """The style classifier's neutral class: assistant answers of --neutral's train split, or
    the built-in neutral persona generated offline into OUT/neutral-data."""
    folder = opts.neutral
    if folder is None:
        from persona.pipeline import RunOptions
        from persona.pipeline import run as run_pipeline
        from persona.providers.offline import OfflineProvider
        from persona.spec import load_spec
        from persona.workspace import Workspace

        spec = load_spec("neutral")
        ws = Workspace(Path(opts.out) / "neutral-data", spec.id)
        if not (ws.final / "train.jsonl").is_file():
            run_pipeline(spec, ws, OfflineProvider(), RunOptions(count=max(100, count)))
        folder = ws.final
    folder = Path(folder)
    f = folder / "train.jsonl" if folder.is_dir() else folder
    if not f.is_file():
        raise InputError("no train.jsonl for the neutral class", file=str(folder))
    out = []
    for lineno, obj in iter_jsonl(f):
        msgs = obj.get("messages") if isinstance(obj, dict) else None
        answers = [m.get("content") for m in msgs or [] if isinstance(m, dict)
                   and m.get("role") == "assistant" and isinstance(m.get("content"), str)]
        if not answers:
            raise InputError("no assistant message", file=str(f), line=lineno)
        out.append(answers[0])
    if len(out) < 10:
        raise InputError(f"the neutral class needs at least 10 answers, got {len(out)}",
                         file=str(f))
    return out, str(f)


def split_prompt(spec: str) -> tuple[str, str | None]:
    """`runs/base+prompt:fewshot.md` -> ("runs/base", "fewshot.md"): a model with its own
    system prompt (the few-shot contender of `persona prompt`)."""
    model, sep, prompt = spec.partition("+prompt:")
    if sep and not prompt.strip():
        raise InputError(f"{spec!r}: +prompt: needs a file, e.g. runs/base+prompt:fewshot.md",
                         field="--model")
    return model, (prompt.strip() or None)


def read_prompt(path: str) -> str:
    f = Path(path)
    if not f.is_file():
        raise InputError("no such system prompt file", file=path, field="--model")
    try:
        text = f.read_text(encoding="utf-8").strip()
    except UnicodeDecodeError:
        raise InputError("the system prompt file is not UTF-8 text", file=path,
                         field="--model") from None
    if not text:
        raise InputError("the system prompt file is empty", file=path, field="--model")
    return text


def run_bench(final_dir: Path, opts: BenchOptions, stage: Stage = _no_stage,
              on_estimate: Callable[[list[dict]], None] | None = None) -> dict[str, Any]:
    from persona.spec import load_spec

    t0 = time.time()
    final_dir = Path(final_dir)
    data: HeldOut = held_out(final_dir, opts.limit)
    sides, ref_side = side_names(opts)
    split = {side: split_prompt(opts.sides[side]) for side in sides}
    refs = {side: parse_model(split[side][0]) for side in sides}
    side_prompts = {side: read_prompt(split[side][1]) for side in sides if split[side][1]}
    spec = load_spec(opts.persona or final_dir.name)
    if opts.embed_model and not Path(opts.embed_model).is_dir():
        raise InputError("--embed-model must be a local model folder", file=opts.embed_model)
    if opts.neutral is not None and not Path(opts.neutral).exists():
        raise InputError("no such neutral dataset", file=str(opts.neutral))
    system = data.system_prompt if opts.system is None else (opts.system or None)
    systems = {side: side_prompts.get(side, system) for side in sides}
    qs = [q.question for q in data.questions]
    ids = [q.id for q in data.questions]
    out = Path(opts.out)
    out.mkdir(parents=True, exist_ok=True)
    remote = {"base_url": opts.base_url, "api_key_env": opts.api_key_env,
              "concurrency": opts.concurrency, "max_cost": opts.max_cost,
              "cache_dir": out / "cache"}
    answers: dict[str, list[str]] = {}
    reused: dict[str, int] = {}
    loaded: dict[str, Any] = {}
    timing: dict[str, float] = {}
    stores = {side: AnswerStore(out / "answers" / f"{side}.jsonl") for side in sides}
    asks = {side: [(systems[side], q) for q in qs] for side in sides}
    estimates = [e for side in sides if (e := remote_estimate(refs[side], asks[side],
                                                              opts.decoding, stores[side], side))]
    if on_estimate and estimates:
        on_estimate(estimates)
    for side in sides:
        ref = refs[side]
        t = time.time()
        mt = None
        if ref.kind == "local" and pending(ref, asks[side], opts.decoding, stores[side]):
            from persona.bench.generate import load_local

            mt = load_local(ref)
            loaded[side] = mt
        answers[side], reused[side] = answer_side(
            ref, ids, qs, systems[side], opts.decoding, stores[side],
            remote=remote, on_progress=stage(f"answers {side}", len(qs)), model_tok=mt)
        timing[f"answers_{side}_s"] = round(time.time() - t, 2)
    neutral, neutral_src = neutral_answers(opts, len(data.train_answers))
    t = time.time()
    clf = S.StyleClassifier(spec, opts.decoding.seed).fit(data.train_answers, neutral)
    cols = score_answers(spec, clf, qs, answers, opts, refs, loaded, stage, system)
    timing["scores_s"] = round(time.time() - t, 2)
    judged = None
    if opts.judge:
        t = time.time()
        judged = run_judge(spec, qs, answers, opts, stage, sides, ref_side)
        timing["judge_s"] = round(time.time() - t, 2)
    rows = []
    for i, q in enumerate(data.questions):
        row = {"id": q.id, "split": q.split, "question": q.question, "reference": q.reference,
               **{side: answers[side][i] for side in sides},
               "scores": {k: v[i] for k, v in cols.items()},
               "judge": None, **{f"human_{side}": None for side in sides}}
        if judged:
            # one verdict per side against the reference: the winner's side name, "tie",
            # "inconsistent", or None (failed)
            row["judge"] = {side: {k: v[i] for k, v in j.items() if k != "scores"}
                            for side, j in judged["pairs"].items()}
            for side in sides:
                row["scores"][f"judge_score_{side}"] = judged["scores"][side][i]
        rows.append(row)
    timing["total_s"] = round(time.time() - t0, 2)
    config = build_config(final_dir, spec, data, refs, system, opts, clf, neutral_src,
                          reused, timing, sides, ref_side)
    config["remote_estimates"] = estimates
    for side, text in side_prompts.items():
        config["models"][side]["system_prompt_file"] = split[side][1]
        config["models"][side]["system_prompt"] = text
    return {"config": config, "summary": summarize(rows, judged is not None, sides, ref_side),
            "rows": rows}


def side_names(opts: BenchOptions) -> tuple[list[str], str]:
    """The sides in order and the reference side; --before/--after fill opts.sides."""
    if not opts.sides:
        if not opts.before or not opts.after:
            raise InputError("give both --before and --after, or --model NAME=SPEC twice")
        opts.sides = {"before": opts.before, "after": opts.after}
    sides = list(opts.sides)
    ref = opts.reference or sides[0]
    if ref not in opts.sides:
        raise InputError(f"--reference {ref!r} is no side (sides: {', '.join(sides)})",
                         field="--reference")
    return sides, ref


def score_answers(spec, clf: S.StyleClassifier, qs: list[str], answers: dict[str, list[str]],
                  opts: BenchOptions, refs: dict[str, ModelRef], loaded: dict,
                  stage: Stage, system: str | None = None) -> dict[str, list]:
    topics = S.TopicIndex.build(spec, opts.topic_category)
    if opts.topic_category and topics is None:
        raise InputError(f"--topic-category {opts.topic_category!r} is no placeholder "
                         "category of the spec")
    cols: dict[str, list] = {}
    for side in answers:
        a = answers[side]
        cols[f"style_{side}"] = clf.proba(a)
        cols[f"signature_{side}"] = [S.signature(x, spec) for x in a]
        cols[f"catchphrases_{side}"] = [S.catchphrases(x, spec) for x in a]
        cols[f"slips_{side}"] = [S.slips(x, spec) for x in a]
        cols[f"relevance_{side}"] = [S.relevance(q, x, topics) for q, x in zip(qs, a,
                                                                                strict=True)]
        cols[f"words_{side}"] = [S.length_words(x) for x in a]
        cols[f"distinct2_{side}"] = [S.distinct_2(x) for x in a]
        cols[f"repetition_{side}"] = [S.repetition(x) for x in a]
    if opts.embed_model:
        from persona.bench.generate import Embedder

        emb = Embedder(opts.embed_model)
        for side in answers:
            cols[f"embed_sim_{side}"] = emb.similarity(qs, answers[side])
    first = next(iter(answers))
    base = _perplexity_model(refs, loaded, first)
    if base is not None:
        from persona.bench.generate import perplexity

        model, tok = base
        total = len(answers) * len(qs)
        bar = stage("perplexity", total)
        for j, side in enumerate(answers):
            cols[f"perplexity_{side}"] = perplexity(model, tok, system, qs, answers[side])
            bar((j + 1) * len(qs), total)
    return cols


def _perplexity_model(refs: dict[str, ModelRef], loaded: dict, first: str):
    """The base model for perplexity: the first side's (its base, if it is an adapter),
    when it is local. Reuses the loaded model with its adapter disabled where possible."""
    ref = refs[first]
    if ref.kind != "local":
        return None
    from persona.bench.generate import load_local

    base_ref = ModelRef(ref.base or ref.name, "local", ref.base or ref.name)
    if first in loaded and not ref.adapter:
        model, tok = loaded[first]
    else:
        model, tok = load_local(base_ref)
    tok.padding_side = "right"
    return model, tok


def run_judge(spec, qs, answers, opts: BenchOptions, stage: Stage,
              sides: list[str] | None = None, ref_side: str | None = None) -> dict:
    """Every side against the reference (both orders) and a 1-10 score per answer. The
    reference's scores are asked once per question (the provider's cache answers repeats)."""
    from persona.bench import judge as J
    from persona.bench.generate import remote_provider

    sides = sides or list(answers)
    ref_side = ref_side or sides[0]
    others = [s for s in sides if s != ref_side]
    prov = remote_provider(opts.judge, base_url=opts.judge_base_url or opts.base_url,
                           api_key_env=opts.api_key_env, concurrency=opts.concurrency,
                           max_cost=opts.max_cost, cache_dir=Path(opts.out) / "cache")
    prov.kind_params["judge_pair"] = dict(J.JUDGE_PARAMS)
    prov.kind_params["judge_score"] = dict(J.JUDGE_PARAMS)
    total = 4 * len(qs) * len(others)
    bar = stage("judge", total)
    prov.monitor = lambda s: bar(min(total, s.get("requests", 0) + s.get("cached", 0)), total)
    pairs: dict[str, dict] = {}
    scores: dict[str, list] = {}
    try:
        for side in others:
            got = J.judge_all(prov, spec, qs, answers[ref_side], answers[side])
            names = {"after": side, "before": ref_side}
            pairs[side] = {"outcome": [names.get(o, o) for o in got["outcome"]],
                           "order1": got["order1"], "order2": got["order2"]}
            scores[ref_side], scores[side] = got["score_before"], got["score_after"]
    finally:
        prov.close()
    return {"pairs": pairs, "scores": scores}


def summarize(rows: list[dict], judged: bool, sides: list[str] | None = None,
              ref_side: str | None = None) -> dict[str, Any]:
    """Means per score and side, deltas against the reference side, win rates with 95 %
    intervals, human means. Two sides named before/after also keep the older keys
    (`style_wins`, `judge`, `delta`)."""
    from persona.bench import judge as J

    sides = sides or list(SIDES)
    ref_side = ref_side or sides[0]
    others = [s for s in sides if s != ref_side]
    means = {}
    for key, header, better in S.SCORES:
        vals = {side: [r["scores"].get(f"{key}_{side}") for r in rows] for side in sides}
        if all(v is None for col in vals.values() for v in col):
            continue
        m = {side: S.mean(col) for side, col in vals.items()}
        deltas = {side: None if m[ref_side] is None or m[side] is None
                  else round(m[side] - m[ref_side], 4) for side in others}
        means[key] = {"header": header, **m, "deltas": deltas,
                      "n": sum(1 for v in vals[sides[-1]] if v is not None),
                      "higher_is_better": better}
        if len(sides) == 2:
            means[key]["delta"] = deltas[others[0]]
    vs: dict[str, dict] = {}
    for side in others:
        pairs = [(r["scores"].get(f"style_{ref_side}"), r["scores"].get(f"style_{side}"))
                 for r in rows]
        wins = sum(1 for b, a in pairs if a is not None and b is not None and a > b)
        losses = sum(1 for b, a in pairs if a is not None and b is not None and a < b)
        lo, hi = S.wilson(wins, wins + losses)
        vs[side] = {"style": {"wins": wins, "losses": losses, "ties": len(pairs) - wins - losses,
                              "win_rate": round(wins / (wins + losses), 4) if wins + losses
                              else None, "ci95": [lo, hi]}}
        if judged:
            outcomes = [((r.get("judge") or {}).get(side) or {}).get("outcome") for r in rows]
            t = J.tally([{side: "after", ref_side: "before"}.get(o, o) for o in outcomes])
            vs[side]["judge"] = {"wins": t["after"], "losses": t["before"], "tie": t["tie"],
                                 "inconsistent": t["inconsistent"], "failed": t["failed"],
                                 "decisive": t["decisive"], "win_rate": t["win_rate_after"],
                                 "ci95": t["ci95"]}
    out: dict[str, Any] = {"questions": len(rows), "sides": sides, "reference": ref_side,
                           "means": means, "vs_reference": vs}
    if len(sides) == 2:  # the before/after keys of the two-sided bench
        st = vs[others[0]]["style"]
        out["style_wins"] = {"after": st["wins"], "before": st["losses"], "tie": st["ties"],
                             "win_rate_after": st["win_rate"], "ci95": st["ci95"]}
        if judged:
            j = vs[others[0]]["judge"]
            out["judge"] = {"after": j["wins"], "before": j["losses"], "tie": j["tie"],
                            "inconsistent": j["inconsistent"], "failed": j["failed"],
                            "decisive": j["decisive"], "win_rate_after": j["win_rate"],
                            "ci95": j["ci95"]}
    human = {side: [r.get(f"human_{side}") for r in rows] for side in sides}
    out["human"] = {**{side: S.mean(v) for side, v in human.items()},
                    **{f"n_{side}": sum(x is not None for x in v) for side, v in human.items()}}
    return out


def build_config(final_dir: Path, spec, data: HeldOut, refs: dict[str, ModelRef],
                 system: str | None, opts: BenchOptions, clf: S.StyleClassifier,
                 neutral_src: str, reused: dict[str, int], timing: dict,
                 sides: list[str] | None = None, ref_side: str | None = None) -> dict[str, Any]:
    from persona.finetune.outputs import library_versions

    versions = library_versions()
    for name in ("scikit-learn", "openpyxl", "simplemma", "openai"):
        try:
            from importlib.metadata import version

            versions[name] = version(name)
        except Exception:  # PackageNotFoundError: recorded as missing
            versions[name] = None
    return {
        "dataset": str(final_dir), "persona": spec.id,
        "models": {side: refs[side].describe() for side in sides or SIDES},
        "sides": list(sides or SIDES), "reference": ref_side or (sides or SIDES)[0],
        "system_prompt": system, "decoding": asdict(opts.decoding),
        "seed": opts.decoding.seed,
        "held_out": {"questions": len(data.questions), "by_split": data.splits,
                     "refused_in_train": data.refused},
        "data_sha256": data.hashes,
        "classifier": {"persona_answers": clf.sizes[0], "neutral_answers": clf.sizes[1],
                       "neutral_source": neutral_src,
                       "holdout_accuracy": clf.holdout_accuracy},
        "topic_category": opts.topic_category or (spec.journalist.match[0]
                                                  if spec.journalist.match else None),
        "embed_model": opts.embed_model,
        "judge": {"model": opts.judge, "base_url": opts.judge_base_url or opts.base_url}
        if opts.judge else None,
        "answers_reused": reused, "timing": timing, "versions": versions,
    }
