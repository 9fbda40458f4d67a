"""CLI commands: check a chat JSONL before upload (`validate`) and price a fine-tuning run (`cost`).

Both are thin: parse options, call persona.checks, print a rich table or one JSON object.
"""

from __future__ import annotations

import json
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from persona.fmt import plural

# persona.checks.* (tiktoken, pydantic) are imported inside the commands: start-up stays fast.

_FILE = click.Path(path_type=Path)  # existence is checked by the library: one line, exit 2


@click.command()
@click.argument("file", type=_FILE)
@click.option(
    "--model",
    "-m",
    default="gpt-4o-mini",
    show_default=True,
    help="Model to be fine-tuned: sets the tokenizer and the per-example token limit.",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of tables.")
@click.option(
    "--max-findings",
    type=click.IntRange(min=0),
    default=100,
    show_default=True,
    help="Show (and keep) at most N findings; all are still counted.",
)
def validate(file: Path, model: str, as_json: bool, max_findings: int) -> None:
    """Check FILE (chat JSONL) the way OpenAI's fine-tuning upload would.

    Every problem is named by line and field. Exit 0: clean; 1: problems found (a broken line
    is a problem); 2: FILE cannot be read at all (missing, not a file, binary, empty).
    """
    from persona.checks.validate import validate_file

    report = validate_file(file, model=model, max_findings=max_findings)
    if as_json:
        click.echo(json.dumps(report.to_dict(), ensure_ascii=False))
    else:
        _print_validation(report, Console())
    if not report.ok:
        click.get_current_context().exit(1)


def _print_validation(report, console: Console) -> None:
    approx = "" if report.exact else " (≈ approximate: model's encoding unknown)"
    limit = (f"limit {report.max_tokens:,} tokens per example" if report.max_tokens else
             f"token limit unknown for {report.model}: per-example length not checked")
    console.print(
        f"[bold]{report.path}[/]: {plural(report.examples, 'example')} in "
        f"{plural(report.lines, 'line')} · {report.model} · {report.encoding}{approx} · "
        f"{limit} · longest {report.max_example_tokens:,} tokens",
        soft_wrap=True,
    )
    if report.ok:
        console.print("[green]OK[/]: no problems found")
        return
    table = Table("line", "field", "code", "problem", title="Problems")
    for f in report.findings:
        table.add_row("" if f.line is None else str(f.line), f.field or "", f.code, f.message)
    console.print(table)
    shown = (
        ""
        if len(report.findings) == report.n_findings
        else f" (showing {len(report.findings)}; --max-findings to see more)"
    )
    per_code = ", ".join(f"{code} {n}" for code, n in sorted(report.counts.items()))
    console.print(f"[red]{report.n_findings:,} problem(s)[/]{shown}: {per_code}")


@click.command()
@click.argument("file", type=_FILE)
@click.option(
    "--model",
    "-m",
    default="gpt-4o-mini",
    show_default=True,
    help="Model to fine-tune: sets the tokenizer, the price and the token limit.",
)
@click.option(
    "--epochs",
    "-e",
    type=click.IntRange(1, 50),
    default=None,
    help="Training epochs. Default: what OpenAI picks for this many examples "
    "(3, raised for small and lowered for large datasets).",
)
@click.option(
    "--prices",
    "prices_file",
    type=_FILE,
    default=None,
    help="A price table (TOML, the schema of persona/data/prices.toml) to use "
    "instead of the shipped one.",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object with every figure.")
def cost(
    file: Path, model: str, epochs: int | None, prices_file: Path | None, as_json: bool
) -> None:
    """Count FILE's tokens as OpenAI bills chat fine-tuning and price the training run.

    Lines that are not chat examples are not counted and are reported as a warning.
    Figures marked ≈ are approximate (the model's tokenizer is unknown).
    """
    from persona.checks.cost import cost_file, load_prices

    prices = load_prices(prices_file) if prices_file else None
    report = cost_file(file, model, epochs=epochs, prices=prices)
    err = Console(stderr=True)
    for warning in report.warnings:
        err.print(f"[yellow]warning:[/] {warning}", highlight=False, soft_wrap=True)
    if as_json:
        click.echo(json.dumps(report.to_dict(), ensure_ascii=False))
    else:
        _print_cost(report, Console())


def _print_cost(r, console: Console) -> None:
    ap = "" if r.exact else "≈"
    cap = f"{r.max_example_tokens:,}" if r.max_example_tokens else "none known"
    epochs = f"{r.epochs}" + (" (OpenAI default for this size)" if r.epochs_default else "")
    d = r.distribution
    table = Table(show_header=False, title=f"Fine-tuning cost · {r.model}")
    table.add_column(style="bold")
    table.add_column(justify="right")
    for label, value in [
        ("file", r.path),
        ("examples counted", f"{r.examples:,}" + (f" ({r.skipped} skipped)" if r.skipped else "")),
        ("tokenizer", r.encoding + ("" if r.exact else " (approximate)")),
        (
            "tokens per example",
            f"{ap}min {d['min']:,} · mean {d['mean']:,} · median "
            f"{d['median']:,} · p95 {d['p95']:,} · max {d['max']:,}",
        ),
        ("tokens", f"{ap}{r.tokens:,}"),
        ("billed per epoch", f"{ap}{r.billed_tokens:,} (limit {cap} per example)"),
        ("epochs", epochs),
        ("trained tokens", f"{ap}{r.trained_tokens:,}"),
        ("price", _price(r)),
        ("cost", "unknown (no price)" if r.cost is None else
         f"[bold]{ap}{_money(r.cost)} {r.currency}[/]"),
    ]:
        table.add_row(label, value)
    console.print(table)


def _price(r) -> str:
    if r.price_per_1m is None:
        return f"unknown for {r.model} (prices as of {r.prices_as_of}; --prices FILE)"
    return (f"{r.price_per_1m:.2f} {r.currency} / 1M ({r.price_model}, "
            f"prices as of {r.prices_as_of})")


def _money(amount: float) -> str:
    # Cents hide small runs (a 100-example test costs a fraction of a cent).
    return f"{amount:,.2f}" if amount >= 1 else f"{amount:.4f}"


COMMANDS = [validate, cost]
