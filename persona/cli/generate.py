"""CLI commands of the generation stages: templates, fill, questions, merge, run, personas, init."""

from __future__ import annotations

import functools
from pathlib import Path

import click
from rich.table import Table

from persona.cli.ui import err, out, print_json, stage_bars
from persona.pipeline import BATCH_SIZE, DEFAULT_COUNT, DEFAULT_SEED

PROVIDER_HELP = ("Who writes the text: 'offline' (deterministic grammar, no key), 'openai' "
                 "(any OpenAI-compatible server), or 'auto' (offline unless an API key or base "
                 "URL is set).")


def common(func):
    """Options every generation command takes."""

    @click.option("--persona", "-p", "persona", default="babis", show_default=True,
                  help="Built-in persona id (see `persona personas`) or a path to a spec TOML.")
    @click.option("--workspace", "-w", type=click.Path(file_okay=False, path_type=Path),
                  default=Path("."), show_default=True,
                  help="Folder that holds templates/, generated/ and final/.")
    @click.option("--seed", type=int, default=DEFAULT_SEED, show_default=True,
                  help="Seed of every random choice; the same seed gives the same bytes.")
    @click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        return func(*args, **kwargs)

    return wrapper


def provider_options(func):
    @click.option("--provider", type=click.Choice(["auto", "offline", "openai"]),
                  default="auto", show_default=True, help=PROVIDER_HELP)
    @click.option("--force", is_flag=True, help="Redo the stage(s) instead of resuming.")
    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        return func(*args, **kwargs)

    return wrapper


def llm_options(func):
    """Options of the OpenAI-compatible provider (ignored by the offline one)."""

    @click.option("--base-url", default=None, help="OpenAI-compatible server, e.g. "
                  "http://localhost:8000/v1 (default: OPENAI_BASE_URL or api.openai.com).")
    @click.option("--model", default="gpt-4o-mini", show_default=True, help="Model to ask.")
    @click.option("--api-key-env", default="OPENAI_API_KEY", show_default=True,
                  help="Environment variable that holds the API key (never a flag: keys in "
                  "command lines end up in shell history).")
    @click.option("--concurrency", type=click.IntRange(min=1), default=16, show_default=True,
                  help="Requests in flight at once.")
    @click.option("--rpm", type=click.FloatRange(min=0, min_open=True), default=None,
                  help="Stay under this many requests per minute.")
    @click.option("--tpm", type=click.FloatRange(min=0, min_open=True), default=None,
                  help="Stay under this many tokens per minute (prompt + max output).")
    @click.option("--max-cost", type=click.FloatRange(min=0), default=None,
                  help="Stop before spending more than this many USD in this workspace "
                  "(finished batches are kept; exit code 3).")
    @click.option("--timeout", type=click.FloatRange(min=0, min_open=True), default=60.0,
                  show_default=True, help="Seconds to wait for one answer before retrying.")
    @click.option("--batch-api", is_flag=True,
                  help="Send each round through OpenAI's Batch API: half the price, answers "
                  "within 24 h; resumable (the batch id is kept under generated/<persona>/"
                  "batches/).")
    @click.option("--dry-run", is_flag=True,
                  help="Print requests, tokens and expected cost per stage; send nothing.")
    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        return func(*args, **kwargs)

    return wrapper


LLM_KEYS = ("base_url", "model", "api_key_env", "concurrency", "rpm", "tpm", "max_cost",
            "timeout", "batch_api")


def _setup(persona: str, workspace: Path, provider: str | None = None,
           llm: dict | None = None):
    from persona.providers import make_provider, resolve_name
    from persona.spec import load_spec
    from persona.workspace import Workspace

    spec = load_spec(persona)
    ws = Workspace(workspace, spec.id)
    if provider is None:
        return spec, ws, None
    llm = {k: v for k, v in (llm or {}).items() if k in LLM_KEYS}
    name, why = resolve_name(provider, llm.get("base_url"))
    options = {}
    if name == "openai":
        options = {**llm, "cache_dir": ws.generated / "cache",
                   "batch_dir": ws.generated / "batches"}
        why += f" · model {llm.get('model')}" + (" · Batch API" if llm.get("batch_api") else "")
    err.print(f"[dim]persona [bold]{spec.id}[/bold] · provider [bold]{name}[/bold] ({why}) · "
              f"workspace {workspace.resolve()}[/dim]")
    prov = make_provider(name, **options)
    if hasattr(prov, "close"):
        click.get_current_context().call_on_close(prov.close)
    return spec, ws, prov


