"""PersonaSpec: a persona described as data (TOML), validated with pydantic.

A spec carries everything the generators need: who speaks (system prompt, signature), the style
mix and slip rate, the placeholder categories with the grammatical forms of each value, the
offline grammar that recombines into templates, the journalist's question frames and the slip
rules. Every `{category.form}` a fragment asks for is checked at load time against every value,
so a missing case form is a spec error naming its field, not a broken sentence found later.
"""

from __future__ import annotations

import hashlib
import re
from importlib import resources
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from persona.errors import SpecError, from_validation
from persona.io import read_toml

# `{tema}` or `{tema.gen}`; anything else in braces is not a placeholder and is rejected.
PLACEHOLDER_RE = re.compile(r"\{([a-z][a-z0-9_]*)(?:\.([a-z][a-z0-9_]*))?\}")
ANY_BRACE_RE = re.compile(r"[{}]")

NonEmpty = Annotated[str, Field(min_length=1)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PersonaInfo(Strict):
    id: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_-]*$")]
    name: NonEmpty
    language: Annotated[str, Field(pattern=r"^[a-z]{2}$")]
    # "" = the persona does not sign (the bench's neutral spokesperson).
    signature: str = ""
    description: str = ""
    system_prompt: NonEmpty


class StyleDef(Strict):
    label: NonEmpty
    description: NonEmpty
    prefixes: list[str] = Field(min_length=1)
    suffixes: list[str] = Field(min_length=1)


class StyleConfig(Strict):
    mix: dict[str, Annotated[float, Field(ge=0, le=1)]] = Field(min_length=1)
    slip_rate: Annotated[float, Field(ge=0, le=1)]

    @field_validator("mix")
    @classmethod
    def _sums_to_one(cls, mix: dict[str, float]) -> dict[str, float]:
        total = sum(mix.values())
        if abs(total - 1.0) > 1e-6:
            raise ValueError(f"shares must sum to 1, they sum to {total:g}")
        return mix


class Placeholder(Strict):
    description: NonEmpty
    forms: list[Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$")]] = Field(min_length=1)
    values: list[dict[str, NonEmpty]] = Field(min_length=1)

    @model_validator(mode="after")
    def _every_value_has_every_form(self) -> Placeholder:
        for i, value in enumerate(self.values):
            for form in self.forms:
                if form not in value:
                    raise ValueError(f"values[{i}] ({_first(value)!r}) lacks the form {form!r}")
            extra = set(value) - set(self.forms)
            if extra:
                raise ValueError(f"values[{i}] has forms not declared in `forms`: "
                                 f"{', '.join(sorted(extra))}")
            for form, text in value.items():
                if ANY_BRACE_RE.search(text):
                    raise ValueError(f"values[{i}].{form} contains a brace")
        return self


class Rewrite(Strict):
    """A regular-expression rewrite (Python `re` syntax, `\\1` for groups)."""

    pattern: NonEmpty
    replacement: str

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, pattern: str) -> str:
        try:
            re.compile(pattern)
        except re.error as e:
            raise ValueError(f"not a valid regular expression: {e}") from None
        return pattern


class Grammar(Strict):
    """Offline stage 1: a template is an opener + a core + a closer, recombined."""

    count: Annotated[int, Field(ge=1)] = 400
    openers: list[str] = Field(min_length=1)
    cores: list[NonEmpty] = Field(min_length=1)
    closers: list[str] = Field(min_length=1)
    fixups: list[Rewrite] = []


class Journalist(Strict):
    description: NonEmpty
    # Offline question frames; a frame is used only for answers that have all its placeholders.
    questions: list[NonEmpty] = Field(min_length=1)
    # Categories a question must share with its answer whenever the answer uses them.
    match: list[str] = []


class SlipRule(Rewrite):
    """A deliberate slip: what kind it is (the report counts kinds) and how to make it."""

    kind: NonEmpty


