"""CLI commands of the generation stages: templates, fill, questions, merge, run."""

from __future__ import annotations

import click
from rich.table import Table

from persona.cli.llm import _dry_run, _stage_usage_line, _watch
from persona.cli.options import common, llm_options, provider_options, setup, split_option
from persona.cli.ui import err, out, print_json, stage_bars
from persona.defaults import BATCH_SIZE, DEFAULT_COUNT


def _stage_line(report) -> None:
    extra = f", {report.retried} retried, {report.rejected} rejected" if (
        report.retried or report.rejected) else ""
    kept = f" ({report.kept} kept from an earlier run)" if report.kept else ""
    err.print(f"[green]✓[/green] {report.stage}: {report.total} items{kept}{extra}")
    for note in report.notes:
        err.print(f"  [yellow]note:[/yellow] {note}")


def _done(report, prov, as_json: bool) -> None:
    """A stage command's last words: its report, and what the LLM used."""
    if as_json:
        print_json(report.to_dict())
        return
    _stage_line(report)
    _stage_usage_line(prov)


@click.command()
@common
@provider_options
@llm_options
@click.option("--count", "-n", type=click.IntRange(min=1), default=None,
              help="How many templates to write (default: the spec's grammar.count).")
def templates(persona, workspace, seed, as_json, provider, force, count, dry_run, **llm):
    """Stage 1: write the template bank templates/<persona>.jsonl (kept if it exists)."""
    from persona.stages import templates as stage

    if dry_run:
        spec, ws, _ = setup(persona, workspace)
        _dry_run(spec, ws, ("templates",), count=1, seed=seed, model=llm["model"],
                 templates=count or spec.grammar.count, as_json=as_json,
                 batch_api=llm["batch_api"], fill_mode=llm["fill_mode"],
                 per_request=llm["per_request"], tpm=llm["tpm"])
        return
    spec, ws, prov = setup(persona, workspace, provider, llm)
    report = stage.run(spec, ws, prov, seed=seed, count=count, force=force)
    _done(report, prov, as_json)


@click.command()
@common
@provider_options
@click.option("--count", "-n", type=click.IntRange(min=1), default=DEFAULT_COUNT,
              show_default=True, help="Answers to write.")
@click.option("--batch-size", type=click.IntRange(min=1), default=BATCH_SIZE, show_default=True,
              help="Answers per batch file (the unit of resume).")
@llm_options
def fill(persona, workspace, seed, as_json, provider, force, count, batch_size, dry_run, **llm):
    """Stage 2: fill templates into answers, in batches, with the style mix and slips."""
    from persona.cli.live import llm_bars
    from persona.stages import run as stages

    if dry_run:
        spec, ws, _ = setup(persona, workspace)
        _dry_run(spec, ws, ("fill",), count=count, seed=seed, model=llm["model"],
                 templates=None, as_json=as_json, batch_api=llm["batch_api"],
                 fill_mode=llm["fill_mode"],
                 per_request=llm["per_request"], tpm=llm["tpm"])
        return
    spec, ws, prov = setup(persona, workspace, provider, llm)
    with llm_bars(not as_json) as (bar, monitor):
        _watch(prov, monitor)
        report = stages.fill_stage(spec, ws, prov, count=count, seed=seed,
                                   batch_size=batch_size, force=force,
                                   on_progress=bar("fill", count))
    _done(report, prov, as_json)


@click.command()
@common
@provider_options
@llm_options
def questions(persona, workspace, seed, as_json, provider, force, dry_run, **llm):
    """Stage 3: write a journalist's question for every answer."""
    from persona.cli.live import llm_bars
    from persona.stages import run as stages
    from persona.workspace import Workspace

    if dry_run:
        spec, ws, _ = setup(persona, workspace)
        total = Workspace.fingerprint(ws.answers).get("count", 0) or DEFAULT_COUNT
        _dry_run(spec, ws, ("questions",), count=total, seed=seed, model=llm["model"],
                 templates=None, as_json=as_json, batch_api=llm["batch_api"],
                 fill_mode=llm["fill_mode"],
                 per_request=llm["per_request"], tpm=llm["tpm"])
        return
    spec, ws, prov = setup(persona, workspace, provider, llm)
    total = Workspace.fingerprint(ws.answers).get("count", 0)
    with llm_bars(not as_json) as (bar, monitor):
        _watch(prov, monitor)
        report = stages.questions_stage(spec, ws, prov, seed=seed, force=force,
                                        on_progress=bar("questions", total))
    _done(report, prov, as_json)


@click.command()
@common
@split_option
@click.option("--count", "-n", type=click.IntRange(min=1), default=None,
              help="Pairs to deliver (default: every unique pair).")
def merge(persona, workspace, seed, as_json, ratios, holdout_topics, count):
    """Stage 4: dedup, split and write final/<persona>/ with its report."""
    from persona import pipeline
    from persona.stages import merge as stage

    spec, ws, _ = setup(persona, workspace, lock=True)
    with stage_bars(not as_json) as bar:
        report = stage.run(spec, ws, count=count, seed=seed, ratios=ratios,
                           holdout_topics=holdout_topics, on_progress=bar("merge", count or 0))
    result = pipeline.finish(spec, ws, report)
    print_json(result) if as_json else print_report(result, spec, ws)
    pipeline.check_targets(result, ws)


@click.command()
@common
@provider_options
@split_option
@click.option("--count", "-n", type=click.IntRange(min=1), default=DEFAULT_COUNT,
              show_default=True, help="Pairs delivered in final/ after deduplication.")
@click.option("--templates", "n_templates", type=click.IntRange(min=1), default=None,
              help="Templates to write in stage 1 (default: the spec's grammar.count).")
