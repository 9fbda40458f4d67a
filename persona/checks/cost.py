"""What a fine-tuning run (or a generation run) would cost, from a dated price table.

Tokens are counted like OpenAI bills chat fine-tuning (tokens.chat_tokens), each example capped
at the model's maximum (OpenAI truncates longer ones), times the epochs OpenAI would pick for
the dataset size. Prices ship as data (persona/data/prices.toml) and a file can replace them.
"""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from persona.checks import tokens
from persona.checks.chatjsonl import iter_lines, parse_line
from persona.checks.prices import ModelPrice, PriceTable, load_prices  # noqa: F401 - re-exported
from persona.checks.tokens import example_tokens
from persona.errors import InputError
from persona.io import check_readable

# OpenAI's default-epochs rule for fine-tuning (openai-cookbook, "Chat finetuning data prep").
TARGET_EPOCHS = 3
MIN_TARGET_EXAMPLES = 100
MAX_TARGET_EXAMPLES = 25_000
MIN_DEFAULT_EPOCHS = 1
MAX_DEFAULT_EPOCHS = 25
SHOWN_SKIPPED_LINES = 10


def default_epochs(n_examples: int) -> int:
    """The epochs OpenAI picks when none are given: ~3, nudged so that examples × epochs
    stays within 100..25,000."""
    if n_examples * TARGET_EPOCHS < MIN_TARGET_EXAMPLES:
        return min(MAX_DEFAULT_EPOCHS, MIN_TARGET_EXAMPLES // n_examples)
    if n_examples * TARGET_EPOCHS > MAX_TARGET_EXAMPLES:
        return max(MIN_DEFAULT_EPOCHS, MAX_TARGET_EXAMPLES // n_examples)
    return TARGET_EPOCHS


@dataclass
class CostReport:
    path: str
    model: str
    price_model: str | None  # the table entry that matched `model`; None: no price known
    encoding: str
    exact: bool  # False: the model's encoding is unknown, counts are o200k_base approximations
    examples: int
    skipped: int  # non-blank lines that are not chat examples (not counted)
    skipped_lines: list[int]  # the first few of them
    tokens: int  # sum over examples, uncapped
    billed_tokens: int  # sum over examples, each capped at max_example_tokens
    max_example_tokens: int | None
    examples_over_limit: int
    epochs: int
    epochs_default: bool  # True when OpenAI's default rule chose the epochs
    trained_tokens: int  # billed_tokens × epochs
    price_per_1m: float | None
    currency: str
    cost: float | None  # None when the price table has no training price for the model
    prices_as_of: str
    prices_source: str
    distribution: dict[str, float] = field(default_factory=dict)  # min/mean/median/p95/max
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def cost_file(
    path: Path, model: str, epochs: int | None = None, prices: PriceTable | None = None
) -> CostReport:
    """Count `path` (chat JSONL) like OpenAI bills it and price a fine-tuning run on `model`."""
    path = Path(path)
    check_readable(path)
    prices = prices or load_prices()
    price_model, price = _training_price(prices, model)  # (None, None) when not priced
    encoding, exact, encoding_name = tokens.encoding_for_model(model)
    counts, skipped, blank = _count_examples(path, encoding)
    if not counts:
        raise InputError(_nothing_counted(skipped, blank), file=str(path))
    cap = price.max_example_tokens if price else None
    billed = [min(n, cap) if cap else n for n in counts]
    n_epochs = epochs if epochs is not None else default_epochs(len(counts))
    trained = sum(billed) * n_epochs
    report = CostReport(
        path=str(path),
        model=model,
        price_model=price_model,
        encoding=encoding_name,
        exact=exact,
        examples=len(counts),
        skipped=len(skipped),
        skipped_lines=skipped[:SHOWN_SKIPPED_LINES],
        tokens=sum(counts),
        billed_tokens=sum(billed),
        max_example_tokens=cap,
        examples_over_limit=sum(1 for n in counts if cap and n > cap),
        epochs=n_epochs,
        epochs_default=epochs is None,
        trained_tokens=trained,
        price_per_1m=price.training if price else None,
        currency=prices.currency,
        cost=trained / 1e6 * price.training if price else None,
        prices_as_of=prices.as_of.isoformat(),
        prices_source=prices.source,
        distribution=distribution(counts),
    )
    report.warnings = _warnings(report, prices)
    return report


def _training_price(prices: PriceTable, model: str):
    """(table entry, its prices), or (None, None): the token count is useful without them."""
    found = prices.lookup(model)
    if found is None or found[1].training is None:
        return None, None
    return found


def _count_examples(path: Path, encoding) -> tuple[list[int], list[int], int]:
    """(tokens per example, line numbers skipped, blank lines), streaming."""
    counts: list[int] = []
    skipped: list[int] = []
    blank = 0
    for lineno, text in iter_lines(path):
        obj, problem = parse_line(text)
        if problem is not None and problem.code == "blank_line":
            blank += 1
            continue
        n = None if problem else example_tokens(obj, encoding)
        if n is None:
            skipped.append(lineno)
        else:
            counts.append(n)
    return counts, skipped, blank


def _nothing_counted(skipped: list[int], blank: int) -> str:
    if not skipped:
        return "empty file, expected chat JSONL (one JSON object per line)"
    return (
        f"none of the {len(skipped)} lines is a chat example with a 'messages' list "
        f"(first: line {skipped[0]})"
    )


def distribution(counts: list[int]) -> dict[str, float]:
    """min/mean/median/p95/max; p95 by the nearest-rank method (a value that occurs)."""
    ordered = sorted(counts)
    p95 = ordered[max(0, -(-95 * len(ordered) // 100) - 1)]
    return {
        "min": ordered[0],
        "mean": round(statistics.fmean(ordered), 1),
        "median": statistics.median(ordered),
        "p95": p95,
        "max": ordered[-1],
    }


def _warnings(r: CostReport, prices: PriceTable) -> list[str]:
    out = []
    if r.price_model is None:
        import difflib

        names = [n for n, p in prices.models.items() if p.training is not None]
        close = difflib.get_close_matches(r.model.lower(), names, n=1, cutoff=0.75)
        mean = f"did you mean {close[0]}? " if close else ""
        out.append(
            f"price unknown: no training price for {r.model!r} in the price table of "
            f"{prices.as_of} ({mean}known: {', '.join(names)}); tokens counted, no cost, not "
            "capped per example; pass --prices FILE with its price"
        )
    if r.skipped:
        shown = ", ".join(map(str, r.skipped_lines)) + (
            ", …" if r.skipped > len(r.skipped_lines) else ""
        )
        out.append(
            f"{r.skipped} line(s) are not chat examples and were not counted "
            f"(line {shown}); run `persona validate` for details"
        )
    if r.examples_over_limit:
        out.append(
            f"{r.examples_over_limit} example(s) exceed {r.max_example_tokens:,} tokens; "
            "billed at the limit (OpenAI truncates them)"
        )
    if r.max_example_tokens is None and r.price_model is not None:
        out.append(f"no per-example token limit known for {r.price_model}; tokens not capped")
    if not r.exact:
        out.append(
            f"no known encoding for {r.model!r}: tokens counted with {r.encoding}, approximate"
        )
    from persona.checks.prices import lifecycle

    gone, going = lifecycle(r.model, prices=prices)
    if gone or going:  # counting is not calling: said, not refused
        out.append((gone or going).removesuffix(" (--model)"))
    return out


def generation_cost(
    model: str,
    input_tokens: int,
    output_tokens: int,
    batch_api: bool = False,
    prices: PriceTable | None = None,
    cached_tokens: int = 0,
) -> float | None:
    """USD for `input_tokens` in (of which `cached_tokens` from the provider's prompt cache)
    and `output_tokens` out (reasoning included) on `model`; None if not priced."""
    prices = prices or load_prices()
    found = prices.lookup(model)
    if found is None or found[1].input is None or found[1].output is None:
        return None
    return found[1].usd(input_tokens, output_tokens, cached_tokens,
                        prices.batch_discount if batch_api else 0.0)
