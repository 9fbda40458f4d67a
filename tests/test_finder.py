"""persona/finder.py: the literal first look must never hide a match its pattern has."""

from __future__ import annotations

import random
import re
import sys

import pytest

from persona.checks.answer import _data
from persona.finder import SAFE_FOLD, finder, fold
from persona.spec import load_spec


def test_every_safe_character_folds_like_re_ignorecase_matches_it():
    """For each character a case-insensitive piece may hold, every code point that
    re.IGNORECASE matches with it folds to it (so `piece in fold(text)` holds wherever the
    pattern matches)."""
    every = "".join(chr(c) for c in range(sys.maxunicode + 1) if not 0xD800 <= c < 0xE000)
    for ch in SAFE_FOLD:
        for m in re.finditer(re.escape(ch), every, re.IGNORECASE):
            assert fold(m.group()) == fold(ch), (ch, m.group(), hex(ord(m.group())))


@pytest.mark.parametrize("pattern, flags, expected", [
    (r"\bteď\b", 0, (("teď", False),)),
    (r"(?i)omlouvám se,? ale", 0, (("omlouvám se", True),)),
    ("Abc|(?i:DEF)", 0, (("Abc", False), ("def", True))),
    (r"\b(?:tento|takový) (?:požadavek|obsah)", re.I,
     (("požadavek", True), ("obsah", True))),
    (r"\b(\w{4,})ů\b", 0, None),  # no literal of two characters: no first look
    (r"x|\d+", 0, None),  # one branch without a piece: none for the pattern
    (r"ab(?-i:DEFG)", re.I, (("DEFG", False),)),  # a case-sensitive part keeps its case
])
def test_pieces(pattern, flags, expected):
    assert finder(pattern, flags).needles == expected


def _mutations(rng: random.Random, text: str) -> str:
    """The text with case changed, odd look-alikes put in (ı, İ, ſ, K), letters dropped."""
    out = []
    for ch in text:
        r = rng.random()
        if r < 0.15:
            ch = ch.swapcase()
        elif r < 0.18 and ch in "iI":
            ch = rng.choice("ıİ")
        elif r < 0.20 and ch in "sS":
            ch = "ſ"
        elif r < 0.21 and ch in "kK":
            ch = "\u212a"
        elif r < 0.22:
            continue
        out.append(ch)
    return "".join(out)


def test_the_first_look_agrees_with_the_plain_search():
    """Over the built-in patterns (refusals, clashes, answer endings, slip rules) and
    texts made to match them and nearly match them (case flipped, ı/İ/ſ/K put in,
    letters dropped): the search with the first look finds exactly what re's does."""
    spec = load_spec("babis")
    refusals = _data()["refusals"]
    patterns = [("|".join(f"(?:{p})" for p in refusals["cs"] + refusals["any"]), re.I)]
    patterns += [(p, re.I) for p in spec.grammar.last_only]
    patterns += [(p, 0) for pair in spec.grammar.clashes for p in pair]
    patterns += [(r.pattern, 0) for r in spec.slips]
    seeds = ["Omlouvám se, ale to nemohu napsat.", "I'm sorry, but I can't help with that.",
             "Jako AI asistent nemohu vyhovět.", "To je věc na práci, nechte toho.",
             "Na shledanou, musím jít. Konec.", "Tento požadavek porušuje pravidla."]
    seeds += [t for _, t in spec.fragments()][:400]
    rng = random.Random(5)
    texts = seeds + [_mutations(rng, t) for t in seeds for _ in range(3)]
    checked = found = 0
    for pattern, flags in patterns:
        f = finder(pattern, flags)
        plain = re.compile(pattern, flags)
        for text in texts:
            want = plain.search(text)
            got = f.search(text)
            assert (got is None) == (want is None), (pattern, text)
            checked += 1
            found += want is not None
    assert found > 100 and checked > 50_000
