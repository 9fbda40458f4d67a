"""Rich output helpers shared by the commands: progress bars on stderr, tables on stdout."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager

import click
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

out = Console()
err = Console(stderr=True)


@contextmanager
def stage_bars(enabled: bool = True) -> Iterator:
    """Yields `bar(stage, total) -> on_progress(done, total)`: one bar per stage."""
    if not enabled:
        yield lambda stage, total: (lambda done, total: None)
        return
    progress = Progress(TextColumn("[bold]{task.description:<10}"), BarColumn(),
                        MofNCompleteColumn(), TimeElapsedColumn(), TextColumn("ETA"),
                        TimeRemainingColumn(), console=err, transient=False)
    started = []

    def bar(stage: str, total: int):
        if not started:  # shown from the first bar on: an early error prints no blank line
            progress.start()
            started.append(True)
        task = progress.add_task(stage, total=total)
        return lambda done, total: progress.update(task, completed=done, total=total)

    try:
        yield bar
    finally:
        if started:
            progress.stop()


def print_json(obj) -> None:
    click.echo(json.dumps(obj, ensure_ascii=False, indent=2))


def print_estimates(estimates: list[dict], what: str = "side {side}") -> None:
    """One line per remote model before it is asked: asks to send, tokens, the most USD."""
    for e in estimates:
        usd = "no price known" if e["max_usd"] is None else f"at most ${e['max_usd']:.4f}"
        out.print(f"{what.format(**e)} (openai:{e['model']}): {e['questions']:,} questions "
                  f"to ask, {e['input_tokens']:,} tokens in + at most "
                  f"{e['max_output_tokens']:,} out, {usd}", highlight=False)
