"""Pure text transforms of the generators: filling placeholders, fix-ups, slips, signature.

No I/O and no global randomness: every random choice takes an explicit `random.Random`.
"""

from __future__ import annotations

import functools
import random
import re
from dataclasses import dataclass

from persona import lemmas
from persona.finder import finder
from persona.spec import (
    AGREE_RE,
    ALT_RE,
    PLACEHOLDER_RE,
    PersonaSpec,
    Rewrite,
    SlipRule,
    agree_form,
)

_SENTENCE_START = re.compile(r"(^|[.!?]\s+)([a-zà-žěščřžýáíéúůďťň])")
_SPACES = re.compile(r"[ \t]+")
# Anything that still looks like a placeholder after filling: `{x}`, `{x.y}` or a lone brace.
UNRESOLVED_RE = re.compile(r"\{[^{}\s]{0,40}\}|[{}]")


def value_key(value: dict[str, str]) -> str:
    """A value is named by its first form (the nominative for Czech nouns)."""
    return next(iter(value.values()))


def categories(text: str) -> list[str]:
    """Placeholder categories a text uses, sorted, without duplicates."""
    return list(_categories(text))


@functools.lru_cache(maxsize=8192)
def _categories(text: str) -> tuple[str, ...]:
    return tuple(sorted({m.group(1) for m in PLACEHOLDER_RE.finditer(text)}))


def mentions(text: str) -> dict[str, int]:
    """How often each category is named in a text (agreeing words are not mentions)."""
    return dict(_mentions(text))


@functools.lru_cache(maxsize=8192)
def _mentions(text: str) -> tuple[tuple[str, int], ...]:
    out: dict[str, int] = {}
    for m in PLACEHOLDER_RE.finditer(text):
        out[m.group(1)] = out.get(m.group(1), 0) + 1
    return tuple(out.items())


def choose_alternatives(text: str, rng: random.Random) -> str:
    """Resolve every `[a|b|c]` to one of its alternatives."""
    return ALT_RE.sub(lambda m: rng.choice(m.group(1).split("|")), text)


def split_sentences(text: str) -> list[str]:
    return [s for s in re.split(r"(?<=[.!?])\s+", text.strip()) if s]


_GLUED_START = re.compile(r"^(A|Ale|Tak|No|Já[.!?])(\s|$)")


def units(text: str) -> list[str]:
    """A template's sentences grouped so that nothing can be put between a question and its
    answer ("Kdo to umí? Já."), or before a sentence that continues the one before it
    ("A ...", "Ale ...", a one-word sentence)."""
    out: list[str] = []
    for sentence in split_sentences(text):
        if out and (out[-1].endswith("?") or _GLUED_START.match(sentence)
                    or len(sentence.split()) <= 1):
            out[-1] = f"{out[-1]} {sentence}"
        else:
            out.append(sentence)
    return out


def forms_used(text: str, spec: PersonaSpec) -> list[str]:
    out = set()
    for m in PLACEHOLDER_RE.finditer(text):
        name, form = m.group(1), m.group(2) or spec.placeholders[m.group(1)].forms[0]
        out.add(f"{name}.{form}")
    return sorted(out)


def fill(text: str, values: dict[str, dict[str, str]], spec: PersonaSpec,
         form_map: dict[str, dict[str, str]] | None = None,
         extra: dict[str, list[dict[str, str]]] | None = None) -> str:
    """Replace every `{cat.form}` with that form of the chosen value of `cat` and every
    `{cat@word}` with the word agreeing with it. `form_map` maps forms per category (the
    journalist's neutral forms); `extra` gives per-mention categories a value per mention."""
    form_map = form_map or {}
    queue = {k: list(v) for k, v in (extra or {}).items()}

    def sub(m: re.Match) -> str:
        name, form = m.group(1), m.group(2) or spec.placeholders[m.group(1)].forms[0]
        value = queue[name].pop(0) if queue.get(name) else values[name]
        neutral = form_map.get(name, {}).get(form)
        return (value.get(neutral) if neutral else None) or value[form]

    return fill_agreement(PLACEHOLDER_RE.sub(sub, text), values, spec)


def fill_agreement(text: str, values: dict[str, dict[str, str]], spec: PersonaSpec) -> str:
    """Replace every `{cat@word}` with the word agreeing with the chosen value of `cat`."""

    def agree(m: re.Match) -> str:
        ph = spec.placeholders[m.group(1)]
        return agree_form(ph.agree[m.group(2)], ph.value_class(values[m.group(1)])) or ""

    return AGREE_RE.sub(agree, text)


