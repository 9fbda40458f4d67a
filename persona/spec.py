"""PersonaSpec: a persona described as data (TOML), validated with pydantic.

A spec carries everything the generators need: who speaks (system prompt, signature), the style
mix and slip rate, the placeholder categories with the grammatical forms of each value, the
offline grammar that recombines into templates, the journalist's question frames and the slip
rules. Every `{category.form}` a fragment asks for is checked at load time against every value,
so a missing case form is a spec error naming its field, not a broken sentence found later.
"""

from __future__ import annotations

import functools
import hashlib
import re
from importlib import resources
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from persona.errors import SpecError, from_validation
from persona.finder import Finder, finder
from persona.io import read_toml

# `{tema}` or `{tema.gen}`; anything else in braces is not a placeholder and is rejected.
PLACEHOLDER_RE = re.compile(r"\{([a-z][a-z0-9_]*)(?:\.([a-z][a-z0-9_]*))?\}")
# `{nepritel@ti}`: a word that agrees with the value of a category (its gender and number).
AGREE_RE = re.compile(r"\{([a-z][a-z0-9_]*)@([a-z0-9_]+)\}")
ANY_BRACE_RE = re.compile(r"[{}]")
# `[a|b|c]`: one alternative is drawn per answer; `[|a]` makes `a` optional. Not nested.
ALT_RE = re.compile(r"\[([^\[\]]*\|[^\[\]]*)\]")

NonEmpty = Annotated[str, Field(min_length=1)]

def per_spec(fn):
    """Cache a function of (spec, *args) per spec object (a spec holds dicts, so it is not
    hashable; it is immutable, so its identity is enough). The spec is kept, so its id is
    never reused while the entry lives."""
    cache: dict = {}

    @functools.wraps(fn)
    def wrapper(spec, *args):
        key = (id(spec), *args)
        if key not in cache:
            if len(cache) > 64:
                cache.clear()
            cache[key] = (spec, fn(spec, *args))
        return cache[key][1]

    return wrapper




