"""CLI helpers of the LLM provider: the dry-run table, usage lines, live monitoring."""

from __future__ import annotations

from rich.table import Table

from persona.cli.ui import err, out, print_json


def _dry_run(spec, ws, stages: tuple[str, ...], *, count: int, seed: int, model: str,
             templates: int | None, as_json: bool, batch_api: bool = False,
             fill_mode: str = "write", per_request: int | None = None,
             tpm: float | None = None) -> None:
    """Print what the LLM stages would cost; send nothing. With items grouped per request,
    also how the chosen --per-request compares with one item per request: input tokens per
    pair, the share a prefix cache can serve, cost, and the least time --tpm allows."""
    from persona.checks.prices import lifecycle
    from persona.defaults import PER_REQUEST
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
    k = per_request or PER_REQUEST

    def rows_for(k: int) -> list[dict]:
        return [r for r in estimate(spec, count=count, seed=seed, model=model,
                                    templates=templates, bank=bank, batch_api=batch_api,
                                    fill_mode=fill_mode, per_request=k)
                if r["stage"] in stages]

    rows = rows_for(k)
    compare = [] if batch_api or k == 1 or not any(r["per_request"] > 1 for r in rows) \
        else [(1, rows_for(1)), (k, rows)]
    if as_json:
        if compare:  # each grouped row says what one item per request would take
            solo = {r["stage"]: r for r in compare[0][1]}
            rows = [{**r, "one_per_request": {k: solo[r["stage"]][k] for k in (
                "requests", "input_tokens", "output_tokens", "tpm_tokens", "cost_usd")}}
                if r["per_request"] > 1 else r for r in rows]
        print_json(rows)
        return
    discount = " · Batch API discount applied" if batch_api else ""
    table = Table(title=f"dry run · {model}{discount} · nothing sent")
    for col in ("stage", "requests", "items / request", "input tokens", "output tokens",
                "expected USD"):
        table.add_column(col, justify="left" if col == "stage" else "right")
    for r in rows:
        cost = "not priced" if r["cost_usd"] is None else f"{r['cost_usd']:.4f}"
        table.add_row(r["stage"], f"{r['requests']:,}", str(r["per_request"]),
                      f"{r['input_tokens']:,}", f"{r['output_tokens']:,}", cost)
    costs = [r["cost_usd"] for r in rows]
    if rows and None not in costs:
        table.add_row("total", f"{sum(r['requests'] for r in rows):,}", "", "", "",
                      f"{sum(costs):.4f}")
    out.print(table)
    if compare:
        cmp = Table(title=f"items per request (--per-request) · {count:,} pairs")
        for col in ("per request", "input tokens / pair", "cacheable (vLLM)",
                    "cached (OpenAI)", "expected USD", f"least time at {_tpm(tpm)}"):
            cmp.add_column(col, justify="right")
        for n, rs in compare:
            s = _summary(n, rs, count, tpm)
            cmp.add_row(str(n), f"{s['input_tokens_per_pair']:,.1f}",
                        f"{s['cacheable_share']:.0%}", f"{s['openai_cached_share']:.0%}",
                        "not priced" if s["cost_usd"] is None else f"{s['cost_usd']:.4f}",
                        _minutes(s["min_minutes"]))
        out.print(cmp)
        out.print("[dim]Cacheable: input that repeats the start of an earlier request (the "
                  "prompt, then the examples a block of items shares), which vLLM's prefix "
                  "caching serves; OpenAI caches a shared prefix only from 1,024 tokens on. "
                  "Least time: what a tokens-per-minute limit counts (prompt + max_tokens) "
                  "over that limit" + ("" if tpm else "; pass --tpm to see it") + ".[/dim]")
    out.print("[dim]Without retries; a stage retries only the items it rejects.[/dim]")


def _summary(k: int, rows: list[dict], count: int, tpm: float | None) -> dict:
    """Fill and questions of one --per-request: per pair, shares, cost, least minutes."""
    rs = [r for r in rows if r["stage"] in ("fill", "questions")]
    inp = sum(r["input_tokens"] for r in rs)
    costs = [r["cost_usd"] for r in rs]
    charged = sum(r["tpm_tokens"] for r in rs)
    return {"per_request": k, "requests": sum(r["requests"] for r in rs),
            "input_tokens_per_pair": inp / count if count else 0.0,
            "cacheable_share": sum(r["cacheable_tokens"] for r in rs) / inp if inp else 0.0,
            "openai_cached_share": sum(r["openai_cached_tokens"] for r in rs) / inp
            if inp else 0.0,
            "cost_usd": None if None in costs else round(sum(costs), 4),
            "tpm_tokens": charged, "min_minutes": charged / tpm if tpm else None}


def _tpm(tpm: float | None) -> str:
    return f"--tpm {tpm:,.0f}" if tpm else "--tpm"


def _minutes(m: float | None) -> str:
    if m is None:
        return "–"
    return f"{m:.1f} min" if m < 120 else f"{m / 60:.1f} h"


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
    grouped = getattr(getattr(prov, "pool", None), "grouped", None) or {}
    carried = (f" carrying {grouped['items']:,} items" if grouped.get("requests") else "")
    err.print(f"  [dim]{stats['requests']} requests sent{carried}{retried}, {stats['cached']} "
              f"answered "
              f"from the cache, {stats['prompt_tokens']:,} + {stats['completion_tokens']:,} "
              f"tokens{detail_text}, ${prov.spent:.4f} spent in this workspace[/dim]")



def _watch(prov, monitor) -> None:
    if monitor is not None and hasattr(prov, "monitor"):
        prov.monitor = monitor
