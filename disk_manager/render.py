"""Rich tables for people; the library returns data, the CLI chooses this or JSON."""

from __future__ import annotations

import time

from rich.markup import escape
from rich.table import Table

from disk_manager.check import CheckResult
from disk_manager.clean import CleanReport
from disk_manager.estimate import Estimate
from disk_manager.relocate import RelocateReport
from disk_manager.status import Status
from disk_manager.units import format_age, format_size

MAX_ROWS = 30


def status_tables(st: Status) -> list[Table]:
    vols = Table(title="Volumes")
    for col in ("mount", "device", "type", "total", "free", "used %"):
        vols.add_column(col, justify="right" if col in ("total", "free", "used %") else "left")
    for v in st.volumes:
        vols.add_row(v.mount, v.device, v.fstype, format_size(v.total), format_size(v.free),
                     f"{v.percent_used:.0f}%")
    caches = Table(title="Caches")
    for col in ("cache", "path", "located by", "size", "volume"):
        caches.add_column(col, justify="right" if col == "size" else "left")
    for c in st.caches:
        caches.add_row(c.name, c.path, c.basis,
                       format_size(c.bytes) if c.exists else "(absent)", c.mount)
    models = Table(title="Largest repos in the HF cache")
    for col in ("repo", "type", "size", "revisions", "last access"):
        models.add_column(col, justify="right" if col == "size" else "left")
    now = time.time()
    for m in st.models:
        models.add_row(m.repo_id, m.repo_type, format_size(m.bytes), "\n".join(m.revisions),
                       format_age(now - m.last_accessed) + " ago")
    return [vols, caches, models]


def estimate_table(est: Estimate) -> Table:
    t = Table(title=f"Estimate for {est.facts.model} ({est.quant}, {est.checkpoints} "
                    f"checkpoints{', merged export' if est.merge else ''})")
    t.add_column("item")
    t.add_column("size", justify="right")
    t.add_column("where")
    t.add_column("based on")
    where = {"cache": "HF cache", "out": "output dir", "memory": "GPU/CPU memory"}
    for f in est.figures:
        t.add_row(f.name, format_size(f.bytes), where[f.lands], f.basis)
    t.add_row("total on disk", format_size(est.disk_bytes()), "", "download + output dir")
    if est.facts.notes:  # once for the table, not in every row's basis
        t.caption = "note: " + "; ".join(est.facts.notes)
    return t


def check_lines(res: CheckResult) -> list[str]:
    lines = [res.message()]
    lines += [f"  - {s}" for s in res.suggestions]
    return lines


def clean_table(rep: CleanReport) -> Table:
    verb = "Would delete" if rep.dry_run else "Deleted"
    t = Table(title=f"{verb} {len(rep.items)} items, {format_size(rep.planned_bytes)}")
    for col in ("cache", "item", "size", "last used"):
        t.add_column(col, justify="right" if col == "size" else "left")
    now = time.time()
    rows = sorted(rep.items, key=lambda c: -c.bytes)
    for c in rows[:MAX_ROWS]:
        t.add_row(c.cache, escape(c.label), format_size(c.bytes),
                  format_age(now - c.last_used) + " ago")
    if len(rows) > MAX_ROWS:
        rest = rows[MAX_ROWS:]
        t.add_row("", f"… and {len(rest)} more", format_size(sum(c.bytes for c in rest)), "")
    for c in rep.skipped:
        label = f"[dim]{escape(c.label)} — kept: {escape(c.reason)}[/dim]"
        t.add_row(c.cache, label, format_size(c.bytes), "")
    return t


def relocate_table(rep: RelocateReport) -> Table:
    t = Table(title=f"Caches relocated to {rep.dest}")
    for col in ("cache", "from", "to", "done"):
        t.add_column(col)
    for m in rep.moves:
        t.add_row(m.name, m.src, m.dst, m.action + (" + symlink" if m.linked else ""))
    return t
