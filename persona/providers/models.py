"""What a model accepts, and the request parameters persona sends it.

The code asks for *logical* parameters (a temperature, an output limit `max_tokens`, a JSON
schema); `RequestShape.wire` turns them into what the model's family accepts
(persona/data/models.toml): reasoning models get `max_completion_tokens` with room for their
reasoning, a `reasoning_effort` (the lowest the family has, unless --reasoning-effort says
otherwise), and no temperature where only the default is accepted. A model of no known
family (a vLLM or Ollama model) gets what persona always sent. `--param KEY=VALUE` adds to
every request. When a server still refuses a parameter (400 `unsupported_parameter` /
`unsupported_value`), `adapt` changes the run's parameters once, with a note for the user and
the report, instead of failing 6,000 requests.

The cache keys on the logical parameters and the effort (`key_params`), not on the wire form,
so an adaptation learnt in one run does not make the next run's cache miss.
"""

from __future__ import annotations

import functools
import re
import tomllib
from dataclasses import dataclass
from importlib import resources

from persona.errors import ProviderError

EFFORTS = ("none", "minimal", "low", "medium", "high", "xhigh", "max")
# Output tokens allowed for reasoning on top of an answer's own limit: max_completion_tokens
# counts both, and an answer whose reasoning eats the limit comes back empty.
REASONING_ROOM = {"none": 0, "minimal": 256, "low": 1024, "medium": 4096, "high": 8192,
                  "xhigh": 16384, "max": 32768}
# Parameters a run may go without when a server refuses them (its own --param ones too).
DROPPABLE = {"temperature", "top_p", "stop", "seed", "verbosity", "presence_penalty",
             "frequency_penalty", "logprobs", "reasoning_effort"}


@dataclass(frozen=True)
class Family:
    name: str
    match: tuple[str, ...]
    reasoning: bool
    token_limit: str
    temperature: str  # "any" | "default" | "without-reasoning"
    efforts: tuple[str, ...]
    structured: bool


@functools.lru_cache(maxsize=1)
def table() -> tuple[str, tuple[Family, ...]]:
    """(the date the table was checked, its families)."""
    data = tomllib.loads((resources.files("persona") / "data" / "models.toml")
                         .read_text(encoding="utf-8"))
    fams = tuple(Family(name, tuple(f["match"]), f["reasoning"], f["token_limit"],
                        f["temperature"], tuple(f["efforts"]), f["structured"])
                 for name, f in data["families"].items())
    return str(data["checked"]), fams


def family_of(model: str) -> Family | None:
    """The family of `model` (dated snapshots and fine-tuned "ft:" names included)."""
    name = model.strip().lower().removeprefix("ft:")
    best: tuple[int, Family] | None = None
    for fam in table()[1]:
        for prefix in fam.match:
            if name == prefix or name.startswith((prefix + "-", prefix + ":")):
                if best is None or len(prefix) > best[0]:
                    best = (len(prefix), fam)
    return best[1] if best else None


