"""The `disk-manager` command line: each command parses, calls the library once, prints.

Known errors (DiskManagerError) become one line on stderr with exit code 2, here and only
here; `--debug` re-raises them with the traceback. Exit 1 means "it does not fit".
"""

from __future__ import annotations

import json
import logging
import sys

import click
from rich.console import Console

from disk_manager import __version__
from disk_manager.errors import DiskManagerError
from disk_manager.manager import DiskManager
from disk_manager.units import format_size, parse_margin, parse_size


class _Group(click.Group):
    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except DiskManagerError as e:
            if ctx.obj and ctx.obj.get("debug"):
                raise
            click.echo(f"error: {e}", err=True)
            ctx.exit(e.exit_code)
        except OSError as e:   # a path we may not read or write: one line, not a traceback
            if ctx.obj and ctx.obj.get("debug"):
                raise
            click.echo(f"error: {e.strerror or e}: {e.filename or ''}".rstrip(": "), err=True)
            ctx.exit(2)


def _out() -> Console:
    return Console(soft_wrap=False)


def _json(data: dict) -> None:
    click.echo(json.dumps(data, indent=2, default=str))


json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON instead of tables.")


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="disk-manager")
@click.option("--debug", is_flag=True, help="Show tracebacks and debug logs.")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """Check, estimate, clean and relocate model caches before a fine-tuning run.

    \b
      disk-manager status
      disk-manager estimate mistralai/Mistral-7B-Instruct-v0.3 --quant 4bit
      disk-manager check --need 30GB --path ~/.cache/huggingface
      disk-manager clean --hf --pip --older-than 30d          # dry run
      disk-manager clean --hf --keep mistralai/Mistral-7B-Instruct-v0.3 --yes
      disk-manager relocate /workspace --link --write-env ~/.bashrc
    """
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug
    logging.basicConfig(level=logging.DEBUG if debug else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")


@cli.command()
@click.option("--top", default=10, show_default=True, help="How many HF repos to list.")
@json_option
def status(top: int, as_json: bool) -> None:
    """Volumes, every cache with its location and size, the largest HF models."""
    from disk_manager.render import status_tables

    st = DiskManager().status(top=top)
    if as_json:
        return _json(st.to_dict())
    console = _out()
    for table in status_tables(st):
        console.print(table)
    for w in st.warnings:
        click.echo(f"warning: {w}", err=True)


@cli.command()
@click.argument("model")
@click.option("--quant", type=click.Choice(["4bit", "8bit", "none"]), default="4bit",
              show_default=True, help="How the base model is loaded for training.")
@click.option("--checkpoints", default=2, show_default=True, help="Checkpoints kept.")
@click.option("--merge", is_flag=True, help="A merged bf16 model will be exported.")
@click.option("--lora-rank", default=16, show_default=True)
@click.option("--offline", is_flag=True, help="Don't ask the Hub (also: HF_HUB_OFFLINE=1).")
@json_option
def estimate(model: str, quant: str, checkpoints: int, merge: bool, lora_rank: int,
             offline: bool, as_json: bool) -> None:
    """Disk needed to fine-tune MODEL (a hub id or a local folder), and what each figure is
    based on."""
    from disk_manager.render import estimate_table

    est = DiskManager().estimate(model, quant=quant, checkpoints=checkpoints, merge=merge,
                                 lora_rank=lora_rank, online=False if offline else None)
    if as_json:
        return _json(est.to_dict())
    _out().print(estimate_table(est))


@cli.command()
@click.option("--need", required=True, help="Bytes needed, e.g. 30GB, 512MiB.")
@click.option("--path", default=None, help="Where the data will go (default: the HF cache).")
@click.option("--margin", default="10%", show_default=True, help="Safety margin on top.")
@json_option
@click.pass_context
def check(ctx: click.Context, need: str, path: str | None, margin: str, as_json: bool) -> None:
    """Exit 0 if NEED (+ margin) fits on the volume that receives PATH, else exit 1."""
    from disk_manager.render import check_lines

    res = DiskManager().check(parse_size(need, what="--need"), path,
                              parse_margin(margin, what="--margin"))
    if as_json:
        _json(res.to_dict())
    else:
        for line in check_lines(res):
            click.echo(line, err=not res.fits)
    ctx.exit(0 if res.fits else 1)


@cli.command()
@click.option("--hf", is_flag=True, help="The Hugging Face hub cache.")
@click.option("--pip", is_flag=True, help="pip's cache.")
@click.option("--torch", is_flag=True, help="torch's hub cache (TORCH_HOME).")
@click.option("--conda", is_flag=True, help="conda's package tarballs.")
@click.option("--older-than", default=None, help="Only items unused for this long, e.g. 30d.")
@click.option("--larger-than", default=None, help="Only items bigger than this, e.g. 1GB.")
@click.option("--model", "models", multiple=True, help="Only this HF repo id (repeatable).")
@click.option("--keep", multiple=True, help="Never this HF repo id (repeatable).")
@click.option("--yes", is_flag=True, help="Really delete (default: dry run).")
@json_option
def clean(hf: bool, pip: bool, torch: bool, conda: bool, older_than: str | None,
          larger_than: str | None, models: tuple[str, ...], keep: tuple[str, ...], yes: bool,
          as_json: bool) -> None:
    """Show (dry run) or delete (--yes) cache items. No cache flag: all caches (--model: HF)."""
    from disk_manager.render import clean_table

    chosen = [n for n, on in (("hf", hf), ("pip", pip), ("torch", torch), ("conda", conda)) if on]
    if not chosen:
        chosen = ["hf"] if models else ["hf", "pip", "torch", "conda"]
    if older_than is not None:
        from disk_manager.units import parse_duration

        older_than = parse_duration(older_than, what="--older-than")
    if larger_than is not None:
        larger_than = parse_size(larger_than, what="--larger-than")
    rep = DiskManager().cleanup_cache(dry_run=not yes, caches=chosen, older_than=older_than,
                                      larger_than=larger_than, models=models, keep=keep)
    if as_json:
        return _json(rep.to_dict())
    _out().print(clean_table(rep))
    if rep.dry_run:
        click.echo(f"Dry run: {format_size(rep.planned_bytes)} would be freed. "
                   "Run again with --yes to delete.")
    else:
        click.echo(f"Freed {format_size(rep.bytes_freed)} (measured).")


@cli.command()
@click.argument("dest", type=click.Path(file_okay=False))
@click.option("--link", is_flag=True, help="Leave a symlink at each old location.")
@click.option("--write-env", type=click.Path(dir_okay=False), default=None,
              help="Also write the export lines to this file (e.g. ~/.bashrc).")
@json_option
def relocate(dest: str, link: bool, write_env: str | None, as_json: bool) -> None:
    """Move the HF, pip and torch caches to DEST and print the env to use them there."""
    from disk_manager.render import relocate_table

    rep = DiskManager().setup_network_storage(dest, link=link, write_env=write_env)
    if as_json:
        return _json(rep.to_dict())
    Console(stderr=True).print(relocate_table(rep))
    for line in rep.exports():   # stdout carries only the exports: eval "$(disk-manager ...)"
        click.echo(line)


@cli.command("preflight")
@click.argument("model")
@click.option("--out-dir", required=True, help="Where adapter, checkpoints and export go.")
@click.option("--quant", type=click.Choice(["4bit", "8bit", "none"]), default="4bit")
@click.option("--checkpoints", default=2, show_default=True)
@click.option("--merge", is_flag=True)
@click.option("--lora-rank", default=16, show_default=True)
@click.option("--margin", default="10%", show_default=True)
@json_option
@click.pass_context
def preflight_cmd(ctx: click.Context, model: str, out_dir: str, quant: str, checkpoints: int,
                  merge: bool, lora_rank: int, margin: str, as_json: bool) -> None:
    """Will a fine-tuning run of MODEL fit on disk? Exit 1 with the reasons if not."""
    pf = DiskManager().preflight(model, out_dir=out_dir, quant=quant, checkpoints=checkpoints,
                                 merge=merge, lora_rank=lora_rank,
                                 margin=parse_margin(margin, what="--margin"))
    if as_json:
        _json(pf.to_dict())
    else:
        click.echo(pf.summary(), err=not pf.fits)
    ctx.exit(0 if pf.fits else 1)


def main() -> None:
    """Run the CLI; click's own usage errors too become one `error: …` line and exit 2."""
    try:
        # without standalone mode, click returns ctx.exit's code instead of raising it
        rc = cli.main(prog_name="disk-manager", standalone_mode=False)
    except click.exceptions.Exit as e:
        sys.exit(e.exit_code)
    except click.UsageError as e:
        where = e.ctx.command_path if e.ctx is not None else "disk-manager"
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
