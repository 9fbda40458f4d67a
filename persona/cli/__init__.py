"""The `persona` command line. Commands parse, call one library function, print.

Known errors (PersonaError) become one line on stderr and their exit code, here and only here;
`--debug` re-raises them with the traceback. Heavy imports (torch, openai) live inside commands.
"""

from __future__ import annotations

import logging
import sys

import click

from persona import __version__
from persona.errors import PersonaError


class PersonaGroup(click.Group):
    """A click group that turns our known errors into one line and an exit code, and lists
    its commands in the order of the workflow (stages, checks, training), not alphabetically;
    a command's module is imported when it is needed (LAZY_COMMANDS)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(LAZY_COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        return _command(name)

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except PersonaError as e:
            if ctx.obj and ctx.obj.get("debug"):
                raise
            if not getattr(e, "quiet", False):  # quiet: said once already, by another process
                click.echo(f"error: {e}", err=True)
            ctx.exit(e.exit_code)
        except OSError as e:
            # The environment refused a read or write (permissions, a full disk, a device
            # where a folder belongs): one line, like our own errors; --debug shows where.
            if ctx.obj and ctx.obj.get("debug"):
                raise
            where = f"{e.filename}: " if e.filename else ""
            first = (str(e.strerror or e).splitlines() or [type(e).__name__])[0]
            click.echo(f"error: {where}{first}", err=True)
            ctx.exit(2)
        except KeyboardInterrupt:
            click.echo("interrupted; finished batches are kept, run again to resume", err=True)
            ctx.exit(130)


@click.group(cls=PersonaGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="persona")
@click.option("--debug", is_flag=True, help="Show tracebacks and debug logs.")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """Build persona style-transfer datasets, check them before upload, fine-tune on them.

    \b
    Quickstart (offline, no API key, a few seconds):
      persona run --persona babis --count 3000
      persona validate final/babis/train.jsonl
      persona cost final/babis/train.jsonl --model gpt-4o-mini

    Every stage reads and writes files in a workspace (--workspace, default: the current
    folder); a rerun resumes where it stopped.
    """
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug
    logging.basicConfig(level=logging.DEBUG if debug else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")


# Each command's module, in the order of the workflow: a command's module (and what it
# imports: pydantic for finetune, rich tables for checks) loads only when that command runs or
# `--help` lists them all. tests/test_cli.py checks the table against the modules' COMMANDS.
LAZY_COMMANDS = {
    "templates": "generate", "fill": "generate", "questions": "generate", "merge": "generate",
    "run": "generate", "personas": "specs", "init": "specs", "validate": "checks",
    "cost": "checks", "moderate": "moderate", "export": "export", "pairs": "export",
    "prompt": "export", "upload": "jobs", "jobs": "jobs", "finetune": "train", "chat": "train",
    "bench": "bench",
}


def _command(name: str) -> click.Command | None:
    import importlib

    module = LAZY_COMMANDS.get(name)
    if module is None:
        return None
    commands = importlib.import_module(f"persona.cli.{module}").COMMANDS
    return next(c for c in commands if c.name == name)


def main() -> None:
    """Run the CLI; click's own usage errors too become one `error: …` line and exit 2."""
    run_cli(cli, "persona")


def run_cli(group: click.Group, prog: str) -> None:
    """Run a click group with every error as one line (shared with disk-manager)."""
    try:
        # without standalone mode, click returns ctx.exit's code instead of raising it
        rc = group.main(prog_name=prog, standalone_mode=False, windows_expand_args=False)
    except click.exceptions.Exit as e:
        sys.exit(e.exit_code)
    except click.UsageError as e:
        where = e.ctx.command_path if e.ctx is not None else prog
        click.echo(f"error: {e.format_message()} (see `{where} --help`)", err=True)
        sys.exit(e.exit_code)
    except click.ClickException as e:
        click.echo(f"error: {e.format_message()}", err=True)
        sys.exit(e.exit_code)
    except click.Abort:
        click.echo("interrupted", err=True)
        sys.exit(130)
    sys.exit(rc if isinstance(rc, int) else 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
