"""CLI commands about persona specs: list the built-ins, start a new one."""

from __future__ import annotations

from pathlib import Path

import click
from rich.table import Table

from persona.cli.ui import out, print_json


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
def personas(as_json):
    """List the built-in personas."""
    from persona.spec import builtin_ids, load_spec

    rows = []
    for pid in builtin_ids():
        s = load_spec(pid)
        rows.append({"id": s.id, "name": s.persona.name, "language": s.persona.language,
                     "styles": list(s.styles), "slip_rate": s.style.slip_rate,
                     "placeholders": {k: len(v.values) for k, v in s.placeholders.items()}})
    if as_json:
        print_json(rows)
        return
    table = Table(title="built-in personas")
    for col in ("id", "name", "lang", "styles", "slip rate", "placeholders (values)"):
        table.add_column(col)
    for r in rows:
        table.add_row(r["id"], r["name"], r["language"], ", ".join(r["styles"]),
                      f"{r['slip_rate']:.0%}",
                      ", ".join(f"{k} ({n})" for k, n in r["placeholders"].items()))
    out.print(table)


@click.command()
@click.argument("name")
@click.option("--from", "source", default="butler", show_default=True,
              help="Built-in persona id or spec file to start from.")
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Where to write the spec (default: NAME.toml).")
@click.option("--force", is_flag=True, help="Overwrite an existing spec and prompt files.")
def init(name, source, output, force):
    """Write an editable persona spec NAME.toml to start from (a copy of a built-in), and the
    built-in LLM prompts into prompts/ beside it: a workspace's prompts/<stage>.md replaces
    the built-in prompt of that stage."""
    import re
    import tomllib

    from persona.errors import PersonaError
    from persona.io import write_text
    from persona.spec import parse_spec, resolve

    if not re.fullmatch(r"[a-z][a-z0-9_-]*", name):
        raise PersonaError(f"persona name {name!r}: use lower-case letters, digits, - and _")
    path = output or Path(f"{name}.toml")
    if path.exists() and not force:
        raise PersonaError("exists; pass --force to overwrite", file=str(path))
    source_path = resolve(source)
    if not source_path.is_file():
        raise PersonaError("no such persona spec", file=str(source_path))
    text = source_path.read_text(encoding="utf-8")
    text = re.sub(r'(?m)^id = ".*"$', f'id = "{name}"', text, count=1)
    parse_spec(tomllib.loads(text), source=str(path))  # what we write must load
    write_text(path, text)
    from persona import prompts

    folder = path.parent / "prompts"
    wrote = []
    for stage in prompts.STAGES:
        target = folder / f"{stage}.md"
        if target.exists() and not force:
            continue
        write_text(target, prompts.builtin_text(stage))
        wrote.append(target.name)
    out.print(f"Wrote [bold]{path}[/bold] (from '{source}')"
              + (f" and {folder}/{{{','.join(wrote)}}}" if wrote else "")
              + ". Edit them, then:\n"
              f"  persona run --persona {path} --workspace {path.parent}")

COMMANDS = [personas, init]