def rewrite(text: str, rules: list[Rewrite]) -> str:
    for rule in rules:
        f = finder(rule.pattern)
        if f.may_match(text):
            text = f.pattern.sub(rule.replacement, text)
    return text


def capitalize_sentences(text: str) -> str:
    return _SENTENCE_START.sub(lambda m: m.group(1) + m.group(2).upper(), text)


def join(*parts: str) -> str:
    return _SPACES.sub(" ", " ".join(p.strip() for p in parts if p and p.strip())).strip()


@dataclass(frozen=True)
class Slip:
    kind: str
    before: str
    after: str

    def to_dict(self) -> dict[str, str]:
        return {"kind": self.kind, "from": self.before, "to": self.after}


def applicable_slips(text: str, rules: list[SlipRule]) -> list[SlipRule]:
    return [r for r in rules if finder(r.pattern).search(text)]


def apply_slip(text: str, rules: list[SlipRule], rng: random.Random,
               language: str | None = None) -> tuple[str, Slip] | None:
    """Make one slip: a random applicable kind, a rule of it, one of its matches; None if none
    fits. Choosing the kind first keeps a spec with many rules of one kind from drowning the
    others. With `language`, a change that leaves a valid form of the original word (another
    form of the same lemma) is no slip and is not made."""
    candidates = applicable_slips(text, rules)
    while candidates:
        kinds = sorted({r.kind for r in candidates})
        kind = rng.choice(kinds)
        rule = rng.choice([r for r in candidates if r.kind == kind])
        matches = list(finder(rule.pattern).pattern.finditer(text))
        rng.shuffle(matches)
        for m in matches:
            after = m.expand(rule.replacement)
            if after != m.group(0) and (language is None
                                        or is_real_slip(m.group(0), after, language)):
                return text[:m.start()] + after + text[m.end():], Slip(rule.kind, m.group(0),
                                                                        after)
        candidates.remove(rule)
    return None


_WORDS = re.compile(r"[^\W\d_]+")


def warm_lemmas(language: str) -> None:
    """Load simplemma's dictionary of `language` in a daemon thread (~0.4 s, mostly without
    the GIL): the first slip or lemma check of an LLM run then does not stall the event loop
    that keeps the requests going. A failure is left for the real call to report."""
    import threading

    def load() -> None:
        try:
            simplemma = lemmas.load()
            simplemma.is_known("a", lang=language)
        except Exception:  # noqa: BLE001 - an unknown language: the real call says so
            pass

    if language in _WARMING:
        return
    thread = _WARMING[language] = threading.Thread(target=load, name="persona-lemmas",
                                                   daemon=True)
    thread.start()


_WARMING: dict = {}  # language -> the thread loading its dictionary (joined before use)


def _lemmas_ready(language: str) -> None:
    """Wait for a warm-up under way rather than load the same dictionary twice."""
    thread = _WARMING.get(language)
    if thread is not None:
        thread.join()


@functools.lru_cache(maxsize=4096)
def is_real_slip(before: str, after: str, language: str) -> bool:
    """False when every changed word is still a valid form of the word it replaced (its
    lemma is the same, by simplemma's dictionary): such a change reads as correct text."""
    simplemma = lemmas.load()

    _lemmas_ready(language)
    try:
        simplemma.is_known("a", lang=language)
    except (ValueError, KeyError):
        return True  # a language simplemma does not know: trust the rule
    old, new = _WORDS.findall(before.lower()), _WORDS.findall(after.lower())
    if len(old) != len(new):
        return True
    changed = [(a, b) for a, b in zip(old, new, strict=True) if a != b]
    if not changed:
        return False
    for a, b in changed:
        if not simplemma.is_known(b, lang=language):
            return True
        if simplemma.lemmatize(a, lang=language) != simplemma.lemmatize(b, lang=language):
            return True
    return False


def sign(text: str, signature: str) -> str:
    """Append the signature after a blank line; an empty signature (an unsigned persona) adds
    nothing."""
    return f"{text}\n\n{signature}" if signature else text


def is_signed(text: str, signature: str) -> bool:
    """Ends with the signature; every text counts as signed for an unsigned persona."""
    return text.rstrip().endswith(signature)


def unresolved(text: str) -> list[str]:
    return UNRESOLVED_RE.findall(text)
