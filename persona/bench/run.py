"""`persona bench`: held-out questions -> both sides' answers -> scores -> bench.json.

The sheet, CSV and report are written from the result by sheet.py; rescore.py reads human
scores back and writes them again. Heavy libraries are imported inside the functions.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from persona.bench import scores as S
from persona.bench.generate import AnswerStore, Decoding, ModelRef, answer_side, parse_model
from persona.bench.questions import HeldOut, held_out
from persona.errors import InputError
from persona.io import iter_jsonl

SIDES = ("before", "after")


@dataclass
class BenchOptions:
    before: str
    after: str
    out: Path
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


def run_bench(final_dir: Path, opts: BenchOptions, stage: Stage = _no_stage) -> dict[str, Any]:
    from persona.spec import load_spec

    t0 = time.time()
    final_dir = Path(final_dir)
    data: HeldOut = held_out(final_dir, opts.limit)
    refs = {"before": parse_model(opts.before), "after": parse_model(opts.after)}
    spec = load_spec(opts.persona or final_dir.name)
    if opts.embed_model and not Path(opts.embed_model).is_dir():
        raise InputError("--embed-model must be a local model folder", file=opts.embed_model)
    if opts.neutral is not None and not Path(opts.neutral).exists():
        raise InputError("no such neutral dataset", file=str(opts.neutral))
    system = data.system_prompt if opts.system is None else (opts.system or None)
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
    for side in SIDES:
        ref = refs[side]
        t = time.time()
        mt = None
        if ref.kind == "local" and not _all_cached(ref, ids, qs, system, opts, side):
            from persona.bench.generate import load_local

            mt = load_local(ref)
            loaded[side] = mt
        answers[side], reused[side] = answer_side(
            ref, ids, qs, system, opts.decoding, AnswerStore(out / "answers" / f"{side}.jsonl"),
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
        judged = run_judge(spec, qs, answers, opts, stage)
        timing["judge_s"] = round(time.time() - t, 2)
    rows = []
    for i, q in enumerate(data.questions):
        row = {"id": q.id, "split": q.split, "question": q.question, "reference": q.reference,
               "before": answers["before"][i], "after": answers["after"][i],
               "scores": {k: v[i] for k, v in cols.items()},
               "judge": None, "human_before": None, "human_after": None}
        if judged:
            row["judge"] = {"outcome": judged["outcome"][i], "order1": judged["order1"][i],
                            "order2": judged["order2"][i]}
            row["scores"]["judge_score_before"] = judged["score_before"][i]
            row["scores"]["judge_score_after"] = judged["score_after"][i]
        rows.append(row)
    timing["total_s"] = round(time.time() - t0, 2)
    config = build_config(final_dir, spec, data, refs, system, opts, clf, neutral_src,
                          reused, timing)
    return {"config": config, "summary": summarize(rows, judged is not None), "rows": rows}


def _all_cached(ref: ModelRef, ids, qs, system, opts: BenchOptions, side: str) -> bool:
    from persona.bench.generate import answer_key

    store = AnswerStore(Path(opts.out) / "answers" / f"{side}.jsonl")
    ident = ref.identity()
    return all(answer_key(ident, system, opts.decoding, q) in store.found for q in qs)


def score_answers(spec, clf: S.StyleClassifier, qs: list[str], answers: dict[str, list[str]],
                  opts: BenchOptions, refs: dict[str, ModelRef], loaded: dict,
                  stage: Stage, system: str | None = None) -> dict[str, list]:
    topics = S.TopicIndex.build(spec, opts.topic_category)
    if opts.topic_category and topics is None:
        raise InputError(f"--topic-category {opts.topic_category!r} is no placeholder "
                         "category of the spec")
    cols: dict[str, list] = {}
    for side in SIDES:
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
        for side in SIDES:
            cols[f"embed_sim_{side}"] = emb.similarity(qs, answers[side])
    base = _perplexity_model(refs, loaded)
    if base is not None:
        from persona.bench.generate import perplexity

        model, tok = base
        bar = stage("perplexity", 2 * len(qs))
        for j, side in enumerate(SIDES):
            cols[f"perplexity_{side}"] = perplexity(model, tok, system, qs, answers[side])
            bar((j + 1) * len(qs), 2 * len(qs))
    return cols


def _perplexity_model(refs: dict[str, ModelRef], loaded: dict):
    """The base model for perplexity: the before side's (its base, if it is an adapter),
    when it is local. Reuses the loaded model with its adapter disabled where possible."""
    ref = refs["before"]
    if ref.kind != "local":
        return None
    from persona.bench.generate import load_local

    base_ref = ModelRef(ref.base or ref.name, "local", ref.base or ref.name)
    if "before" in loaded and not ref.adapter:
        model, tok = loaded["before"]
    else:
        model, tok = load_local(base_ref)
    tok.padding_side = "right"
    return model, tok


def run_judge(spec, qs, answers, opts: BenchOptions, stage: Stage) -> dict:
    from persona.bench import judge as J
    from persona.bench.generate import remote_provider

    prov = remote_provider(opts.judge, base_url=opts.judge_base_url or opts.base_url,
                           api_key_env=opts.api_key_env, concurrency=opts.concurrency,
                           max_cost=opts.max_cost, cache_dir=Path(opts.out) / "cache")
    prov.kind_params["judge_pair"] = dict(J.JUDGE_PARAMS)
    prov.kind_params["judge_score"] = dict(J.JUDGE_PARAMS)
    bar = stage("judge", 4 * len(qs))
    prov.monitor = lambda s: bar(min(4 * len(qs), s.get("requests", 0) + s.get("cached", 0)),
                                 4 * len(qs))
    try:
        return J.judge_all(prov, spec, qs, answers["before"], answers["after"])
    finally:
        prov.close()


def summarize(rows: list[dict], judged: bool) -> dict[str, Any]:
    """Means per score and side, deltas, win rates with 95 % intervals, human means."""
    from persona.bench import judge as J

    means = {}
    for key, header, better in S.SCORES:
        b = [r["scores"].get(f"{key}_before") for r in rows]
        a = [r["scores"].get(f"{key}_after") for r in rows]
        if all(v is None for v in b + a):
            continue
        mb, ma = S.mean(b), S.mean(a)
        means[key] = {"header": header, "before": mb, "after": ma,
                      "delta": None if mb is None or ma is None else round(ma - mb, 4),
                      "n": sum(1 for v in a if v is not None), "higher_is_better": better}
    style = [(r["scores"].get("style_before"), r["scores"].get("style_after")) for r in rows]
    wins = sum(1 for b, a in style if a is not None and b is not None and a > b)
    losses = sum(1 for b, a in style if a is not None and b is not None and a < b)
    ties = len(style) - wins - losses
    lo, hi = S.wilson(wins, wins + losses)
    out: dict[str, Any] = {
        "questions": len(rows), "means": means,
        "style_wins": {"after": wins, "before": losses, "tie": ties,
                       "win_rate_after": round(wins / (wins + losses), 4) if wins + losses
                       else None, "ci95": [lo, hi]},
    }
    if judged:
        out["judge"] = J.tally([(r.get("judge") or {}).get("outcome") for r in rows])
    hb = [r.get("human_before") for r in rows]
    ha = [r.get("human_after") for r in rows]
    out["human"] = {"before": S.mean(hb), "after": S.mean(ha),
                    "n_before": sum(v is not None for v in hb),
                    "n_after": sum(v is not None for v in ha)}
    return out


def build_config(final_dir: Path, spec, data: HeldOut, refs: dict[str, ModelRef],
                 system: str | None, opts: BenchOptions, clf: S.StyleClassifier,
                 neutral_src: str, reused: dict[str, int], timing: dict) -> dict[str, Any]:
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
        "models": {side: refs[side].describe() for side in SIDES},
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
