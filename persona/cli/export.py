"""CLI: `persona export` — the finished dataset in another trainer's format."""

from __future__ import annotations

import functools
from pathlib import Path

import click
from rich.table import Table

from persona.cli.options import remote_options
from persona.cli.ui import out as console
from persona.cli.ui import print_estimates, print_json

FORMAT_HELP = ("vertex: Gemini supervised tuning JSONL (Vertex AI); sharegpt / alpaca: "
               "LLaMA-Factory and axolotl JSONL + dataset_info.json; hf: a Hugging Face "
               "dataset folder (parquet + README card) for datasets.load_dataset.")
USE = {
    "vertex": "upload the folder to Cloud Storage; train.jsonl is the training dataset, "
              "validation.jsonl the validation dataset.",
    "sharegpt": "LLaMA-Factory: --dataset_dir {out} --dataset {name}_train; axolotl: type "
                "chat_template, field_messages conversations, message_property_mappings "
                "{{role: from, content: value}}.",
    "alpaca": "LLaMA-Factory: --dataset_dir {out} --dataset {name}_train; axolotl: type "
              "alpaca_w_system.load_instruct (plain `alpaca` ignores system and history: "
              "export with --fold-system).",
    "hf": "datasets.load_dataset(\"{out}\"), or push the folder to the Hub.",
}


@click.command("export")
@click.argument("final_dir", type=click.Path(path_type=Path))
@click.option("--to", "fmt", type=click.Choice(["vertex", "sharegpt", "alpaca", "hf"]),
              required=True, help=FORMAT_HELP)
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Folder to write (default: FINAL_DIR/export/FORMAT).")
@click.option("--fold-system", is_flag=True,
              help="Put the system prompt into the first user turn instead of the format's "
              "own place for it (for trainers that ignore it).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def export_cmd(final_dir: Path, fmt: str, out: Path | None, fold_system: bool,
               as_json: bool) -> None:
    """Write every split of FINAL_DIR (train/val/test.jsonl) in another trainer's format.

    Each row is checked against the format's own rules first; a dataset that breaks one is
    refused with file, line and rule, and nothing is written (exit 1).
    """
    from persona.export import export

    result = export(final_dir, fmt, out, fold=fold_system)
    if as_json:
        print_json({"format": fmt, "out": str(result.out), "system": result.system,
                    "files": {s: str(p) for s, p in result.files.items()},
                    "examples": result.examples, "extra": [str(p) for p in result.extra]})
        return
    table = Table(title=f"persona export --to {fmt}")
    for col in ("split", "examples", "file"):
        table.add_column(col, justify="right" if col == "examples" else "left")
    for split, path in result.files.items():
        table.add_row(split, f"{result.examples[split]:,}", str(path))
    for path in result.extra:
        table.add_row("", "", str(path))
    console.print(table)
    console.print(f"system prompt: {result.system}", highlight=False)
    console.print("use it: " + USE[fmt].format(out=result.out, name=final_dir.name),
              highlight=False, soft_wrap=True)


@click.command("pairs")
@click.argument("final_dir", type=click.Path(path_type=Path))
@click.option("--rejected", "source", default="neutral", show_default=True,
              metavar="SOURCE",
              help="Who answers the same questions for the rejected side: 'neutral', the "
              "built-in neutral spokesperson written offline (free, deterministic), on each "
              "example's own topic; or a model that answers each example's own prompt: a "
              "model folder, a finetune --out folder or a hub id (the base: on-policy), or "
              "openai:MODEL.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Folder to write (default: FINAL_DIR/pairs).")
@click.option("--seed", type=int, default=42, show_default=True)
@click.option("--max-new-tokens", type=click.IntRange(1, 4096), default=256,
              show_default=True, help="Model sources: longest rejected answer, in tokens.")
@click.option("--batch-size", type=click.IntRange(1, 1024), default=16, show_default=True,
              help="Local model sources: questions per generation batch.")
