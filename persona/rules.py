"""Validation rules every generated item must pass, whichever provider wrote it (pure)."""

from __future__ import annotations

import re

from persona.spec import PLACEHOLDER_RE, PersonaSpec, check_fragment
from persona.text import is_signed, split_sentences, unresolved

_WORD = re.compile(r"[^\W\d_]+")
_LANG_WORDS = {
    "cs": {"a", "je", "to", "že", "se", "na", "já", "v", "jsem", "jsme", "ne", "o", "s", "tak",
           "jak", "co", "pane", "vás", "vám", "vy", "proč", "by", "podle", "pro", "i", "z",
           "do", "ale", "když", "mi", "mě", "mně", "my", "oni", "ten", "ta", "tady", "už",
           "jsou", "není", "jste", "byl", "kdo", "jen", "jenom", "taky", "nebo", "za", "byste",
           "po", "při", "od", "k", "u", "ve", "si"},
    "en": {"the", "a", "to", "and", "of", "is", "i", "it", "that", "we", "you", "in", "not"},
}
_CS_LETTERS = set("áčďéěíňóřšťúůýž")


def language_ok(text: str, language: str) -> bool:
    """A cheap sanity check that the text is in the persona's language (not a classifier)."""
    words = [w.lower() for w in _WORD.findall(text)]
    if not words:
        return False
    common = _LANG_WORDS.get(language)
    if common is None:
        return True
    hits = sum(w in common for w in words)
    if language == "cs":
        return hits >= 1 and any(c in _CS_LETTERS for c in text.lower())
    if language == "en":
        non_ascii = sum(not c.isascii() for c in text if c.isalpha())
        return hits >= 1 and non_ascii <= 0.05 * sum(c.isalpha() for c in text)
    return hits >= 1


def check_template(text: str, spec: PersonaSpec) -> list[str]:
    problems = []
    try:
        check_fragment(text, spec.placeholders, "template")
    except ValueError as e:
        problems.append(str(e).removeprefix("template: "))
    if not PLACEHOLDER_RE.search(text):
        problems.append("template has no placeholder")
    return problems


def check_answer(text: str, spec: PersonaSpec, style: str) -> list[str]:
    problems = []
    if style not in spec.styles:
        problems.append(f"unknown style label {style!r}")
    left = unresolved(text)
    if left:
        problems.append(f"unresolved placeholder {left[0]!r}")
    if not is_signed(text, spec.persona.signature):
        problems.append(f"not signed {spec.persona.signature!r}")
    if not language_ok(text, spec.persona.language):
        problems.append(f"does not read as language {spec.persona.language!r}")
    return problems


def misplaced_endings(text: str, spec: PersonaSpec) -> list[str]:
    """Sentences of an answer that may only end it (grammar.last_only) but stand before
    another sentence, and any second one; the signature is not a sentence of the answer."""
    body = text.rstrip()
    sig = spec.persona.signature
    if body.endswith(sig):
        body = body[: -len(sig)]
    sentences = split_sentences(body)
    hits = [i for i, s in enumerate(sentences) if spec.grammar.ending(s) is not None]
    out = [f"{sentences[i]!r} ends the answer but more follows" for i in hits
           if i != len(sentences) - 1]
    if len(hits) > 1 and not out:
        out.append(f"{len(hits)} sentences end the answer")
    return out


def check_question(text: str, spec: PersonaSpec) -> list[str]:
    problems = []
    if not text.strip():
        return ["empty question"]
    left = unresolved(text)
    if left:
        problems.append(f"unresolved placeholder {left[0]!r}")
    if "?" not in text:
        problems.append("not a question (no '?')")
    low = text.lower()
    label = next((lab for lab in spec.journalist.labels if lab.lower() in low), None)
    if label is not None:
        problems.append(f"the journalist uses the persona's label {label!r}")
    if not language_ok(text, spec.persona.language):
        problems.append(f"does not read as language {spec.persona.language!r}")
    return problems
