"""The dated price and lifecycle table of OpenAI models (persona/data/prices.toml).

Prices in USD per 1M tokens: training, inference input, cached input (the provider's prompt
cache), output (reasoning tokens are billed as output). Lifecycle: the date OpenAI shuts a
model down and the substitute it names, so a run on a model that is gone fails at once with
what to use instead, and one that goes within `WARN_DAYS` is warned about. A file can replace
the table (`persona cost --prices FILE`, same schema, unknown keys rejected).
"""

from __future__ import annotations

import re
import tomllib
from datetime import date
from importlib import resources
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from persona.errors import InputError, from_validation
from persona.io import check_readable

WARN_DAYS = 90  # a model shut down within this many days is warned about
_SNAPSHOT = re.compile(r"-\d{4}(?:-\d{2}-\d{2})?(?::.*)?")  # -2024-07-18, -0125, then ft: parts


class ModelPrice(BaseModel):
    """One model's prices (USD per 1M tokens), fine-tuning limit and lifecycle."""

    model_config = ConfigDict(extra="forbid")
    training: float | None = Field(None, ge=0, description="per 1M trained tokens")
    input: float | None = Field(None, ge=0, description="per 1M input tokens (inference)")
    cached_input: float | None = Field(None, ge=0, description="per 1M input tokens served "
                                       "from the provider's prompt cache")
    output: float | None = Field(None, ge=0, description="per 1M output tokens (inference)")
    max_example_tokens: int | None = Field(None, gt=0, description="longest training example")
    shutdown: date | None = Field(None, description="the day OpenAI shuts the model down")
    substitute: str | None = Field(None, description="the model OpenAI names instead")

    def usd(self, input_tokens: int, output_tokens: int, cached_tokens: int = 0,
            discount: float = 0.0) -> float:
        """Inference cost; cached input at its own price (the input price when unknown)."""
        cached = min(cached_tokens, input_tokens)
        cached_price = self.cached_input if self.cached_input is not None else self.input
        usd = ((input_tokens - cached) * (self.input or 0) + cached * (cached_price or 0)
               + output_tokens * (self.output or 0)) / 1e6
        return usd * (1 - discount)


class PriceTable(BaseModel):
    """A dated price table; see persona/data/prices.toml for the schema by example."""

    model_config = ConfigDict(extra="forbid")
    as_of: date
    source: str
    currency: str = "USD"
    batch_discount: float = Field(0.5, ge=0, lt=1, description="Batch API discount")
    models: dict[str, ModelPrice] = Field(min_length=1)

    def lookup(self, model: str) -> tuple[str, ModelPrice] | None:
        """(table name, prices) for `model`, a dated snapshot of it ("-2024-07-18", "-0125")
        or a fine-tuned one ("ft:gpt-4o-mini:org::id"); the longest name wins. A name that
        only begins like one ("gpt-4o-minii") is not priced as it."""
        model = model.strip().lower().removeprefix("ft:")
        names = [n for n in self.models
                 if model == n.lower() or model.startswith(n.lower() + ":")
                 or _SNAPSHOT.fullmatch(model[len(n):]) and model.startswith(n.lower())]
        if not names:
            return None
        name = max(names, key=len)
        return name, self.models[name]

    def priced(self) -> list[str]:
        """Models with inference prices that are not shut down (for messages)."""
        return [n for n, p in self.models.items() if p.input is not None and
                p.output is not None and p.shutdown is None]


def load_prices(path: Path | None = None) -> PriceTable:
    """The shipped table, or the one in `path`; a bad file raises InputError (one line)."""
    if path is None:
        text = resources.files("persona").joinpath("data/prices.toml").read_text("utf-8")
        where = "persona/data/prices.toml"
    else:
        check_readable(Path(path))
        text, where = Path(path).read_text(encoding="utf-8"), str(path)
    try:
        return PriceTable.model_validate(tomllib.loads(text))
    except tomllib.TOMLDecodeError as e:
        raise InputError(f"invalid TOML: {e}", file=where) from None
    except ValidationError as e:
        raise from_validation(e, file=where, cls=InputError, model=PriceTable) from None


def lifecycle(model: str, today: date | None = None, prices: PriceTable | None = None
              ) -> tuple[str | None, str | None]:
    """(error, warning) for asking `model` today: an error when OpenAI has shut it down, a
    warning when it goes within WARN_DAYS; each names the substitute. (None, None) for a
    model without an announced date, or one the table does not know."""
    prices = prices or load_prices()
    found = prices.lookup(model)
    if found is None or found[1].shutdown is None:
        return None, None
    name, p = found
    today = today or date.today()
    instead = f"; use {p.substitute} instead" if p.substitute else ""
    if p.shutdown <= today:
        return (f"model {model!r} was shut down by OpenAI on {p.shutdown.isoformat()}"
                f"{instead} (--model)"), None
    days = (p.shutdown - today).days
    if days <= WARN_DAYS:
        return None, (f"model {model!r} will be shut down by OpenAI on "
                      f"{p.shutdown.isoformat()}, in {days} days{instead}")
    return None, None
