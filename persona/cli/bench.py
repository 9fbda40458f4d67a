"""CLI command: bench (before/after on held-out questions, into a spreadsheet)."""

from __future__ import annotations

from pathlib import Path

import click

from persona.cli.options import remote_options
from persona.finetune.chat import NO_REPEAT_NGRAM, REPETITION_PENALTY


@click.command("bench")
@click.argument("final_dir", required=False, type=click.Path(path_type=Path))
@click.option("--before", help="Model before fine-tuning: a model folder, a finetune --out "
              "folder (base + adapter), a hub id, or openai:MODEL.")
@click.option("--after", help="Model after fine-tuning (same forms as --before).")
@click.option("--model", "models", multiple=True, metavar="NAME=SPEC",
              help="A side of an N-sided bench (repeat it): base=runs/base, "
              "fewshot=runs/base+prompt:fewshot.md (a model with its own system prompt), "
              "sft=runs/babis, dpo=runs/babis-dpo, gpt=openai:gpt-5.4-mini. Replaces "
              "--before/--after.")
@click.option("--reference", default=None, metavar="NAME",
              help="The side every other one is compared with (win rates, judge, deltas) "
              "[default: the first --model].")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Output folder [default: FINAL_DIR/bench].")
@click.option("--persona", "-p", default=None, help="Spec for the markers (signature, "
              "catch-phrases, slips, topics) [default: the dataset folder's name].")
@click.option("--system", default=None, help="System prompt for both sides [default: the "
              "dataset's]; '' for none.")
@click.option("--max-new-tokens", type=click.IntRange(1, 4096), default=128,
              show_default=True, help="Longest answer, in tokens.")
@click.option("--temperature", type=click.FloatRange(0, 2), default=0.0, show_default=True,
              help="0 = greedy (deterministic); above 0 samples with --seed.")
@click.option("--top-p", type=click.FloatRange(0, 1, min_open=True), default=1.0,
              show_default=True, help="Nucleus sampling share (with --temperature > 0).")
@click.option("--repetition-penalty", type=click.FloatRange(1.0, 10.0),
              default=REPETITION_PENALTY,
              show_default=True, help="Local models: penalty on tokens already in the text, "
              "as in `persona chat` (1.0: none); the same on both sides.")
@click.option("--no-repeat-ngram", type=click.IntRange(0, 64), default=NO_REPEAT_NGRAM,
              show_default=True,
              help="Local models: never repeat a run of this many tokens (0: allowed); the "
              "same on both sides.")
@click.option("--seed", type=int, default=42, show_default=True,
              help="Seed of sampling and of the style classifier; the same on both sides.")
@click.option("--batch-size", type=click.IntRange(1, 1024), default=16, show_default=True,
              help="Questions per local generation batch.")
@click.option("--limit", type=click.IntRange(1), default=None,
              help="Only the first N held-out questions.")
@click.option("--neutral", type=click.Path(path_type=Path), default=None,
              help="Dataset folder (or JSONL) of neutral answers for the style classifier "
              "[default: the built-in neutral persona, generated offline].")
@click.option("--embed-model", default=None, help="Local embedding model folder: adds "
              "question-answer embedding similarity.")
@click.option("--topic-category", default=None, help="Spec placeholder category that names "
              "the topic, for relevance [default: the first of journalist.match].")
@remote_options("openai:MODEL sides", "remote answers and judge")
@click.option("--judge", default=None, help="LLM judge model (pairwise both orders + 1-10 "
              "score), e.g. gpt-5.4-mini.")
@click.option("--judge-base-url", default=None, help="OpenAI-compatible server of the judge "
              "[default: --base-url].")
