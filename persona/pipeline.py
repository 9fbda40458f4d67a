"""`persona run`: the generation stages in order, then the report."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass

from persona import report as report_mod
from persona.defaults import BATCH_SIZE, DEFAULT_COUNT, DEFAULT_SEED  # noqa: F401 (re-export)
from persona.errors import TargetMissed
from persona.parallel import Warm
from persona.providers.base import Provider
from persona.spec import PersonaSpec
from persona.stages import Progress, StageReport, fill, merge, questions, templates
from persona.stages import run as stage_run
from persona.workspace import Workspace


@dataclass
class RunOptions:
    count: int = DEFAULT_COUNT
    seed: int = DEFAULT_SEED
    batch_size: int = BATCH_SIZE
    templates: int | None = None
    ratios: tuple[float, float, float] = (0.8, 0.1, 0.1)
    holdout_topics: int = 0
    force: bool = False


def run(spec: PersonaSpec, ws: Workspace, provider: Provider, opts: RunOptions,
        progress: Callable[[str, int], Progress] | None = None) -> tuple[dict, list[StageReport]]:
    """Run every stage; `progress(stage, total)` gives each stage its progress callback."""
    bar = progress or (lambda stage, total: (lambda done, total: None))
    if not stage_run.streams(provider):
        # simplemma's import (its dictionary is an index mapped from the cache, not loaded:
        # persona/lemmas.py), beside the templates; fill waits for it before it forks its
        # workers, so they have it too.
        from persona.text import warm_lemmas

        warm_lemmas(spec.persona.language)
    reports = [templates.run(spec, ws, provider, seed=opts.seed, count=opts.templates,
                             force=opts.force)]
    tokenizer = None
    try:
        if stage_run.streams(provider):
            # An LLM: fill and questions overlap in one request pool (stages/run.py).
            # The report's tokenizer (~0.25 s of CPU) loads while requests are out: a second
            # in, when the pool is full, not while the first requests are being built.
            _warm(report_mod._encoder, delay=1.0)
            fill_plan = fill.FillPlan.prepare(spec, ws, provider, count=opts.count,
                                              seed=opts.seed, batch_size=opts.batch_size,
                                              force=opts.force)
            q_plan = questions.QuestionsPlan.prepare(ws, provider, seed=opts.seed,
                                                     force=opts.force)
            reports += stage_run.overlapped(spec, provider, opts.seed, fill_plan=fill_plan,
                                            questions_plan=q_plan,
                                            on_fill=bar("fill", opts.count),
                                            on_questions=bar("questions", opts.count))
        else:
            reports.append(stage_run.fill_stage(spec, ws, provider, count=opts.count,
                                                seed=opts.seed, batch_size=opts.batch_size,
                                                force=opts.force,
                                                on_progress=bar("fill", opts.count)))
            # The report's tokenizer (~0.3 s that holds the GIL) loads in a forked worker
            # beside questions and merge, which leave the second core idle; that worker
            # counts the tokens when the report asks.
            tokenizer = Warm(report_mod._encoder)
            reports.append(stage_run.questions_stage(spec, ws, provider, seed=opts.seed,
                                                     force=opts.force,
                                                     on_progress=bar("questions", opts.count)))
        reports.append(merge.run(spec, ws, count=opts.count, seed=opts.seed,
                                 ratios=opts.ratios, holdout_topics=opts.holdout_topics,
                                 on_progress=bar("merge", opts.count)))
        return finish(spec, ws, reports[-1], tokenizer), reports
    finally:
        if tokenizer is not None:
            tokenizer.close()  # a worker the report did not take (an error before it)


def _warm(load: Callable[[], object], delay: float = 0.0) -> None:
    """Run `load` in a daemon thread after `delay` seconds; a failure is left for the real
    call to report."""
    import threading

    def quiet() -> None:
        try:
            load()
        except Exception:  # noqa: BLE001 - the report raises it again, as one line
            pass

    timer = threading.Timer(delay, quiet)
    timer.daemon, timer.name = True, "persona-warm"
    timer.start()


def finish(spec: PersonaSpec, ws: Workspace, merge_report: StageReport,
           tokenizer: Warm | None = None) -> dict:
    """Write report.json and the card; stage figures come from the stage folders' stats, so
    they are the same whether the stages ran in this process, an earlier one, or one by one.
    `tokenizer`: the report's tokenizer loading ahead (parallel.Warm)."""
    stages = {
        "fill": stage_stats("fill", ws.answers),
        "questions": stage_stats("questions", ws.dialogues),
        "merge": {"removed": merge_report.rejected, "reasons": merge_report.reasons,
                  "notes": merge_report.notes, "split": merge_report.split},
    }
    cache = ws.generated / "cache"
    if (cache / "requests.jsonl").exists():  # an LLM wrote (part of) this dataset
        from persona.providers.llm_cache import usage_by_kind
        from persona.providers.openai_compat import PARAMS_FILE

        stages["llm_usage"] = usage_by_kind(cache)
        if (cache / PARAMS_FILE).exists():  # what the last run sent (and what it adapted)
            stages["llm_params"] = json.loads((cache / PARAMS_FILE).read_text("utf-8"))
    report = report_mod.write(spec, ws, stages, tokenizer)
    log_run(ws, report)
    return report