@functools.lru_cache(maxsize=64)
def rx_any(patterns: tuple[str, ...]) -> Finder | None:
    """One regular expression that matches where any of `patterns` does (a leading `(?i)`
    kept to its own part), compiled once, with its literal first look (persona/finder.py):
    a cheap look before asking which one matched. None where it cannot stand for them (no
    patterns, a backreference, a flag elsewhere than at the start)."""
    parts = [f"(?i:{p[4:]})" if p.startswith("(?i)") else f"(?:{p})" for p in patterns]
    plain = parts and not any(re.search(r"\\\d|\(\?P=|\(\?[aiLmsux]+\)", p)
                              for p in parts)
    return finder("|".join(parts)) if plain else None


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
    # The value key that holds a value's gender and number ("mz.pl": masculine animate
    # plural; "mn", "f", "n" for masculine inanimate, feminine, neuter; ".sg"/".pl").
    agreement: str | None = None
    # Words that agree with a value: word -> {class -> text}; a class may be a whole
    # "f.pl", only the number "pl", or "*" for the rest. Used as `{category@word}`.
    agree: dict[Annotated[str, Field(pattern=r"^[a-z0-9_]+$")], dict[str, str]] = {}
    # The journalist's neutral wording: answer form -> the key a question uses instead
    # ("nom" -> "q_nom"), so a question never borrows the persona's own labels. A value
    # gives the neutral key only where its own form is a label; otherwise the form is used.
    question_forms: dict[str, Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$")]] = {}
    # Draw a new value for every mention (whole exclamations), not one value per answer.
    per_mention: bool = False

    @model_validator(mode="after")
    def _every_value_has_every_form(self) -> Placeholder:
        attrs = ({self.agreement} if self.agreement else set()) | set(
            self.question_forms.values())
        for i, value in enumerate(self.values):
            for form in self.forms:
                if form not in value:
                    raise ValueError(f"values[{i}] ({_first(value)!r}) lacks the form {form!r}")
            if self.agreement and self.agreement not in value:
                raise ValueError(f"values[{i}] ({_first(value)!r}) lacks its gender and number "
                                 f"({self.agreement!r}), which `agreement` asks for")
            extra = set(value) - set(self.forms) - attrs
            if extra:
                raise ValueError(f"values[{i}] has forms not declared in `forms`: "
                                 f"{', '.join(sorted(extra))}")
            for form, text in value.items():
                if ANY_BRACE_RE.search(text):
                    raise ValueError(f"values[{i}].{form} contains a brace")
        for form, qform in self.question_forms.items():
            if form not in self.forms:
                raise ValueError(f"question_forms names {form!r}, which `forms` does not "
                                 "declare")
            if qform in self.forms:
                raise ValueError(f"question_forms: {qform!r} is an answer form; name the "
                                 "neutral form differently (e.g. q_nom)")
        if self.agree and not self.agreement:
            raise ValueError("`agree` words need `agreement` (the value key holding gender "
                             "and number)")
        for word, table in self.agree.items():
            for i, value in enumerate(self.values):
                if agree_form(table, value[self.agreement]) is None:
                    raise ValueError(f"agree.{word} has no form for {value[self.agreement]!r} "
                                     f"(values[{i}] {_first(value)!r})")
        return self

    def value_class(self, value: dict[str, str]) -> str:
        return value.get(self.agreement, "") if self.agreement else ""


def agree_form(table: dict[str, str], cls: str) -> str | None:
    """The agreeing word for a gender.number class: exact class, then number, then `*`."""
    for key in (cls, cls.rpartition(".")[2], "*"):
        if key in table:
            return table[key]
    return None


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


class StyleDef(Strict):
    label: NonEmpty
    description: NonEmpty
    prefixes: list[str] = Field(min_length=1)
    suffixes: list[str] = Field(min_length=1)
    # Sentences of this style put between the template's sentences, so the style runs
    # through the whole answer, not only its first and last sentence.
    bodies: list[NonEmpty] = []


class Grammar(Strict):
    """Offline stage 1: a template is an opener + a core + a closer, recombined."""

    count: Annotated[int, Field(ge=1)] = 400
    openers: list[str] = Field(min_length=1)
    cores: list[NonEmpty] = Field(min_length=1)
    closers: list[str] = Field(min_length=1)
    fixups: list[Rewrite] = []
    # Style sentences per answer (prefix, bodies, suffix together) -> weight. Empty: the
    # old shape, one prefix + template + one suffix.
    style_sentences: dict[Annotated[str, Field(pattern=r"^[0-9]$")],
                          Annotated[float, Field(ge=0)]] = {}
    # No category's value is named more often than this in one answer (nor in a template).
    max_mentions: Annotated[int, Field(ge=1)] = 2
    # No answer has more sentences than this (with style_sentences).
    max_sentences: Annotated[int, Field(ge=1)] = 7
    # Pairs of regular expressions that must not both match one answer (clashing parts).
    clashes: list[Annotated[list[NonEmpty], Field(min_length=2, max_length=2)]] = []
    # Sentences that end an answer (refusals, wrap-ups: "To nebudu komentovat."): a sentence
    # in which one of these regexes is found (case-insensitively) may only be an answer's
    # last sentence, and an answer has at most one. Only closers and style suffixes may hold
    # one (checked at load); a template ending with one gets no style suffix after it.
    last_only: list[NonEmpty] = []

    @field_validator("last_only")
    @classmethod
    def _last_only_compile(cls, patterns: list[str]) -> list[str]:
        for pattern in patterns:
            try:
                re.compile(pattern)
            except re.error as e:
                raise ValueError(f"last_only {pattern!r}: not a valid regular expression: "
                                 f"{e}") from None
        return patterns

    def ending(self, text: str) -> str | None:
        """The first sentence of `text` (any of its alternatives) that may only end an
        answer, or None."""
        if not self.last_only:
            return None
        return _ending(tuple(self.last_only), text)

    @field_validator("clashes")
    @classmethod
    def _clashes_compile(cls, clashes: list[list[str]]) -> list[list[str]]:
        for pair in clashes:
            for pattern in pair:
                try:
                    re.compile(pattern)
                except re.error as e:
                    raise ValueError(f"clash {pattern!r}: not a valid regular expression: "
                                     f"{e}") from None
        return clashes

    @model_validator(mode="after")
    def _count_is_possible(self) -> Grammar:
        most = len(self.openers) * len(self.cores) * len(self.closers)
        if self.count > most:
            raise ValueError(f"count: {self.count} templates asked, but {len(self.openers)} "
                             f"openers × {len(self.cores)} cores × {len(self.closers)} closers "
                             f"make at most {most}")
        if most <= 200_000:  # exact: empty parts and repeats make fewer distinct texts
            distinct: set[str] = set()
            for o in self.openers:  # until enough are found (every one only when too few)
                for c in self.cores:
                    distinct.update(" ".join(f"{o} {c} {e}".split()) for e in self.closers)
                    if len(distinct) >= self.count:
                        return self
            raise ValueError(f"count: {self.count} templates asked, but the grammar makes "
                             f"only {len(distinct)} distinct ones")
        return self


class Language(Strict):
    """Grammar checks of fragments at load time (all optional)."""

    # Preposition -> the forms (cases) it governs: `kvůli {tema.gen}` is a spec error when
    # kvůli = ["dat"]. Keys are matched case-insensitively as whole words.
    prepositions: dict[str, list[str]] = {}
    # Forms of agreeing words that are also other, common words ("to", "je"): a literal one
    # next to a subject is not taken for a missing agreement.
    ambiguous: list[str] = []


class Journalist(Strict):
    description: NonEmpty
    # Offline question frames; a frame is used only for answers that have all its placeholders.
    questions: list[NonEmpty] = Field(min_length=1)

    @field_validator("questions")
    @classmethod
    def _are_questions(cls, questions: list[str]) -> list[str]:
        # Found here, not after a run's worth of retries of every answer using the frame.
        for i, q in enumerate(questions):
            if "?" not in q:
                raise ValueError(f"questions[{i}] has no '?', so every question made from it "
                                 f"would be rejected: {q!r}")
        return questions
    # Categories a question must share with its answer whenever the answer uses them.
    match: list[str] = []
    # The persona's own labels (words a neutral journalist never uses); a question with one
    # is rejected, and no question frame may contain one.
    labels: list[NonEmpty] = []
    # Context sentences put before a question (some first questions, every re-asked one), so
    # questions stay distinct in large datasets; same placeholder rules as the frames.
    leads: list[NonEmpty] = []


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
    language: Language = Language()

    @model_validator(mode="after")
    def _cross_check(self) -> PersonaSpec:
        if set(self.style.mix) != set(self.styles):
            raise ValueError(f"style.mix names {sorted(self.style.mix)} but [styles] defines "
                             f"{sorted(self.styles)}")
        for where, text in self.fragments():
            check_fragment(text, self.placeholders, where)
            check_grammar(text, self, where)
        self._check_journalist_labels()
        self._check_endings()
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

    def _check_endings(self) -> None:
        """A refusal or wrap-up (grammar.last_only) stands only where nothing follows it."""
        g = self.grammar
        where = [(f"grammar.{n}[{i}]", t) for n in ("openers", "cores")
                 for i, t in enumerate(getattr(g, n))]
        where += [(f"styles.{s}.{part}[{i}]", t) for s, d in self.styles.items()
                  for part in ("prefixes", "bodies") for i, t in enumerate(getattr(d, part))]
        for field, text in where:
            sentence = g.ending(text)
            if sentence is not None:
                raise ValueError(f"{field}: {sentence!r} may only end an answer "
                                 "(grammar.last_only); put it among the closers or a style's "
                                 "suffixes")

    def _check_journalist_labels(self) -> None:
        """No question frame, nor any value a frame can put into a question, says a label."""
        labels = [x.lower() for x in self.journalist.labels]
        if not labels:
            return
        frames = [(f"journalist.questions[{i}]", q)
                  for i, q in enumerate(self.journalist.questions)]
        frames += [(f"journalist.leads[{i}]", q) for i, q in enumerate(self.journalist.leads)]
        for where, q in frames:
            bad = next((x for x in labels if x in PLACEHOLDER_RE.sub("", q).lower()), None)
            if bad:
                raise ValueError(f"{where}: uses the persona's label {bad!r}")
            for name, form in slots_of(q):
                ph = self.placeholders[name]
                form = form or ph.forms[0]
                qform = ph.question_forms.get(form)
                for v in ph.values:
                    text = (v.get(qform) if qform else None) or v[form]
                    bad = next((x for x in labels if x in text.lower()), None)
                    if bad:
                        raise ValueError(
                            f"{where}: {{{name}.{form}}} would put the persona's label {bad!r} "
                            f"into a question ({_first(v)!r}); give the value a neutral "
                            f"{qform or 'question'} form (placeholders.{name}.question_forms)")

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
            for part in ("prefixes", "suffixes", "bodies"):
                for i, text in enumerate(getattr(sdef, part)):
                    yield f"styles.{sname}.{part}[{i}]", text
        for i, text in enumerate(self.journalist.questions):
            yield f"journalist.questions[{i}]", text
        for i, text in enumerate(self.journalist.leads):
            yield f"journalist.leads[{i}]", text

    def fingerprint(self) -> str:
        return hashlib.sha256(self.model_dump_json().encode()).hexdigest()[:16]


def _first(value: dict[str, str]) -> str:
    return next(iter(value.values()), "")


@functools.lru_cache(maxsize=64)
def _any_ending(patterns: tuple[str, ...]) -> Finder:
    return finder("|".join(f"(?:{p})" for p in patterns), re.IGNORECASE)


@functools.lru_cache(maxsize=65536)
def _ending(patterns: tuple[str, ...], text: str) -> str | None:
    """Grammar.ending, cached: the same sentences come back in answer after answer."""
    pattern = _any_ending(patterns)
    for variant in expansions(text):
        for sentence in _SENTENCE_SPLIT.split(variant.strip()):
            if pattern.search(sentence):
                return sentence
    return None


def expansions(text: str, limit: int = 512) -> list[str]:
    """Every way of resolving the `[a|b]` alternatives of a text (at most `limit`)."""
    out = [""]
    pos = 0
    for m in ALT_RE.finditer(text):
        head = text[pos:m.start()]
        out = [o + head + alt for o in out for alt in m.group(1).split("|")][:limit]
        pos = m.end()
    return [o + text[pos:] for o in out]


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
    for m in AGREE_RE.finditer(text):
        name, word = m.group(1), m.group(2)
        if name not in placeholders:
            raise ValueError(f"{where}: unknown placeholder {{{name}@{word}}} in {text!r}")
        if word not in placeholders[name].agree:
            raise ValueError(f"{where}: {{{name}@{word}}} asks for an agreeing word that "
                             f"[placeholders.{name}].agree does not define")
    if ANY_BRACE_RE.search(AGREE_RE.sub("", PLACEHOLDER_RE.sub("", text))):
        raise ValueError(f"{where}: stray brace in {text!r}")
    bare = ALT_RE.sub("", text)
    if "[" in bare or "]" in bare:
        raise ValueError(f"{where}: unbalanced or nested [alternatives|...] in {text!r}")


_SENTENCE_SPLIT = re.compile(r"(?<=[.!?])\s+")


def check_grammar(text: str, spec: PersonaSpec, where: str) -> None:
    """Case after a preposition, and agreement with a subject whose values differ in
    gender or number: both are spec errors naming the fragment and what is wrong."""
    preps = {k.lower(): v for k, v in spec.language.prepositions.items()}
    if preps:
        for m in re.finditer(r"(?<![\w{.@])(\w+) \{([a-z][a-z0-9_]*)(?:\.([a-z0-9_]+))?\}",
                             text):
            prep, name, form = m.group(1).lower(), m.group(2), m.group(3)
            if prep in preps and name in spec.placeholders:
                form = form or spec.placeholders[name].forms[0]
                if form not in preps[prep]:
                    raise ValueError(f"{where}: {m.group(1)!r} takes "
                                     f"{' or '.join(preps[prep])}, not {{{name}.{form}}} "
                                     f"in {text!r}")
    for sentence in _SENTENCE_SPLIT.split(text):
        for name, form in slots_of(sentence):
            ph = spec.placeholders.get(name)
            if ph is None or not ph.agree or (form or ph.forms[0]) != ph.forms[0]:
                continue
            classes = {ph.value_class(v) for v in ph.values}
            for word, table in ph.agree.items():
                forms = {agree_form(table, c) for c in classes}
                if len(forms) < 2:
                    continue  # the same word for every value: nothing to agree
                for literal in sorted(forms - {None} - set(spec.language.ambiguous)):
                    if re.search(rf"(?<![\w{{@]){re.escape(literal)}(?![\w}}])", sentence):
                        raise ValueError(
                            f"{where}: {literal!r} must agree with {{{name}.{ph.forms[0]}}}, "
                            f"whose values differ in gender or number; write {{{name}@{word}}} "
                            f"in {text!r}")


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
        raise from_validation(e, file=source, cls=SpecError, model=PersonaSpec) from None
