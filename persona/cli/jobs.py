"""CLI: `persona upload` and `persona jobs …` — OpenAI (or compatible) fine-tuning jobs.

Thin: options, then persona.upload; the progress display lives here. Nothing here imports
openai at module level (`persona --help` stays light).
"""

from __future__ import annotations

import functools
from pathlib import Path

import click
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from persona.cli.ui import err, out, print_json
from persona.fmt import plural


def server_options(func):
    @click.option("--base-url", default=None,
                  help="OpenAI-compatible server (Azure OpenAI speaks the same API); default: "
                  "OPENAI_BASE_URL or api.openai.com.")
    @click.option("--api-key-env", default="OPENAI_API_KEY", show_default=True,
                  help="Environment variable that holds the API key (never a flag).")
    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        return func(*args, **kwargs)

    return wrapper


def wait_options(func):
    @click.option("--poll-interval", type=click.FloatRange(min=0, min_open=True), default=15.0,
                  show_default=True, help="Seconds between status checks while waiting.")
    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        return func(*args, **kwargs)

    return wrapper


@click.command()
@click.argument("target", metavar="FILE|FINAL_DIR", type=click.Path(path_type=Path))
@click.option("--model", "-m", default="gpt-4o-mini-2024-07-18", show_default=True,
              help="Base model to fine-tune.")
@click.option("--epochs", type=click.IntRange(1, 50), default=None,
              help="Training epochs (default: OpenAI's choice for the dataset size).")
@click.option("--batch-size", type=click.IntRange(1, 256), default=None,
              help="Batch size (default: OpenAI's choice).")
@click.option("--learning-rate-multiplier", type=click.FloatRange(min=0, min_open=True,
              max=10), default=None, help="Learning-rate multiplier (default: OpenAI's choice).")
@click.option("--suffix", default=None, callback=lambda c, p, v: _suffix(v),
              help="Up to 64 characters put into the fine-tuned model's name.")
@click.option("--seed", type=click.IntRange(min=0), default=None,
              help="Seed of the job (same seed, same data: reproducible, as far as OpenAI is).")
@click.option("--wait", is_flag=True, help="Follow the job to its end and print the model id.")
@click.option("--strict", is_flag=True,
              help="Refuse to upload when moderation flags anything (default: warn).")
@click.option("--moderator", type=click.Choice(["offline", "openai", "llamaguard"]),
              default=None, help="Who moderates before the upload (default: OpenAI's "
              "moderation endpoint when a key or base URL is set, else the offline screen).")
@server_options
@wait_options
@click.option("--json", "as_json", is_flag=True, help="Print the upload record entry as JSON.")
def upload(target: Path, model: str, epochs, batch_size, learning_rate_multiplier, suffix,
           seed, wait: bool, strict: bool, moderator, base_url, api_key_env,
           poll_interval: float, as_json: bool) -> None:
    """Validate, moderate and upload FILE (or FINAL_DIR's train.jsonl + val.jsonl), then
    create an OpenAI fine-tuning job.

    The file and job ids are saved (FINAL_DIR/upload.json, or FILE.upload.json) before
    waiting: a rerun with the same data and parameters continues that upload and that job;
    it never uploads a file twice or creates a second job. Exit 1: a check found problems,
    the job failed, or OpenAI no longer trains for this organisation.
    """
    from persona import openai_client as api
    from persona import upload as up

    p = up.plan(target)
    params = up.JobParams(model, epochs, batch_size, learning_rate_multiplier, suffix, seed)
    client = api.make_client(base_url, api_key_env)  # no key: say so before the long checks
    server = api.server_url(base_url)
    up.validate(p, model)
    err.print(f"[dim]validated {', '.join(f.name for f in p.files.values())} for {model}[/dim]")
    uploaded = sum(up.count_examples(path) for path in p.files.values())
    for o in up.moderate(p, strict=strict, provider=moderator, base_url=base_url,
                         warn=lambda w: err.print(f"[yellow]warning:[/] {w}", highlight=False)):
        if o.ok:
            of = (f" of {Path(o.path).name} (the {uploaded:,} uploaded among them)"
                  if o.total != uploaded else "")
            err.print(f"[dim]moderation: {plural(o.total, 'example')}{of}, nothing flagged "
                      f"by {'the word-list screen' if o.heuristic else o.provider}[/dim]")
    with api.api_errors(server):
        entry = up.upload(p, params, client, server,
                          on_step=lambda s: err.print(f"  {s}", highlight=False))
        job_id = entry["job"]["id"]
        err.print(f"job [bold]{job_id}[/] · {entry['job']['status']} · recorded in {p.record}",
                  highlight=False)
        if wait:
            job = _follow(client, job_id, poll_interval)
            up.update_job(p.record, entry["key"], job)
            entry["job"] = up.load_record(p.record)["uploads"][entry["key"]]["job"]
            up.finished(job)  # JobFailed (exit 1) unless it succeeded
    if as_json:
        print_json(entry)
    elif wait or entry["job"].get("fine_tuned_model"):
        model_id = entry["job"]["fine_tuned_model"]
        out.print(f"fine-tuned model: [bold]{model_id}[/]", highlight=False)
    else:
        out.print(f"{job_id}  (follow it: persona jobs show {job_id} --wait)", highlight=False)


