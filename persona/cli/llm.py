"""CLI helpers of the LLM provider: the dry-run table, usage lines, live monitoring."""

from __future__ import annotations

from rich.table import Table

from persona.cli.ui import err, out, print_json


def _dry_run(spec, ws, stages: tuple[str, ...], *, count: int, seed: int, model: str,
             templates: int | None, as_json: bool, batch_api: bool = False,
             fill_mode: str = "write") -> None:
    """Print what the LLM stages would cost; send nothing."""
    from persona.checks.prices import lifecycle
    from persona.errors import ProviderError
    from persona.providers.llm_estimate import estimate
    from persona.stages import templates as templates_stage

    error, warning = lifecycle(model)
    if error:
        raise ProviderError(error)
    if warning:
        err.print(f"[yellow]warning:[/yellow] {warning}")
    bank = None  # an existing bank is kept by stage 1, so it costs nothing
    if ws.templates_file.exists() and stages != ("templates",):
        bank = templates_stage.load(ws.templates_file, spec)
    rows = [r for r in estimate(spec, count=count, seed=seed, model=model,
                                templates=templates, bank=bank, batch_api=batch_api,
                                fill_mode=fill_mode)
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
    retried = (f", {stats['retried']} retried ({stats.get('rate_limited', 0)} after a 429)"
               if stats.get("retried") else "")
    if stats.get("hedged"):
        retried += f", {stats['hedged']} slow ones sent twice (--no-hedge: never)"
    detail = []
    if stats.get("cached_tokens"):
        detail.append(f"{stats['cached_tokens']:,} of them from the prompt cache")
    if stats.get("reasoning_tokens"):
        detail.append(f"{stats['reasoning_tokens']:,} reasoning")
    if stats.get("cut"):
        detail.append(f"{stats['cut']} answers cut by the token limit")
    detail_text = f" ({'; '.join(detail)})" if detail else ""
    err.print(f"  [dim]{stats['requests']} requests sent{retried}, {stats['cached']} answered "
              f"from the cache, {stats['prompt_tokens']:,} + {stats['completion_tokens']:,} "
              f"tokens{detail_text}, ${prov.spent:.4f} spent in this workspace[/dim]")



def _watch(prov, monitor) -> None:
    if monitor is not None and hasattr(prov, "monitor"):
        prov.monitor = monitor