def _dry_run(spec, ws, stages: tuple[str, ...], *, count: int, seed: int, model: str,
             templates: int | None, as_json: bool, batch_api: bool = False) -> None:
    """Print what the LLM stages would cost; send nothing."""
    from persona.providers.llm_estimate import estimate
    from persona.stages import templates as templates_stage

    bank = None  # an existing bank is kept by stage 1, so it costs nothing
    if ws.templates_file.exists() and stages != ("templates",):
        bank = templates_stage.load(ws.templates_file, spec)
    rows = [r for r in estimate(spec, count=count, seed=seed, model=model,
                                templates=templates, bank=bank, batch_api=batch_api)
            if r["stage"] in stages]
    if as_json:
        print_json(rows)
        return
    discount = " · Batch API discount applied" if batch_api else ""
    table = Table(title=f"dry run · {model}{discount} · nothing sent")
    for col in ("stage", "requests", "input tokens", "output tokens", "expected USD"):
        table.add_column(col, justify="left" if col == "stage" else "right")
    for r in rows:
        cost = "not priced" if r["cost_usd"] is None else f"{r['cost_usd']:.4f}"
        table.add_row(r["stage"], str(r["requests"]), f"{r['input_tokens']:,}",
                      f"{r['output_tokens']:,}", cost)
    costs = [r["cost_usd"] for r in rows]
    if rows and None not in costs:
        table.add_row("total", str(sum(r["requests"] for r in rows)), "", "",
                      f"{sum(costs):.4f}")
    out.print(table)
    out.print("[dim]Without retries; a stage retries only the items it rejects.[/dim]")


def _stage_usage_line(prov) -> None:
    stats = getattr(prov, "stats", None)
    if stats is None:
        return
    err.print(f"  [dim]{stats['requests']} requests sent, {stats['cached']} answered from the "
              f"cache, {stats['prompt_tokens']:,} + {stats['completion_tokens']:,} tokens, "
              f"${prov.spent:.4f} spent in this workspace[/dim]")


def _stage_line(report) -> None:
    extra = f", {report.retried} retried, {report.rejected} rejected" if (
        report.retried or report.rejected) else ""
    kept = f" ({report.kept} kept from an earlier run)" if report.kept else ""
    err.print(f"[green]✓[/green] {report.stage}: {report.total} items{kept}{extra}")
    for note in report.notes:
        err.print(f"  [yellow]note:[/yellow] {note}")


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
        spec, ws, _ = _setup(persona, workspace)
        _dry_run(spec, ws, ("templates",), count=1, seed=seed, model=llm["model"],
                 templates=count or spec.grammar.count, as_json=as_json,
                 batch_api=llm["batch_api"])
        return
    spec, ws, prov = _setup(persona, workspace, provider, llm)
    report = stage.run(spec, ws, prov, seed=seed, count=count, force=force)
    print_json(report.to_dict()) if as_json else _stage_line(report)


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
    from persona.stages import fill as stage

    if dry_run:
        spec, ws, _ = _setup(persona, workspace)
        _dry_run(spec, ws, ("fill",), count=count, seed=seed, model=llm["model"],
                 templates=None, as_json=as_json, batch_api=llm["batch_api"])
        return
    spec, ws, prov = _setup(persona, workspace, provider, llm)
    with llm_bars(not as_json) as (bar, monitor):
        _watch(prov, monitor)
        report = stage.run(spec, ws, prov, count=count, seed=seed, batch_size=batch_size,
                           force=force, on_progress=bar("fill", count))
    print_json(report.to_dict()) if as_json else _stage_line(report)


@click.command()
@common
@provider_options
@llm_options
def questions(persona, workspace, seed, as_json, provider, force, dry_run, **llm):
    """Stage 3: write a journalist's question for every answer."""
    from persona.cli.live import llm_bars
    from persona.stages import questions as stage
    from persona.workspace import Workspace

    if dry_run:
        spec, ws, _ = _setup(persona, workspace)
        total = Workspace.fingerprint(ws.answers).get("count", 0) or DEFAULT_COUNT
        _dry_run(spec, ws, ("questions",), count=total, seed=seed, model=llm["model"],
                 templates=None, as_json=as_json, batch_api=llm["batch_api"])
        return
    spec, ws, prov = _setup(persona, workspace, provider, llm)
    total = Workspace.fingerprint(ws.answers).get("count", 0)
    with llm_bars(not as_json) as (bar, monitor):
        _watch(prov, monitor)
        report = stage.run(spec, ws, prov, seed=seed, force=force,
                           on_progress=bar("questions", total))
    print_json(report.to_dict()) if as_json else _stage_line(report)


def _watch(prov, monitor) -> None:
    if monitor is not None and hasattr(prov, "monitor"):
        prov.monitor = monitor


def split_option(func):
    @click.option("--split", "ratios", type=(float, float, float), default=(0.8, 0.1, 0.1),
                  show_default=True, metavar="TRAIN VAL TEST",
                  callback=_check_split, help="Shares of the train/val/test splits.")
    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        return func(*args, **kwargs)

    return wrapper


def _check_split(ctx, param, value):
    if any(v < 0 for v in value) or abs(sum(value) - 1) > 1e-6:
        raise click.BadParameter("three non-negative shares that sum to 1, e.g. 0.8 0.1 0.1")
    return value


@click.command()
@common
@split_option
@click.option("--count", "-n", type=click.IntRange(min=1), default=None,
              help="Pairs to deliver (default: every unique pair).")
