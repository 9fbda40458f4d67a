"""CLI: `persona moderate FILE|FINAL_DIR` — what would get the training file blocked, and the
fix. Thin: options in, persona.checks.moderation does the work, a rich report out."""

from __future__ import annotations

import json
from pathlib import Path

import click
from rich.markup import escape
from rich.table import Table

from persona.cli.ui import err, out, print_json
from persona.fmt import plural

PROVIDER_HELP = ("Who judges: 'openai' (the moderation endpoint, free, needs a key or "
                 "--base-url), 'llamaguard' (Llama Guard 3 behind an OpenAI-compatible server, "
                 "needs --base-url), 'offline' (word lists, a heuristic). Default: openai when "
                 "OPENAI_API_KEY or a base URL is set, else offline.")


@click.command()
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--provider", type=click.Choice(["offline", "openai", "llamaguard"]),
              default=None, help=PROVIDER_HELP)
@click.option("--base-url", default=None, help="Server of the moderator (and of the LLM "
              "rewriter), e.g. http://localhost:8000/v1 (default: OPENAI_BASE_URL or "
              "api.openai.com).")
@click.option("--model", default=None, help="Moderation model (default: "
              "omni-moderation-latest; llamaguard: meta-llama/Llama-Guard-3-8B).")
@click.option("--api-key-env", default="OPENAI_API_KEY", show_default=True,
              help="Environment variable that holds the API key.")
@click.option("--threshold", type=click.FloatRange(0, 1), default=None,
              help="Flag a category when its score reaches this (0..1). Default: the "
              "moderator's own flags (offline: score 0.5).")
@click.option("--concurrency", type=click.IntRange(min=1), default=8, show_default=True,
              help="Requests in flight at once.")
@click.option("--rpm", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Stay under this many requests per minute.")
@click.option("--batch-size", type=click.IntRange(1, 2048), default=32, show_default=True,
              help="Texts per moderation request (openai).")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), default=60.0,
              show_default=True, help="Seconds to wait for one answer before retrying.")
@click.option("--fix", type=click.Choice(["drop", "regenerate"]), default=None,
              help="drop: remove flagged examples; regenerate: rewrite them and check again. "
              "A final/ folder is rewritten in place (splits, meta, report, card); a file "
              "gives moderation/fixed.jsonl. Originals go to moderation/replaced.jsonl.")
@click.option("--rounds", type=click.IntRange(1, 10), default=3, show_default=True,
              help="regenerate: rewrite-and-check rounds before a still-flagged example is "
              "dropped.")
@click.option("--rewriter", type=click.Choice(["auto", "offline", "llm"]), default="auto",
              show_default=True, help="regenerate: 'offline' (another template and values; "
              "a final/ folder of a built-in or --persona spec) or 'llm' (--rewrite-model at "
              "--base-url). auto: llm when a key or base URL is set, else offline.")
@click.option("--rewrite-model", default="gpt-5.4-mini", show_default=True,
              help="regenerate with an LLM: the chat model that rewrites.")
@click.option("--persona", "-p", default=None, help="The spec that made a final/ folder "
              "(default: the persona named in its report.json).")
@click.option("--seed", type=int, default=42, show_default=True,
              help="Seed of the offline rewriter's choices.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of tables.")
def moderate(path: Path, provider, base_url, model, api_key_env, threshold, concurrency, rpm,
             batch_size, timeout, fix, rounds, rewriter, rewrite_model, persona, seed,
             as_json) -> None:
    """Find what would get PATH blocked at upload: flagged examples by line and category,
    and PII (masked). PATH: a chat JSONL file or a final/<persona>/ folder.

    \b
    persona moderate final/babis/train.jsonl
    persona moderate final/babis --provider llamaguard --base-url http://localhost:8000/v1
    persona moderate final/babis --fix regenerate

    Writes moderation/ beside PATH: clean.jsonl, flagged.jsonl, report.json. Exit 0: nothing
    flagged (after --fix: the fixed files are clean); 1: flagged or PII found; 2: bad input.
    """
    from persona.checks import moderation as M
    from persona.checks import moderation_fix as F

    src, out_dir = M.input_and_outputs(path)
    llm = {"api_key_env": api_key_env, "concurrency": concurrency, "rpm": rpm,
           "timeout": timeout, "batch_size": batch_size}
    final = path if path.is_dir() else None
    spec = F.spec_for(final, persona) if fix and final is not None else None
    writer = (_rewriter(path, out_dir, rewriter, rewrite_model, base_url, spec, seed, llm)
              if fix == "regenerate" else None)
    moderator = M.open_moderator(provider, base_url=base_url, model=model,
                                 cache_dir=out_dir / "cache", **llm)
    try:
        with _bar(not as_json, "moderate") as bar:
            outcome, screened = M.moderate_and_keep(src, moderator, out_dir,
                                                    threshold=threshold, on_progress=bar)
        if fix and (outcome.flagged or outcome.pii or final is None):
            outcome.fix = F.fix(screened, moderator, threshold, mode=fix, rounds=rounds,
                                out_dir=out_dir, final_dir=final, rewriter=writer)
            if final is not None:
                F.refresh_report(final, spec, outcome.fix)
            _save_fix(out_dir, outcome.fix)
    finally:
        M.close(moderator)
    if as_json:
        print_json(outcome.to_dict())
    else:
        print_outcome(outcome)
    # After --fix the written files are clean: what stayed flagged was dropped, PII masked.
    if not outcome.ok and outcome.fix is None:
        click.get_current_context().exit(1)