@click.option("--batch-size", type=click.IntRange(min=1), default=BATCH_SIZE, show_default=True,
              help="Answers per batch file (the unit of resume).")
@llm_options
@click.option("--moderate", "moderate", is_flag=True,
              help="Last stage: `persona moderate` on final/<persona>/ (report and "
              "moderation/ outputs; exit 1 when something is flagged).")
@click.option("--moderation-provider", type=click.Choice(["offline", "openai", "llamaguard"]),
              default=None, help="Who judges with --moderate (default: openai when a key or "
              "base URL is set, else offline).")
def run(persona, workspace, seed, as_json, provider, force, ratios, holdout_topics, count,
        n_templates, batch_size, dry_run, moderate, moderation_provider, **llm):
    """Run every generation stage in order and write final/<persona>/ with its report.

    \b
    persona run --persona babis --count 3000        # offline, a few seconds
    persona run -p my_persona.toml -w runs/mine     # your own persona, elsewhere
    persona run --provider openai --model gpt-5.4-mini --count 3000 --dry-run
    persona run --provider openai --base-url http://localhost:8000/v1 --max-cost 5
    persona run --provider openai --model gpt-5.4-mini --batch-api   # half price, slower

    A rerun resumes: finished batches are kept, answered LLM requests are not sent again;
    --force redoes every stage.
    """
    from persona import pipeline
    from persona.cli.live import llm_bars

    if dry_run:
        spec, ws, _ = setup(persona, workspace)
        _dry_run(spec, ws, ("templates", "fill", "questions"), count=count, seed=seed,
                 model=llm["model"], templates=n_templates, as_json=as_json,
                 batch_api=llm["batch_api"], fill_mode=llm["fill_mode"],
                 per_request=llm["per_request"], tpm=llm["tpm"])
        return
    spec, ws, prov = setup(persona, workspace, provider, llm)
    opts = pipeline.RunOptions(count=count, seed=seed, batch_size=batch_size,
                               templates=n_templates, ratios=ratios,
                               holdout_topics=holdout_topics, force=force)
    with llm_bars(not as_json) as (bar, monitor):
        _watch(prov, monitor)
        result, reports = pipeline.run(spec, ws, prov, opts, progress=bar)
    outcome = _moderate(ws, moderation_provider, llm) if moderate else None
    if as_json:
        print_json({**result, "moderation": outcome.to_dict()} if outcome else result)
    else:
        for report in reports:
            _stage_line(report)
        _stage_usage_line(prov)
        print_report(result, spec, ws)
        if outcome is not None:
            from persona.cli.moderate import print_outcome

            print_outcome(outcome)
    pipeline.check_targets(result, ws)  # the files are written; the exit code tells
    if outcome is not None and not outcome.ok:
        click.get_current_context().exit(1)


def _moderate(ws, provider: str | None, llm: dict):
    """`persona moderate final/<persona>` as the run's last stage."""
    from persona.checks.moderation import screen

    return screen(ws.final, provider=provider, base_url=llm.get("base_url"))


def print_report(r: dict, spec, ws) -> None:
    table = Table(title=f"final/{spec.id} — measured", show_header=True)
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_column("target", justify="right")
    table.add_row("pairs", str(r["count"]), "")
    table.add_row("train / val / test", " / ".join(str(v) for v in r["splits"].values()), "")
    for name, s in r["style_mix"].items():
        table.add_row(f"style: {spec.styles[name].label}", f"{s['percent']:.2f} %",
                      f"{s['target_percent']:.2f} %")
    table.add_row("slips", f"{r['slips']['percent']:.2f} %",
                  f"{r['slips']['target_percent']:.2f} %")
    if r["slips"]["by_kind"]:
        table.add_row("slips by kind", ", ".join(f"{k} {v}" for k, v in
                                                 r["slips"]["by_kind"].items()), "")
    table.add_row("duplicates removed", str(r["stages"]["merge"]["removed"]), "")
    table.add_row("exact duplicates left", str(r["exact_duplicates"]), "0")
    table.add_row("unresolved placeholders", str(r["unresolved_placeholders"]), "0")
    table.add_row("signed answers", f"{r['signature']['percent']:.2f} %", "100 %")
    table.add_row("templates used", str(r["templates"]["used"]), "")
    ta, tq = r["tokens"]["answer"], r["tokens"]["question"]
    table.add_row("answer tokens p50 / p95", f"{ta['p50']} / {ta['p95']}", "")
    table.add_row("question tokens p50 / p95", f"{tq['p50']} / {tq['p95']}", "")
    if "diversity" in r:
        from persona.report import diversity_rows

        for measure, value in diversity_rows(r["diversity"]):
            table.add_row(measure, value, "")
    from persona.report import llm_rows

    for measure, value in llm_rows(r):
        table.add_row(measure, value, "")
    for stage in ("fill", "questions"):
        s = r["stages"][stage]
        table.add_row(f"{stage}: retried / rejected", f"{s['retried']} / {s['rejected']}", "")
    for stage, u in r["stages"].get("llm_usage", {}).items():
        cost = "" if u["cost_usd"] is None else f", ${u['cost_usd']:.4f}"
        table.add_row(f"{stage}: LLM requests, tokens in / out",
                      f"{u['requests']}, {u['prompt_tokens']:,} / {u['completion_tokens']:,}"
                      f"{cost}", "")
        if u.get("malformed_reasked"):
            table.add_row(f"{stage}: malformed answers re-asked", str(u["malformed_reasked"]), "")
    out.print(table)
    out.print(f"Dataset in [bold]{ws.final}[/bold]: all/train/val/test.jsonl, meta.jsonl, "
              "report.json, DATASET_CARD.md")

COMMANDS = [templates, fill, questions, merge, run]