def _suffix(value: str | None) -> str | None:
    if value is not None and not (0 < len(value) <= 64):
        raise click.BadParameter("1 to 64 characters")
    return value


def _follow(client, job_id: str, poll: float):
    from persona import upload as up

    progress = Progress(TextColumn("[bold]{task.description:<16}"), BarColumn(),
                        MofNCompleteColumn(), TextColumn("{task.fields[loss]}"),
                        TimeElapsedColumn(), console=err, transient=False)
    with progress:
        task = progress.add_task("waiting", total=None, loss="")

        def on_event(event) -> None:
            data = event.data if isinstance(event.data, dict) else {}
            if event.type == "metrics" and "step" in data:
                loss = data.get("train_loss")
                progress.update(task, completed=data["step"], total=data.get("total_steps"),
                                loss=f"loss {loss:.3f}" if isinstance(loss, float) else "")
            else:
                progress.console.print(f"  {event.message}", highlight=False)

        def on_job(job) -> None:
            progress.update(task, description=job.status)

        return up.follow(client, job_id, poll=poll, on_event=on_event, on_job=on_job)


# -- persona jobs ----------------------------------------------------------------------------

@click.group()
def jobs() -> None:
    """List, follow and cancel fine-tuning jobs on OpenAI or a compatible server."""


@jobs.command("list")
@click.option("--limit", type=click.IntRange(1, 100), default=20, show_default=True,
              help="How many of the newest jobs to show.")
@server_options
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def list_cmd(limit: int, base_url, api_key_env, as_json: bool) -> None:
    """The newest fine-tuning jobs."""
    client, server = _client(base_url, api_key_env)
    with _errors(server):
        page = client.fine_tuning.jobs.list(limit=limit).data
    if as_json:
        print_json([j.model_dump(mode="json") for j in page])
        return
    table = Table(title=f"fine-tuning jobs · {server}")
    for col in ("id", "status", "model", "fine-tuned model", "created"):
        table.add_column(col, no_wrap=col in ("id", "status"))
    for j in page:
        table.add_row(j.id, j.status, j.model, j.fine_tuned_model or "", _time(j.created_at))
    out.print(table)


@jobs.command("show")
@click.argument("job_id")
@click.option("--wait", is_flag=True, help="Follow the job to its end and print the model id.")
@server_options
@wait_options
@click.option("--json", "as_json", is_flag=True, help="Print the job as JSON.")
def show(job_id: str, wait: bool, base_url, api_key_env, poll_interval: float,
         as_json: bool) -> None:
    """One job: status, model, hyperparameters; --wait follows it to its end."""
    from persona import upload as up

    client, server = _client(base_url, api_key_env)
    with _errors(server):
        job = _follow(client, job_id, poll_interval) if wait else \
            client.fine_tuning.jobs.retrieve(job_id)
    if as_json:
        print_json(job.model_dump(mode="json"))
    else:
        hp = job.hyperparameters
        out.print(f"{job.id} · {job.status} · {job.model} · epochs {hp.n_epochs} · batch "
                  f"{hp.batch_size} · lr× {hp.learning_rate_multiplier}", highlight=False)
        if job.fine_tuned_model:
            out.print(f"fine-tuned model: [bold]{job.fine_tuned_model}[/]", highlight=False)
    if wait:
        up.finished(job)


@jobs.command("events")
@click.argument("job_id")
@click.option("--limit", type=click.IntRange(1, 1000), default=50, show_default=True,
              help="How many of the newest events.")
@server_options
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def events(job_id: str, limit: int, base_url, api_key_env, as_json: bool) -> None:
    """A job's events, oldest first."""
    client, server = _client(base_url, api_key_env)
    with _errors(server):
        page = client.fine_tuning.jobs.list_events(job_id, limit=limit).data
    page = sorted(page, key=lambda e: (e.created_at, e.id))
    if as_json:
        print_json([e.model_dump(mode="json") for e in page])
        return
    for e in page:
        out.print(f"{_time(e.created_at)}  {e.level:<5} {e.message}", highlight=False)


@jobs.command("cancel")
@click.argument("job_id")
@server_options
def cancel(job_id: str, base_url, api_key_env) -> None:
    """Cancel a job that has not ended (one that has is refused: exit 2)."""
    from persona.errors import InputError
    from persona.upload import TERMINAL

    client, server = _client(base_url, api_key_env)
    with _errors(server):
        job = client.fine_tuning.jobs.retrieve(job_id)
        if job.status in TERMINAL:
            ended = "been cancelled" if job.status == "cancelled" else job.status
            raise InputError(f"job {job.id} has already {ended}: nothing to cancel")
        job = client.fine_tuning.jobs.cancel(job_id)
    out.print(f"{job.id} · {job.status}", highlight=False)


def _client(base_url, api_key_env):
    from persona import openai_client as api

    return api.make_client(base_url, api_key_env), api.server_url(base_url)


def _errors(server: str):
    from persona import openai_client as api

    return api.api_errors(server)


def _time(ts: int | None) -> str:
    import datetime as dt

    if not ts:
        return ""
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


COMMANDS = [upload, jobs]
