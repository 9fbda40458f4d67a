"""Progress bars for LLM runs: items per stage, plus requests in flight against the
concurrency limit (lowered while the server rate-limits), retries, and money spent (or the
Batch API batch's status and counts)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from persona.cli.ui import err

# Columns of a row besides the live text: name 10, bar 16, 3000/3000, 0:00:41, ETA, 0:00:12
LINE_FIXED = 62


@contextmanager
def llm_bars(enabled: bool = True) -> Iterator[tuple]:
    """Yields (bar, monitor): `bar(stage, total)` as stage_bars gives it; `monitor(info)`,
    the provider's per-request callback, shows requests in flight and USD spent."""
    if not enabled:
        yield (lambda stage, total: (lambda done, total: None)), None
        return
    progress = Progress(TextColumn("[bold]{task.description:<10}"), BarColumn(bar_width=16),
                        MofNCompleteColumn(), TimeElapsedColumn(), TextColumn("ETA"),
                        TimeRemainingColumn(), TextColumn("{task.fields[live]}"),
                        console=err, transient=False)
    state = {"task": None, "last": 0.0, "tasks": []}

    def bar(stage: str, total: int):
        if not state["tasks"]:  # shown from the first bar on: an early error prints nothing
            progress.start()
        task = progress.add_task(stage, total=total, live="")
        state["tasks"].append(task)
        state["task"] = task
        return lambda done, total: progress.update(task, completed=done, total=total)

    def current():
        """The first stage still running (stages overlap in an LLM run), else the last."""
        for t in progress.tasks:
            if t.id in state["tasks"] and (t.total is None or t.completed < t.total):
                return t.id
        return state["task"]

    def monitor(info: dict) -> None:
        if info.get("kind") == "adapted":  # the server refused a parameter: said once
            err.print(f"[yellow]adapted:[/yellow] {info['note']}")
            return
        now = time.monotonic()
        if state["task"] is None or now - state["last"] < 0.1:  # redraws cost CPU
            return
        state["last"] = now
        batch = info.get("batch")
        if batch:  # Batch API mode: the batch's own progress, as the server reports it
            live = (f"batch {batch['status']} {batch['completed']}/{batch['total']} · "
                    f"${info['spent']:.4f}")
        else:
            limit = info.get("limit", 0)
            lowered = (f" (429s: limit {limit}/{info['concurrency']})"
                       if limit and limit < info.get("concurrency", limit) else "")
            retried = f" · {info['retried']} retried" if info.get("retried") else ""
            tokens = ""
            if info.get("reasoning_tokens") or info.get("cached_tokens"):
                tokens = (f" · {_k(info.get('reasoning_tokens', 0))} reasoning, "
                          f"{_k(info.get('cached_tokens', 0))} cached")
            live = (f"{info['in_flight']:>3} in flight{lowered} · {info['requests']} sent"
                    f"{retried}{tokens} · ${info['spent']:.4f}")
        # one row must fit the terminal, or every redraw wraps and repeats it
        room = max(20, err.width - LINE_FIXED)
        if len(live) > room:
            live = live[:room - 1] + "…"
        for task in state["tasks"]:  # the live figures sit on the running stage's row
            progress.update(task, live=live if task == current() else "")

    try:
        yield bar, monitor
    finally:
        if state["tasks"]:
            progress.stop()


def _k(n: int) -> str:
    """A token count in few characters: 950, 12.3k, 4.1M."""
    if n >= 1_000_000:
        return f"{n / 1e6:.1f}M"
    return f"{n / 1e3:.1f}k" if n >= 1000 else str(n)
