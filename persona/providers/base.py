"""What a provider is: who writes the text of the three generation stages.

Stages decide *what* to write (which template, style, whether to slip) and check the result;
providers only write. So the style mix and slip rate are exact whatever the provider, and a
stage never knows which provider it talks to.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from persona.spec import PersonaSpec


@dataclass(frozen=True)
class TemplateRecord:
    id: str
    text: str
    placeholders: list[str]
    forms: list[str]

    def to_dict(self) -> dict:
        return {"id": self.id, "text": self.text, "placeholders": self.placeholders,
                "forms": self.forms}


@dataclass(frozen=True)
class FillRequest:
    """One answer slot: the stage fixes template, style and slip; `attempt` varies retries.
    `previous` ({"text", "attempt"}): ask for a rephrase of that attempt's answer (one a slip
    rule did not fit) instead of a new one; only providers with `rephrases` get it."""

    index: int
    id: str
    template: TemplateRecord
    style: str
    slip: bool
    attempt: int = 0
    previous: dict | None = field(default=None, compare=False, hash=False)


@dataclass
class FillResult:
    text: str  # the signed answer
    values: dict[str, str]  # category -> value key
    slip: dict | None  # {"kind", "from", "to"} when a slip was made
    usage: dict = field(default_factory=dict)
    # What the writer was asked, for the checks (persona.checks.answer.answer_problems):
    # values to name, sentence range, the template not to copy. None: nothing beyond the
    # checks every answer passes (the offline grammar composes them exactly).
    brief: dict | None = None
    normalised: bool = False  # the provider normalised it already (an LLM's parse)
    fingerprint: tuple | None = None  # its dedup fingerprint, when a worker computed it
    # its question asked ahead and judged on its own (stages/questions.ask_and_judge), when a
    # forked worker could (the offline grammar: a question depends on the answer's slot and
    # values alone); the questions stage then only looks it up
    question: tuple | None = None


@dataclass(frozen=True)
class QuestionRequest:
    index: int  # seeds the ask: the answer's place in the run (its slot, in the LLM stream)
    answer: dict  # the answer record as written by the fill stage
    attempt: int = 0
    tag: Any = field(default=None, compare=False, repr=False)  # the caller's own


@dataclass
class Failure:
    """A provider could not produce an item (malformed output, refusal); the stage retries."""

    reason: str
    raw: str = ""
    retry: bool = True  # False when asking again cannot help (the input itself does not fit)


class Provider(Protocol):
    name: str

    def write_templates(self, spec: PersonaSpec, count: int, seed: int, round_no: int = 0
                        ) -> list[str | Failure]:
        """Template texts (with `{placeholders}`); the stage validates, dedups and numbers them.
        A request that failed for good, or a template refused by the provider (an LLM's
        near-copy of an example), is returned as a Failure (filed under invalid/).
        `round_no` > 0: a shortfall asked for again."""

    def fill(self, spec: PersonaSpec, requests: list[FillRequest], seed: int
             ) -> list[FillResult | Failure]: ...

    def ask(self, spec: PersonaSpec, requests: list[QuestionRequest], seed: int
            ) -> list[str | Failure]: ...