@click.option("--rescore", type=click.Path(path_type=Path), default=None,
              help="Read human scores back from this bench.xlsx and rewrite the outputs.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def bench_cmd(final_dir: Path | None, before: str | None, after: str | None,
              models: tuple[str, ...], reference: str | None, out: Path | None,
              persona: str | None, system: str | None, max_new_tokens: int,
              temperature: float, top_p: float, repetition_penalty: float,
              no_repeat_ngram: int, seed: int, batch_size: int,
              limit: int | None, neutral: Path | None, embed_model: str | None,
              topic_category: str | None, base_url: str | None, api_key_env: str,
              concurrency: int, max_cost: float | None, judge: str | None,
              judge_base_url: str | None, rescore: Path | None, as_json: bool) -> None:
    """Compare models on the held-out questions: before/after fine-tuning, or N sides.

    \b
      persona bench final/babis --before runs/base --after runs/babis
      persona bench final/babis --model base=runs/base \\
          --model fewshot=runs/base+prompt:fewshot.md --model sft=runs/babis \\
          --model dpo=runs/babis-dpo --reference base
      persona bench final/babis --before openai:gpt-5.4-mini \\
          --after openai:ft:gpt-4o-mini:acme::abc --judge gpt-5.4-mini
      persona bench --rescore final/babis/bench/bench.xlsx

    Writes bench.xlsx (Summary, Comparison, Config), bench.csv, bench.json, report.md and
    bench.png into --out. A rerun reuses the answers already generated.
    """
    from persona.bench import require_bench_deps
    from persona.errors import InputError

    require_bench_deps()
    if rescore is not None:
        if final_dir or before or after:
            raise InputError("--rescore takes only the sheet (and --out); no dataset or models")
        from persona.bench.rescore import rescore as do_rescore

        result = do_rescore(rescore, out)
        _print(result, (out or rescore.parent), as_json)
        return
    if final_dir is None:
        raise InputError("missing FINAL_DIR (the dataset folder, e.g. final/babis)")
    from persona.bench.generate import Decoding
    from persona.bench.run import BenchOptions, parse_sides, run_bench

    if models:
        if before or after:
            raise InputError("give --model NAME=SPEC sides or --before/--after, not both")
        sides = parse_sides(models)
    elif not before or not after:
        raise InputError("give both --before and --after (or --model NAME=SPEC twice or more)")
    else:
        if reference:
            raise InputError("--reference names a --model side; with --before/--after the "
                             "reference is before")
        sides = {"before": before, "after": after}
    from persona.bench.sheet import write_all
    from persona.cli.ui import print_estimates, stage_bars

    opts = BenchOptions(
        sides=sides, reference=reference, out=out or Path(final_dir) / "bench", persona=persona,
        system=system, decoding=Decoding(max_new_tokens, temperature, top_p, seed, batch_size,
                                        repetition_penalty, no_repeat_ngram),
        base_url=base_url, api_key_env=api_key_env, concurrency=concurrency,
        max_cost=max_cost, judge=judge, judge_base_url=judge_base_url, neutral=neutral,
        embed_model=embed_model, topic_category=topic_category, limit=limit)
    with stage_bars(not as_json) as bar:
        result = run_bench(final_dir, opts, bar, None if as_json else print_estimates)
    write_all(result, opts.out)
    _print(result, opts.out, as_json)


def _print(result: dict, out: Path, as_json: bool) -> None:
    from persona.bench.sheet import sides as side_names
    from persona.cli.ui import out as console
    from persona.cli.ui import print_json

    s = result["summary"]
    if as_json:
        print_json({"out": str(out), "summary": s,
                    "held_out": result["config"]["held_out"]})
        return
    from rich.table import Table

    c = result["config"]
    names, ref = side_names(result)
    others = [x for x in names if x != ref]
    console.print(f"{s['questions']} held-out questions; {c['held_out']['refused_in_train']} "
                  "refused because they occur in train")
    two = len(names) == 2
    t = Table(title="before → after (means)" if names == ["before", "after"]
              else f"means per side (deltas against {ref})")
    heads = ["score", *names, *(["delta"] if two else [f"Δ {x}" for x in others])]
    for h in heads:
        t.add_column(h, justify="left" if h == "score" else "right")
    for m in s["means"].values():
        d = m.get("deltas") or {others[0]: m.get("delta")}
        vals = [m.get(x) for x in names] + [d.get(x) for x in others]
        t.add_row(m["header"], *("–" if v is None else f"{v:.3f}" if isinstance(v, float)
                                 else str(v) for v in vals))
    console.print(t)
    for side, vs in s.get("vs_reference", {}).items():
        st = vs["style"]
        console.print(f"style wins {side}/{ref}/tie: {st['wins']}/{st['losses']}/{st['ties']}, "
                      f"win rate {st['win_rate']} (95 % CI {st['ci95'][0]}–{st['ci95'][1]})")
        if "judge" in vs:
            j = vs["judge"]
            console.print(f"judge (both orders) {side} vs {ref}: {side} {j['wins']}, {ref} "
                          f"{j['losses']}, tie {j['tie']}, inconsistent {j['inconsistent']}, "
                          f"failed {j['failed']}; win rate {j['win_rate']} "
                          f"(95 % CI {j['ci95'][0]}–{j['ci95'][1]})")
    h = s["human"]
    if any(h.get(f"n_{x}") for x in names):
        console.print("human: " + ", ".join(f"{x} {h.get(x)} ({h.get(f'n_{x}')})"
                                            for x in names))
    console.print(f"written: {out}/bench.xlsx, bench.csv, bench.json, report.md, bench.png")


COMMANDS: list = [bench_cmd]