def parse_params(pairs: tuple[str, ...] | list[str]) -> dict:
    """`--param KEY=VALUE` pairs: the value as JSON where it parses (numbers, true, lists),
    else as a string."""
    import json

    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ProviderError(f"--param {pair!r}: expected KEY=VALUE, e.g. top_k=40")
        try:
            out[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            out[key.strip()] = value
    return out


class RequestShape:
    """One model's request parameters for a run, adapted as its server answers."""

    def __init__(self, model: str, effort: str | None = None, extra: dict | None = None):
        self.model = model
        self.family = family_of(model)
        fam = self.family
        if effort is not None and effort not in EFFORTS:
            raise ProviderError(f"--reasoning-effort {effort!r}: one of {', '.join(EFFORTS)}")
        if fam is not None and fam.reasoning:
            if effort is not None and effort not in fam.efforts:
                raise ProviderError(f"--reasoning-effort {effort!r}: {model} takes "
                                    f"{', '.join(fam.efforts)}")
            effort = effort or fam.efforts[0]
        elif fam is not None and effort is not None:
            raise ProviderError(f"--reasoning-effort: {model} is not a reasoning model")
        self.effort = effort
        self.extra = dict(extra or {})
        self.renamed: dict[str, str] = {}
        self.dropped: set[str] = set()
        self.notes: list[str] = []
        self.room = 0  # output tokens added for a model the table did not know reasons

    def key_params(self) -> dict:
        """What, beyond the logical parameters, changes an answer: part of the cache key."""
        out = dict(self.extra)
        if self.effort is not None:
            out["reasoning_effort"] = self.effort
        return out

    def wire(self, params: dict) -> dict:
        """The parameters sent for logical `params` (temperature, max_tokens, ...)."""
        p = dict(params)
        fam = self.family
        limit = p.pop("max_tokens", None)
        if limit is not None:
            limit += self.room
        if fam is not None:
            if limit is not None:
                if fam.reasoning:
                    limit += REASONING_ROOM.get(self.effort or "none", 0)
                p[fam.token_limit] = limit
            if "temperature" in p and (fam.temperature == "default" or (
                    fam.temperature == "without-reasoning" and self.effort != "none")):
                del p["temperature"]
            if not fam.structured:
                p.pop("response_format", None)
        elif limit is not None:
            p["max_tokens"] = limit
        if self.effort is not None:
            p["reasoning_effort"] = self.effort
        p.update(self.extra)
        for old, new in self.renamed.items():
            if old in p:
                p[new] = p.pop(old)
        for key in self.dropped:
            p.pop(key, None)
        return p

    def reasoned(self, tokens: int) -> str | None:
        """An answer spent `tokens` on reasoning: a model the table did not know as a
        reasoning one gets room for it in every limit (twice what it spent, in 1,024 steps);
        the note to show, once."""
        known = self.family is not None and self.family.reasoning
        if known or tokens * 2 <= self.room:
            return None
        first = self.room == 0
        self.room = -(-tokens * 2 // 1024) * 1024
        if not first:
            return None
        note = (f"{self.model} reasons ({tokens} tokens in one answer): its output limit gets "
                f"{self.room} more")
        self.notes.append(note)
        return note

    def output_limit(self, max_tokens: int) -> int:
        """The output tokens a request may be billed for: its limit as sent."""
        wire = self.wire({"max_tokens": max_tokens})
        return int(wire.get("max_completion_tokens", wire.get("max_tokens", max_tokens)))

    def adapt(self, code: str | None, param: str | None, message: str) -> str | None:
        """Change the run's parameters after the server refused `param`; the note to show,
        or None when it is nothing the run may go without (the caller stops the run)."""
        if code not in ("unsupported_parameter", "unsupported_value") or not param:
            return None
        if param == "max_tokens" and "max_tokens" not in self.renamed:
            self.renamed["max_tokens"] = "max_completion_tokens"
            note = "max_tokens refused: sending max_completion_tokens"
        elif param == "max_completion_tokens" and "max_completion_tokens" not in self.renamed:
            self.renamed["max_completion_tokens"] = "max_tokens"
            note = "max_completion_tokens refused: sending max_tokens"
        elif param == "reasoning_effort" and code == "unsupported_value":
            allowed = [e for e in EFFORTS if re.search(rf"'{e}'", message.split("upported", 2)[-1])]
            higher = [e for e in allowed if e != self.effort]
            if not higher:
                return self._drop(param, message)
            old, self.effort = self.effort, higher[0]
            note = f"reasoning_effort {old!r} refused: sending {self.effort!r}"
        elif param in DROPPABLE or param in self.extra:
            return self._drop(param, message)
        else:
            return None
        self.notes.append(note)
        return note

    def _drop(self, param: str, message: str) -> str | None:
        if param in self.dropped:
            return None
        self.dropped.add(param)
        if param == "reasoning_effort":
            self.effort = None
        note = f"{param} not sent: {message.splitlines()[0][:160]}"
        self.notes.append(note)
        return note

    def describe(self) -> dict:
        """The run's parameters for the report: family, effort, extras, adaptations."""
        checked, _ = table()
        return {"model": self.model,
                "family": self.family.name if self.family else None,
                "reasoning_effort": self.effort, "extra": self.extra,
                "adapted": list(self.notes), "table_checked": checked}
