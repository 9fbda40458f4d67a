"""Options shared by the generation commands, and the spec/workspace/provider set-up."""

from __future__ import annotations

import functools
from pathlib import Path

import click

from persona import defaults
from persona.cli.ui import err
from persona.defaults import DEFAULT_SEED

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
    @click.option("--model", default="gpt-5.4-mini", show_default=True,
                  help="Model to ask (an OpenAI model, or the name a local server serves).")
    @click.option("--reasoning-effort", type=click.Choice(EFFORTS), default=None,
                  help="Reasoning effort of a reasoning model (default: the lowest it allows; "
                  "a persona answer needs no thinking).")
    @click.option("--param", "params", multiple=True, metavar="KEY=VALUE",
                  help="Send this request parameter too (repeatable; the value is read as "
                  "JSON where it parses), e.g. --param top_k=40 for vLLM.")
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
    @click.option("--hedge/--no-hedge", default=True, show_default=True,
                  help="When slots idle (a run's end), send a second copy of a request that is "
                  "slow (3x the median answer time) and use the first answer; at most 2 % "
                  "more requests. Off under --max-cost (a cancelled copy may still be billed).")
    @click.option("--per-request", type=click.IntRange(min=1, max=64),
                  default=defaults.PER_REQUEST, show_default=True,
                  help="Items (answers to write, questions to ask) per request: the prompt "
                  "and the examples are sent once for all of them (about a third of the "
                  "input tokens of one per request; --dry-run compares). Each item is still "
                  "checked, cached and re-asked on its own.")
    @click.option("--fill", "fill_mode", type=click.Choice(["write", "strict"]),
                  default="write", show_default=True,
                  help="How the model writes an answer: 'write' (its own words, in the slot's "
                  "style, about the slot's values, the template as an idea) or 'strict' (the "
                  "template filled word for word between two style phrases).")
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
            "timeout", "hedge", "batch_api", "fill_mode", "reasoning_effort", "params",
            "per_request")
EFFORTS = ("none", "minimal", "low", "medium", "high", "xhigh", "max")


def setup(persona: str, workspace: Path, provider: str | None = None,
           llm: dict | None = None, lock: bool | None = None):
    """Spec, workspace and provider of a command. A command that writes (one with a provider,
    or `lock=True`) holds the workspace lock until it ends; a dry run (no provider) does not."""
    from persona import prompts
    from persona.providers import make_provider, resolve_name
    from persona.spec import load_spec
    from persona.workspace import Workspace

    spec = load_spec(persona)
    ws = Workspace(workspace, spec.id)
    prompts.use_folder(ws.prompts)
    if lock or (lock is None and provider is not None):
        hold_lock(workspace)
    if provider is None:
        return spec, ws, None
    llm = {k: v for k, v in (llm or {}).items() if k in LLM_KEYS}
    name, why = resolve_name(provider, llm.get("base_url"),
                             llm.get("api_key_env") or "OPENAI_API_KEY")
    options = {}
    if name == "openai":
        from persona.providers.models import parse_params

        options = {**llm, "cache_dir": ws.generated / "cache",
                   "batch_dir": ws.generated / "batches",
                   "params": parse_params(llm.get("params") or ())}
        why += f" · model {llm.get('model')}" + (" · Batch API" if llm.get("batch_api") else "")
        if llm.get("fill_mode") == "strict":
            why += " · fill strict"
    err.print(f"[dim]persona [bold]{spec.id}[/bold] · provider [bold]{name}[/bold] ({why}) · "
              f"workspace {workspace.resolve()}[/dim]")
    prov = make_provider(name, **options)
    for warning in getattr(prov, "warnings", ()):
        err.print(f"[yellow]warning:[/yellow] {warning}")
    if hasattr(prov, "close"):
        click.get_current_context().call_on_close(prov.close)
    return spec, ws, prov


def hold_lock(workspace: Path) -> None:
    """Take the workspace lock for the rest of the current click command."""
    from persona.workspace import describe_holder, workspace_lock

    ctx = click.get_current_context()
    previous = ctx.with_resource(workspace_lock(workspace, ctx.command_path))
    if previous:
        err.print(f"[dim]took over the workspace lock left by {describe_holder(previous)}, "
                  "which is no longer running[/dim]")


def split_option(func):
    @click.option("--split", "ratios", type=(float, float, float), default=(0.8, 0.1, 0.1),
                  show_default=True, metavar="TRAIN VAL TEST",
                  callback=_check_split, help="Shares of the train/val/test splits (whole "
                  "templates go to one split, so val/test templates never occur in train).")
    @click.option("--holdout-topics", type=click.IntRange(min=0), default=0, show_default=True,
                  help="Keep this many topics (seeded) out of train altogether, to measure "
                  "generalisation to unseen topics.")
    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        return func(*args, **kwargs)

    return wrapper


def _check_split(ctx, param, value):
    if any(v < 0 for v in value) or abs(sum(value) - 1) > 1e-6:
        raise click.BadParameter("three non-negative shares that sum to 1, e.g. 0.8 0.1 0.1")
    return value


def remote_options(who: str, spent_on: str):
    """--base-url, --api-key-env, --concurrency, --max-cost of a command whose `who`
    (e.g. "openai:MODEL sides") may be answered by an OpenAI-compatible server."""
    def wrap(func):
        for opt in reversed((
            click.option("--base-url", default=None, help=f"OpenAI-compatible server of {who} "
                         "(default: OPENAI_BASE_URL or api.openai.com)."),
            click.option("--api-key-env", default="OPENAI_API_KEY", show_default=True,
                         help="Environment variable that holds the API key."),
            click.option("--concurrency", type=click.IntRange(1), default=16,
                         show_default=True, help="Remote requests in flight at once."),
            click.option("--max-cost", type=click.FloatRange(min=0), default=None,
                         help=f"Stop before spending more than this many USD on {spent_on} "
                         "(answers so far are kept; exit 3)."),
        )):
            func = opt(func)
        return func
    return wrap