@remote_options("openai:MODEL sources", "rejected answers")
@click.option("--dry-run", is_flag=True, help="openai:MODEL sources: print what the rejected "
              "answers would cost, ask nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def pairs_cmd(final_dir: Path, source: str, out: Path | None, seed: int,
              max_new_tokens: int, batch_size: int, base_url: str | None, api_key_env: str,
              concurrency: int, max_cost: float | None, dry_run: bool,
              as_json: bool) -> None:
    """Preference pairs for DPO / ORPO from FINAL_DIR: each train and val question with the
    persona's answer chosen and another voice's answer rejected (test stays held out).

    Writes TRL's conversational preference JSONL (train/val.jsonl), LLaMA-Factory's ShareGPT
    ranking files with dataset_info.json (llamafactory/) and OpenAI's preference fine-tuning
    JSONL (openai/).
    """
    from persona import pairs

    model = None
    if source not in pairs.SOURCES:
        model = pairs.ModelSource(
            source, Path("."), base_url=base_url, api_key_env=api_key_env,
            concurrency=concurrency, max_cost=max_cost, max_new_tokens=max_new_tokens,
            batch_size=batch_size, seed=seed, dry_run=dry_run,
            on_estimate=None if as_json else functools.partial(
                print_estimates, what="rejected answers"))
    elif dry_run:
        from persona.errors import InputError

        raise InputError("--dry-run prices a model source; 'neutral' is free")
    if model is not None and not as_json and not dry_run:
        from persona.cli.ui import stage_bars

        with stage_bars(True) as bar:
            shown: list = []

            def progress(done: int, total: int) -> None:
                if not shown:  # the bar appears with the first answer, not before checks
                    shown.append(bar(f"rejected answers ({source})", total))
                shown[0](done, total)

            model.on_progress = progress
            result = pairs.write(final_dir, out, source=source, seed=seed, model=model)
    else:
        result = pairs.write(final_dir, out, source=source, seed=seed, model=model)
    if result.about.get("dry_run"):
        if as_json:
            print_json({"out": str(result.out), "source": source, "dry_run": True,
                        "estimate": result.about["estimate"]})
        elif not result.about["estimate"]:
            console.print("a local model costs nothing to ask: nothing to estimate")
        return
    total = sum(result.counts.values())
    if as_json:
        print_json({"out": str(result.out), "source": source, "pairs": result.counts,
                    "rejected_on_topic": result.on_topic,
                    **({"rejected_model": result.about} if result.about else {}),
                    "files": [str(p) for p in result.files]})
        return
    table = Table(title=f"persona pairs · rejected: {source}")
    for col in ("split", "pairs"):
        table.add_column(col, justify="right" if col == "pairs" else "left")
    for split, n in result.counts.items():
        table.add_row(split, f"{n:,}")
    console.print(table)
    if result.on_topic is None:
        a = result.about
        console.print(f"{source}: {a['asked']:,} answers asked, {a['reused']:,} reused; left "
                      f"out: {a['left_out_empty']} empty, {a['left_out_same_as_chosen']} equal "
                      "to the chosen answer", highlight=False, soft_wrap=True)
        console.print(f"written to {result.out} (TRL: train/val.jsonl; llamafactory/; openai/)",
                      highlight=False, soft_wrap=True)
    else:
        console.print(f"{result.on_topic:,} of {total:,} rejected answers are on the "
                      f"example's own topic; written to {result.out} (TRL: train/val.jsonl; "
                      "llamafactory/; openai/)", highlight=False, soft_wrap=True)


@click.command("prompt")
@click.argument("final_dir", type=click.Path(path_type=Path))
@click.option("--shots", type=click.IntRange(min=1), default=10, show_default=True,
              help="Train examples to show in the prompt.")
@click.option("--max-tokens", type=click.IntRange(min=64), default=2000, show_default=True,
              help="Token budget of the whole prompt (o200k_base); examples that would pass it "
              "are left out.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="File to write (default: FINAL_DIR/fewshot.md).")
@click.option("--seed", type=int, default=42, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def prompt_cmd(final_dir: Path, shots: int, max_tokens: int, out: Path | None, seed: int,
               as_json: bool) -> None:
    """The few-shot contender: a system prompt with SHOTS train examples chosen for coverage
    (every style, different templates and topics), within a token budget.

    \b
      persona prompt final/babis --shots 10
      persona chat --model runs/base --system "$(cat final/babis/fewshot.md)" -q "Co daně?"
    """
    from persona import fewshot

    out = out if out is not None else Path(final_dir) / "fewshot.md"
    got = fewshot.write(final_dir, out, shots, max_tokens=max_tokens, seed=seed)
    if as_json:
        print_json({"out": str(out), "shots": len(got.shots), "tokens": got.tokens,
                    "max_tokens": max_tokens, "covered": got.covered, "examples": got.shots})
        return
    cover = ", ".join(f"{k}s {a}/{b}" for k, (a, b) in got.covered.items())
    console.print(f"{len(got.shots)} examples, {got.tokens:,} of {max_tokens:,} tokens "
                  f"(o200k_base); covers {cover}; written to {out}", highlight=False,
                  soft_wrap=True)
    if len(got.shots) < shots:
        console.print(f"[yellow]only {len(got.shots)} of {shots} fit the budget; raise "
                      "--max-tokens for more[/yellow]")
    console.print(f"use it: persona chat --model MODEL --system \"$(cat {out})\"",
                  highlight=False, soft_wrap=True)


COMMANDS = [export_cmd, pairs_cmd, prompt_cmd]