def log_run(ws: Workspace, report: dict) -> None:
    """Append when this dataset was made (and by what) to generated/<persona>/runs.jsonl:
    final/ holds no date, so that one seed gives the same bytes."""
    import datetime as dt

    from persona.io import dumps

    p = report.get("provenance") or {}
    entry = {"finished": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
             "pairs": report.get("count"), "provider": p.get("provider"),
             "model": (p.get("model") or {}).get("model"), "seed": p.get("seed")}
    ws.generated.mkdir(parents=True, exist_ok=True)
    with open(ws.generated / "runs.jsonl", "a", encoding="utf-8") as fh:
        fh.write(dumps(entry) + "\n")


def stage_stats(stage: str, folder) -> dict:
    report = StageReport(stage)
    for path in sorted(folder.glob("batch_*.stats.json")):
        report.add_stats(path)
    return {"retried": report.retried, "rejected": report.rejected,
            "reasons": dict(sorted(report.reasons.items()))}


def missed_targets(report: dict) -> list[str]:
    """The spec's targets (slip rate, style shares) the finished dataset misses, worst first.

    Rounding to whole items and the few items dedup or rejection remove are allowed: a
    target is missed when the count is off by more than 1 item + 2 % of the dataset.
    """
    n = report["count"]
    slack = 1 + 0.02 * n
    measured = [("slips", report["slips"], "style.slip_rate")]
    measured += [(f"style {name!r}", s, f"style.mix.{name}")
                 for name, s in report["style_mix"].items()]
    missed = []
    for what, m, field in measured:
        off = abs(m["count"] - m["target_percent"] / 100 * n)
        if off > slack:
            missed.append((off, f"{what} {m['percent']:.2f} % ({m['count']} of {n}), the spec "
                                f"sets {m['target_percent']:.2f} % ({field})"))
    leaked = report.get("diversity", {}).get("leakage", {}).get("test_questions_in_train", 0)
    if leaked:  # the held-out split is not held out: first of all
        missed.append((float("inf"), f"{leaked} test question(s) also in train (the test "
                                      "split must hold questions train never saw)"))
    return [text for _, text in sorted(missed, key=lambda t: -t[0])]


def check_targets(report: dict, ws: Workspace) -> None:
    """Raise TargetMissed (exit 1) naming the missed targets and the commonest rejection."""
    missed = missed_targets(report)
    if not missed:
        return
    reasons = report["stages"]["fill"]["reasons"]
    why = ""
    if reasons and "test question" not in missed[0]:
        top = max(reasons, key=reasons.get)
        why = (f"; most rejected answers: {top!r} ×{reasons[top]} (see "
               f"{ws.invalid('fill')})")
    more = f" (+{len(missed) - 1} more)" if len(missed) > 1 else ""
    raise TargetMissed(f"missed {missed[0]}{more}{why}", file=str(ws.final))
