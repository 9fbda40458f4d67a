"""CLI commands: finetune (LoRA / QLoRA on a chat dataset) and chat (talk to the result)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from persona.finetune.chat import NO_REPEAT_NGRAM, REPETITION_PENALTY  # no heavy imports
from persona.finetune.config import field_help


def _opt(name: str, type_=None, **kw):
    """A flag whose help text comes from the config field; None means 'not given'."""
    field = name.lstrip("-").replace("-", "_")
    return click.option(name, field, type=type_, default=None, help=field_help(field), **kw)


@click.command("finetune")
@_opt("--data", click.Path(path_type=str))
@_opt("--base-model")
@_opt("--out", click.Path(path_type=str))
@click.option("--config", "config_path", type=click.Path(dir_okay=False, path_type=Path),
              help="TOML file with any of these settings; flags override it.")
@_opt("--method", click.Choice(["sft", "dpo", "orpo"]))
@_opt("--beta", float)
@_opt("--quant", click.Choice(["auto", "4bit", "8bit", "none"]))
@_opt("--lora-r", int)
@_opt("--lora-alpha", int)
@_opt("--lora-dropout", float)
@_opt("--lr", float)
@_opt("--epochs", float)
@_opt("--max-steps", int)
@_opt("--batch-size", int)
@_opt("--grad-accum", int)
@_opt("--max-length", int)
@_opt("--save-steps", int)
@_opt("--save-total-limit", int)
@_opt("--eval-steps", int)
@_opt("--logging-steps", int)
@_opt("--seed", int)
@click.option("--train-embeddings/--no-train-embeddings", "train_embeddings", default=None,
              help=field_help("train_embeddings"))
@click.option("--merge", is_flag=True, default=None, help=field_help("merge"))
@click.option("--resume", is_flag=True, help="Continue from the last checkpoint in --out "
              "(step, optimizer, scheduler, RNG).")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def finetune_cmd(config_path: Path | None, resume: bool, as_json: bool, **flags) -> None:
    """Fine-tune a LoRA adapter on a chat dataset (QLoRA 4-bit on CUDA by default).

    \b
      persona finetune --data final/babis --base-model tiny --out runs/babis-tiny
      persona finetune --data final/babis --base-model mistralai/Mistral-7B-Instruct-v0.3 \\
          --out runs/babis-mistral
      persona finetune --config runs/babis.toml --resume

    A disk preflight runs before any weights are loaded. Ctrl-C saves a checkpoint.
    """
    from persona.finetune import require_train_deps
    from persona.finetune.config import load_config

    require_train_deps()
    cfg = load_config(config_path, flags)
    from persona.finetune.train import finetune
    from persona.finetune.view import RichReporter, print_plan, print_summary

    reporter = None if as_json else RichReporter()
    result = finetune(cfg, resume=resume, reporter=reporter,
                      on_plan=None if as_json else print_plan)
    if not result.summary:  # a data-parallel rank other than 0: rank 0 reports
        return
    if as_json:
        click.echo(json.dumps(result.summary, ensure_ascii=False, indent=2))
    else:
        print_summary(result.summary)


@click.command("chat")
@click.option("--model", "model_dir", required=True, type=click.Path(path_type=Path),
              help="A finetune --out folder (base model + adapter).")
@click.option("--question", "-q", "questions", multiple=True, help="Ask this (repeatable).")
@click.option("--file", "file", type=click.Path(dir_okay=False, path_type=Path),
              help="Questions, one per line (or JSONL with 'question' / 'messages').")
@click.option("--max-new-tokens", default=128, show_default=True, type=click.IntRange(1),
              help="Longest answer, in tokens.")
@click.option("--repetition-penalty", default=REPETITION_PENALTY, show_default=True,
              type=click.FloatRange(min=1.0),
              help="Penalty on tokens already in the text (1.0: none). Decoding stays greedy.")
@click.option("--no-repeat-ngram", default=NO_REPEAT_NGRAM, show_default=True,
              type=click.IntRange(min=0),
              help="Never repeat a run of this many tokens (0: allowed). Stops small models "
              "from looping on one sentence.")
@click.option("--system", default=None, help="System prompt (default: the one trained with).")
def chat_cmd(model_dir: Path, questions: tuple[str, ...], file: Path | None,
             max_new_tokens: int, repetition_penalty: float, no_repeat_ngram: int,
             system: str | None) -> None:
    """Answer questions with a fine-tuned model; interactive when none are given.

    Greedy decoding (the same question gets the same answer) with a repetition penalty and
    no repeated n-grams; --repetition-penalty 1 --no-repeat-ngram 0 turns both off.
    """
    from persona.finetune import chat

    model, tok, trained_system = chat.load(model_dir)
    system = system if system is not None else trained_system
    asked = list(questions) + (chat.read_questions(file) if file else [])

    def reply(q: str) -> str:
        return chat.answer(model, tok, q, system=system, max_new_tokens=max_new_tokens,
                           repetition_penalty=repetition_penalty,
                           no_repeat_ngram=no_repeat_ngram)

    for q in asked:
        click.echo(f"> {q}\n{reply(q)}\n")
    if asked:
        return
    click.echo("Type a question, an empty line or Ctrl-D to quit.", err=True)
    while True:
        try:
            q = input("> ").strip()
        except (EOFError, KeyboardInterrupt):  # Ctrl-D / Ctrl-C end the session quietly
            click.echo("", err=True)
            break
        if not q:
            break
        click.echo(reply(q) + "\n")


COMMANDS: list = [finetune_cmd, chat_cmd]