def merge(persona, workspace, seed, as_json, ratios, count):
    """Stage 4: dedup, split and write final/<persona>/ with its report."""
    from persona import pipeline
    from persona.stages import merge as stage

    spec, ws, _ = _setup(persona, workspace)
    with stage_bars(not as_json) as bar:
        report = stage.run(spec, ws, count=count, seed=seed, ratios=ratios,
                           on_progress=bar("merge", count or 0))
    result = pipeline.finish(spec, ws, report)
    print_json(result) if as_json else print_report(result, spec, ws)


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
def run(persona, workspace, seed, as_json, provider, force, ratios, count, n_templates,
        batch_size, dry_run, **llm):
    """Run every generation stage in order and write final/<persona>/ with its report.

    \b
    persona run --persona babis --count 3000        # offline, a few seconds
    persona run -p my_persona.toml -w runs/mine     # your own persona, elsewhere
    persona run --provider openai --model gpt-4o-mini --count 3000 --dry-run
    persona run --provider openai --base-url http://localhost:8000/v1 --max-cost 5
    persona run --provider openai --model gpt-4o-mini --batch-api   # half price, slower

    A rerun resumes: finished batches are kept, answered LLM requests are not sent again;
    --force redoes every stage.
    """
    from persona import pipeline
    from persona.cli.live import llm_bars

    if dry_run:
        spec, ws, _ = _setup(persona, workspace)
        _dry_run(spec, ws, ("templates", "fill", "questions"), count=count, seed=seed,
                 model=llm["model"], templates=n_templates, as_json=as_json,
                 batch_api=llm["batch_api"])
        return
    spec, ws, prov = _setup(persona, workspace, provider, llm)
    opts = pipeline.RunOptions(count=count, seed=seed, batch_size=batch_size,
                               templates=n_templates, ratios=ratios, force=force)
    with llm_bars(not as_json) as (bar, monitor):
        _watch(prov, monitor)
        result, reports = pipeline.run(spec, ws, prov, opts, progress=bar)
    if as_json:
        print_json(result)
        return
    for report in reports:
        _stage_line(report)
    _stage_usage_line(prov)
    print_report(result, spec, ws)


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
    table.add_row("duplicates removed", str(r["stages"]["merge"]["removed"]), "")
    table.add_row("exact duplicates left", str(r["exact_duplicates"]), "0")
    table.add_row("unresolved placeholders", str(r["unresolved_placeholders"]), "0")
    table.add_row("signed answers", f"{r['signature']['percent']:.2f} %", "100 %")
    table.add_row("templates used", str(r["templates"]["used"]), "")
    ta, tq = r["tokens"]["answer"], r["tokens"]["question"]
    table.add_row("answer tokens p50 / p95", f"{ta['p50']} / {ta['p95']}", "")
    table.add_row("question tokens p50 / p95", f"{tq['p50']} / {tq['p95']}", "")
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


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
def personas(as_json):
    """List the built-in personas."""
    from persona.spec import builtin_ids, load_spec

    rows = []
    for pid in builtin_ids():
        s = load_spec(pid)
        rows.append({"id": s.id, "name": s.persona.name, "language": s.persona.language,
                     "styles": list(s.styles), "slip_rate": s.style.slip_rate,
                     "placeholders": {k: len(v.values) for k, v in s.placeholders.items()}})
    if as_json:
        print_json(rows)
        return
    table = Table(title="built-in personas")
    for col in ("id", "name", "lang", "styles", "slip rate", "placeholders (values)"):
        table.add_column(col)
    for r in rows:
        table.add_row(r["id"], r["name"], r["language"], ", ".join(r["styles"]),
                      f"{r['slip_rate']:.0%}",
                      ", ".join(f"{k} ({n})" for k, n in r["placeholders"].items()))
    out.print(table)


@click.command()
@click.argument("name")
@click.option("--from", "source", default="butler", show_default=True,
              help="Built-in persona id or spec file to start from.")
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Where to write the spec (default: NAME.toml).")
@click.option("--force", is_flag=True, help="Overwrite an existing file.")
def init(name, source, output, force):
    """Write an editable persona spec NAME.toml to start from (a copy of a built-in)."""
    import re
    import tomllib

    from persona.errors import PersonaError
    from persona.io import write_text
    from persona.spec import parse_spec, resolve

    if not re.fullmatch(r"[a-z][a-z0-9_-]*", name):
        raise PersonaError(f"persona name {name!r}: use lower-case letters, digits, - and _")
    path = output or Path(f"{name}.toml")
    if path.exists() and not force:
        raise PersonaError("exists; pass --force to overwrite", file=str(path))
    source_path = resolve(source)
    if not source_path.is_file():
        raise PersonaError("no such persona spec", file=str(source_path))
    text = source_path.read_text(encoding="utf-8")
    text = re.sub(r'(?m)^id = ".*"$', f'id = "{name}"', text, count=1)
    parse_spec(tomllib.loads(text), source=str(path))  # what we write must load
    write_text(path, text)
    out.print(f"Wrote [bold]{path}[/bold] (from '{source}'). Edit it, then:\n"
              f"  persona run --persona {path}")


COMMANDS = [templates, fill, questions, merge, run, personas, init]