class PersonaSpec(Strict):
    persona: PersonaInfo
    style: StyleConfig
    styles: dict[str, StyleDef]
    placeholders: dict[Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$")], Placeholder]
    grammar: Grammar
    journalist: Journalist
    slips: list[SlipRule] = Field(min_length=1)

    @model_validator(mode="after")
    def _cross_check(self) -> PersonaSpec:
        if set(self.style.mix) != set(self.styles):
            raise ValueError(f"style.mix names {sorted(self.style.mix)} but [styles] defines "
                             f"{sorted(self.styles)}")
        for where, text in self.fragments():
            check_fragment(text, self.placeholders, where)
        frames = [{n for n, _ in slots_of(q)} for q in self.journalist.questions]
        for i, core in enumerate(self.grammar.cores):
            have = {n for n, _ in slots_of(core)}
            if not have:
                raise ValueError(f"grammar.cores[{i}]: a core needs at least one placeholder")
            if not any(f <= have for f in frames):
                raise ValueError(f"grammar.cores[{i}]: no journalist question frame uses only "
                                 f"its placeholders ({', '.join(sorted(have)) or 'none'}), so "
                                 "its answers could get no matching question")
        for name in self.journalist.match:
            if name not in self.placeholders:
                raise ValueError(f"journalist.match names unknown placeholder {name!r}")
        for name, ph in self.placeholders.items():
            keys = [next(iter(v.values())) for v in ph.values]
            dup = next((k for k in keys if keys.count(k) > 1), None)
            if dup is not None:
                raise ValueError(f"placeholders.{name}: value {dup!r} appears twice")
        return self

    # -- derived views ---------------------------------------------------------------------
    @property
    def id(self) -> str:
        return self.persona.id

    def fragments(self):
        """Every text that may carry placeholders, with the field it comes from."""
        g = self.grammar
        for name in ("openers", "cores", "closers"):
            for i, text in enumerate(getattr(g, name)):
                yield f"grammar.{name}[{i}]", text
        for sname, sdef in self.styles.items():
            for part in ("prefixes", "suffixes"):
                for i, text in enumerate(getattr(sdef, part)):
                    yield f"styles.{sname}.{part}[{i}]", text
        for i, text in enumerate(self.journalist.questions):
            yield f"journalist.questions[{i}]", text

    def fingerprint(self) -> str:
        return hashlib.sha256(self.model_dump_json().encode()).hexdigest()[:16]


def _first(value: dict[str, str]) -> str:
    return next(iter(value.values()), "")


def slots_of(text: str) -> list[tuple[str, str | None]]:
    """The (category, form) pairs a text asks for, in order of appearance."""
    return [(m.group(1), m.group(2)) for m in PLACEHOLDER_RE.finditer(text)]


def check_fragment(text: str, placeholders: dict[str, Placeholder], where: str) -> None:
    """Raise ValueError if `text` asks for an unknown category or form, or has stray braces."""
    for name, form in slots_of(text):
        if name not in placeholders:
            raise ValueError(f"{where}: unknown placeholder {{{name}}} in {text!r}")
        if form is not None and form not in placeholders[name].forms:
            raise ValueError(f"{where}: placeholder {{{name}.{form}}} asks for a form that "
                             f"[placeholders.{name}] does not declare")
    if ANY_BRACE_RE.search(PLACEHOLDER_RE.sub("", text)):
        raise ValueError(f"{where}: stray brace in {text!r}")


# -- loading -------------------------------------------------------------------------------

def builtin_ids() -> list[str]:
    folder = resources.files("persona") / "personas"
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".toml"))


def builtin_path(persona_id: str) -> Path:
    return Path(str(resources.files("persona") / "personas" / f"{persona_id}.toml"))


def resolve(name_or_path: str) -> Path:
    """A built-in persona id, or a path to a TOML spec."""
    if name_or_path in builtin_ids():
        return builtin_path(name_or_path)
    path = Path(name_or_path)
    if path.suffix == ".toml" or path.exists():
        return path
    raise SpecError(f"unknown persona {name_or_path!r}; built-ins: {', '.join(builtin_ids())} "
                    "(or give a path to a .toml spec)")


def load_spec(name_or_path: str | Path) -> PersonaSpec:
    path = resolve(str(name_or_path))
    return parse_spec(read_toml(path, SpecError), source=str(path))


def parse_spec(data: dict, source: str = "<spec>") -> PersonaSpec:
    try:
        return PersonaSpec.model_validate(data)
    except ValidationError as e:
        raise from_validation(e, file=source, cls=SpecError) from None
