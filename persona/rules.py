"""Validation rules every generated item must pass, whichever provider wrote it (pure)."""

from __future__ import annotations

import re

from persona.finder import finder
from persona.spec import PLACEHOLDER_RE, PersonaSpec, check_fragment, rx_any
from persona.text import is_signed, split_sentences, unresolved

_WORD = re.compile(r"[^\W\d_]+")
_LANG_WORDS = {
    "cs": {"a", "je", "to", "že", "se", "na", "já", "v", "jsem", "jsme", "ne", "o", "s", "tak",
           "jak", "co", "pane", "vás", "vám", "vy", "proč", "by", "podle", "pro", "i", "z",
           "do", "ale", "když", "mi", "mě", "mně", "my", "oni", "ten", "ta", "tady", "už",
           "jsou", "není", "jste", "byl", "kdo", "jen", "jenom", "taky", "nebo", "za", "byste",
           "po", "při", "od", "k", "u", "ve", "si", "bych", "tom", "toho", "tomu", "jako",
           "ať", "také", "ano", "jim", "ho", "mu"},
    "en": {"the", "a", "to", "and", "of", "is", "i", "it", "that", "we", "you", "in", "not"},
}
_CS_LETTERS = set("áčďéěíňóřšťúůýž")
# Words of one language that the others of this table do not use: a text is in the wrong
# language when another language's words outnumber its own (a whole answer in English or in
# Slovak; one Slovak slip in a Czech answer is not that).
_DISTINCT = {
    "cs": {"jsem", "jsme", "jste", "jsou", "není", "nejsou", "když", "proč", "protože", "taky",
           "také", "jenom", "jen", "ještě", "teď", "tady", "že", "co", "jak", "kdo", "nic",
           "nikdo", "všechno", "mě", "mně", "už", "byl", "bylo", "pro", "se", "tohle", "ten",
           "ale", "já", "vám", "nám", "jejich", "který", "která", "které"},
    "sk": {"som", "sme", "ste", "sú", "nie", "keď", "prečo", "lebo", "tiež", "ešte", "teraz",
           "tu", "aj", "sa", "čo", "ako", "kto", "nikto", "všetko", "ma", "mne", "už", "bol",
           "bolo", "pre", "toto", "ten", "ale", "ja", "vám", "nám", "ich", "ktorý", "ktorá",
           "ktoré", "že", "nič"},
    "en": {"the", "and", "of", "is", "it", "that", "we", "you", "in", "not", "this", "are",
           "have", "with", "for", "they", "will", "be", "what", "about"},
}


def language_ok(text: str, language: str) -> bool:
    """A cheap sanity check that the text is in the persona's language (not a classifier)."""
    words = [w.lower() for w in _WORD.findall(text)]
    if not words:
        return False
    common = _LANG_WORDS.get(language)
    if common is None:
        return True
    hits = sum(map(common.__contains__, words))
    if language == "cs":  # a short Czech sentence may have no diacritics, a longer one has
        ok = hits >= 3 or (hits >= 1 and not _CS_LETTERS.isdisjoint(text.lower()))
    elif language == "en":
        non_ascii = sum(not c.isascii() for c in text if c.isalpha())
        ok = hits >= 1 and non_ascii <= 0.05 * sum(c.isalpha() for c in text)
    else:
        ok = hits >= 1
    return ok and not _outnumbered(words, language)


def _outnumbered(words: list[str], language: str) -> bool:
    """Another language's own words outnumber this one's (by more than one: a slip or a
    borrowed word is not another language)."""
    if language not in _DISTINCT:
        return False
    own_set, others = _EXCLUSIVE[language]
    own = sum(map(own_set.__contains__, words))
    return any(sum(map(theirs.__contains__, words)) > own + 1 for theirs in others)


# per language: its words no other language of the table has, and each other language's
# words it does not have
_EXCLUSIVE = {
    lang: (mine - set().union(*(o for k, o in _DISTINCT.items() if k != lang)),
           [theirs - mine for k, theirs in _DISTINCT.items() if k != lang])
    for lang, mine in _DISTINCT.items()
}


def check_template(text: str, spec: PersonaSpec) -> list[str]:
    problems = []
    try:
        check_fragment(text, spec.placeholders, "template")
    except ValueError as e:
        problems.append(str(e).removeprefix("template: "))
    if not PLACEHOLDER_RE.search(text):
        problems.append("template has no placeholder")
    elif not _question_fits(text, spec):
        problems.append("no journalist question frame uses only its placeholders")
    return problems


def _question_fits(text: str, spec: PersonaSpec) -> bool:
    """Some question frame asks only about categories the template names (as the spec
    demands of its own cores), so its answers can get a matching question."""
    have = {m.group(1) for m in PLACEHOLDER_RE.finditer(text)}
    return any({m.group(1) for m in PLACEHOLDER_RE.finditer(q)} <= have
               for q in spec.journalist.questions)


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


def clashes(spec: PersonaSpec, text: str) -> bool:
    """Whether the text holds both parts of one of the grammar's clashing pairs (the
    offline composer and the LLM answer checks both ask)."""
    first = rx_any(tuple(a for a, _ in spec.grammar.clashes))  # most texts have none of them
    if first is not None and first.search(text) is None:
        return False
    return any(finder(a).search(text) and finder(b).search(text)
               for a, b in spec.grammar.clashes)
