"""`persona run`: the generation stages in order, then the report."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from persona import report as report_mod
from persona.providers.base import Provider
from persona.spec import PersonaSpec
from persona.stages import Progress, StageReport, fill, merge, questions, templates
from persona.workspace import Workspace

DEFAULT_SEED = 42
DEFAULT_COUNT = 3000
BATCH_SIZE = 300


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
    reports = [
        templates.run(spec, ws, provider, seed=opts.seed, count=opts.templates, force=opts.force),
        fill.run(spec, ws, provider, count=opts.count, seed=opts.seed,
                 batch_size=opts.batch_size, force=opts.force,
                 on_progress=bar("fill", opts.count)),
        questions.run(spec, ws, provider, seed=opts.seed, force=opts.force,
                      on_progress=bar("questions", opts.count)),
        merge.run(spec, ws, count=opts.count, seed=opts.seed, ratios=opts.ratios,
                  holdout_topics=opts.holdout_topics, on_progress=bar("merge", opts.count)),
    ]
    return finish(spec, ws, reports[-1]), reports


def finish(spec: PersonaSpec, ws: Workspace, merge_report: StageReport) -> dict:
    """Write report.json and the card; stage figures come from the stage folders' stats, so
    they are the same whether the stages ran in this process, an earlier one, or one by one."""
    stages = {
        "fill": stage_stats("fill", ws.answers),
        "questions": stage_stats("questions", ws.dialogues),
        "merge": {"removed": merge_report.rejected, "reasons": merge_report.reasons,
                  "notes": merge_report.notes, "split": merge_report.split},
    }
    cache = ws.generated / "cache"
    if (cache / "requests.jsonl").exists():  # an LLM wrote (part of) this dataset
        from persona.providers.llm_cache import usage_by_kind

        stages["llm_usage"] = usage_by_kind(cache)
    return report_mod.write(spec, ws, stages)


def stage_stats(stage: str, folder) -> dict:
    report = StageReport(stage)
    for path in sorted(folder.glob("batch_*.stats.json")):
        report.add_stats(path)
    return {"retried": report.retried, "rejected": report.rejected,
            "reasons": dict(sorted(report.reasons.items()))}