def _rewriter(path: Path, out_dir: Path, rewriter: str, rewrite_model: str, base_url,
              spec, seed: int, llm: dict):
    """The regenerate rewriter, made before anything is sent (a bad choice fails first)."""
    from persona.checks import moderation_fix as F
    from persona.providers import resolve_name

    kind = rewriter
    if kind == "auto":
        auto = resolve_name("auto", base_url, llm["api_key_env"])[0]
        kind = "llm" if auto == "openai" else "offline"
    if kind == "offline":
        if not path.is_dir():
            raise_input("offline --fix regenerate needs a final/<persona>/ folder (its template "
                        "bank and meta.jsonl); use --rewriter llm or --fix drop", path)
        return F.OfflineRewriter(path, spec, seed)
    return F.LLMRewriter(base_url=base_url, model=rewrite_model, api_key_env=llm["api_key_env"],
                         concurrency=llm["concurrency"], rpm=llm["rpm"], timeout=llm["timeout"],
                         cache_dir=out_dir / "cache")


def _save_fix(out_dir: Path, info: dict) -> None:
    from persona.io import write_json

    report = json.loads((out_dir / "report.json").read_text(encoding="utf-8"))
    report["fix"] = info
    write_json(out_dir / "report.json", report)


def raise_input(message: str, path: Path):
    from persona.errors import InputError

    raise InputError(message, file=str(path))


def _bar(enabled: bool, label: str):
    from contextlib import contextmanager

    from persona.cli.ui import stage_bars

    @contextmanager
    def one():
        with stage_bars(enabled) as bars:
            yield bars(label, 0)

    return one()


def print_outcome(o) -> None:
    kind = "heuristic screen" if o.heuristic else "moderation"
    out.print(f"[bold]{escape(o.path)}[/]: {plural(o.total, 'example')}, "
              f"{o.texts_checked:,} distinct texts checked · {o.provider} ({o.model}) · "
              f"{kind}", soft_wrap=True)
    if o.by_category:
        table = Table("category", "examples", "share", "worst (line: text)",
                      title="Flagged by category")
        for cat, n in sorted(o.by_category.items(), key=lambda kv: -kv[1]):
            worst = "\n".join(f"{w['line']}: {escape(w['text'])}" for w in o.worst.get(cat, []))
            table.add_row(cat, str(n), f"{n / o.total:.2%}", worst)
        out.print(table)
    if o.pii_by_kind:
        out.print("PII found (masked in every output): " + ", ".join(
            f"{k} {n}" for k, n in o.pii_by_kind.items()) + f"; lines in {o.out_dir}/report.json")
    color = "green" if o.ok else "red"
    out.print(f"[bold {color}]verdict:[/] {o.verdict}", soft_wrap=True)
    for line in o.advice:
        out.print(f"  · {line}", soft_wrap=True, highlight=False)
    if o.fix:
        f = o.fix
        out.print(f"[bold]fix ({f['mode']}):[/] {f['flagged']} flagged → {f['regenerated']} "
                  f"regenerated, {f['dropped']} dropped; result in {f['output']}; originals "
                  f"in {o.out_dir}/replaced.jsonl", soft_wrap=True)
    err.print(f"[dim]outputs in {o.out_dir}: clean.jsonl, flagged.jsonl, report.json[/]")


COMMANDS = [moderate]
