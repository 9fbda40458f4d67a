"""The offline screen: word lists and patterns per category, shipped as data, no network.

A heuristic, not a verdict: it finds the vocabulary of threats, slurs, self-harm, sexual
content and crime (persona/data/moderation/<lang>.toml, the format is described in cs.toml),
not intent, irony or context. Czech words are matched by their form and by their lemma
(simplemma), so one entry covers its inflections (zabít: zabiju, zabil, zabíjel …); an entry
ending in `*` matches a prefix of the form or lemma, which covers what the lemmatizer misses
(podřízn*: podříznu). Every verdict names the entries that matched (`evidence`).
"""

from __future__ import annotations

import functools
import re
import tomllib
from dataclasses import dataclass
from importlib import resources

from persona.moderators.base import Verdict

STRONG, WEAK = 0.9, 0.4  # one strong entry flags; two weak entries of a category do (0.64)
DEFAULT_THRESHOLD = 0.5
LANGUAGES = ("cs", "en")
_WORD = re.compile(r"\w+(?:['’]\w+)?")
# Letters only Czech (of our languages) uses: in a Czech text, English lemmas are not looked up
# ("stole" -> "steal" is a theft in English and a table in Czech), only English word forms.
_CZECH_LETTERS = re.compile("[ěščřžůďťň]")


@dataclass(frozen=True)
class Entry:
    category: str
    text: str  # as written in the list, shown as evidence
    words: tuple[tuple[str, bool], ...]  # (word, is_prefix)
    weight: float


class OfflineScreen:
    name = "offline"
    model = "wordlists-" + "+".join(LANGUAGES)
    heuristic = True
    threshold = DEFAULT_THRESHOLD

    def __init__(self, languages: tuple[str, ...] = LANGUAGES):
        self.lists = [_load(lang) for lang in languages]

    def check(self, texts: list[str], on_progress=None) -> list[Verdict]:
        out = []
        for i, text in enumerate(texts):
            out.append(self.check_one(text))
            if on_progress and i % 200 == 0:
                on_progress(i, len(texts))
        if on_progress:
            on_progress(len(texts), len(texts))
        return out

    def check_one(self, text: str) -> Verdict:
        hits: dict[str, dict[str, float]] = {}
        lower = text.lower()
        czech = bool(_CZECH_LETTERS.search(lower))
        for wl in self.lists:
            lemmas = wl.language == "cs" or not czech
            forms = [(t, _lemma(t, wl.language) if lemmas else t) for t in _WORD.findall(lower)]
            for entry in wl.match(forms):
                hits.setdefault(entry.category, {})[entry.text] = entry.weight
            for category, pattern in wl.patterns:
                for m in pattern.finditer(lower):
                    hits.setdefault(category, {})[m.group(0)] = STRONG
        scores = {}
        for category, entries in hits.items():
            miss = 1.0
            for w in entries.values():
                miss *= 1 - w
            scores[category] = round(1 - miss, 4)
        flagged = [c for c, s in scores.items() if s >= DEFAULT_THRESHOLD]
        return Verdict(scores, flagged, {c: sorted(e) for c, e in hits.items()})


class WordList:
    def __init__(self, language: str, entries: list[Entry], patterns, max_gap: int,
                 free_order: bool = False):
        self.language = language
        self.max_gap = max_gap  # other words allowed between the words of a multi-word entry
        self.free_order = free_order  # the words of an entry in any order (Czech)
        self.patterns = patterns
        self.exact: dict[str, list[Entry]] = {}  # first word (exact) -> entries
        self.prefix: dict[str, list[Entry]] = {}  # first word (prefix) -> entries
        for e in entries:
            word, is_prefix = e.words[0]
            (self.prefix if is_prefix else self.exact).setdefault(word, []).append(e)
        self.prefix_lengths = sorted({len(w) for w in self.prefix})

    def match(self, forms: list[tuple[str, str]]) -> list[Entry]:
        found = []
        for i, (form, lemma) in enumerate(forms):
            for e in self._starting(form, lemma):
                if len(e.words) == 1:
                    found.append(e)
                elif self.free_order:
                    if _rest_anywhere(e.words[1:], forms, i, self.max_gap):
                        found.append(e)
                elif _rest_matches(e.words[1:], forms, i + 1, self.max_gap):
                    found.append(e)
        return found

    def _starting(self, form: str, lemma: str) -> list[Entry]:
        out = list(self.exact.get(form, ()))
        if lemma != form:
            out += self.exact.get(lemma, ())
        for n in self.prefix_lengths:
            for w in {form[:n], lemma[:n]}:
                if len(w) == n:
                    out += self.prefix.get(w, ())
        return out


def _rest_matches(words, forms, start: int, max_gap: int) -> bool:
    pos = start
    for word, is_prefix in words:
        for j in range(pos, min(pos + max_gap + 1, len(forms))):
            if _word_matches(word, is_prefix, *forms[j]):
                pos = j + 1
                break
        else:
            return False
    return True


def _rest_anywhere(words, forms, at: int, max_gap: int) -> bool:
    """The other words of an entry, each at its own position near `at`, in any order."""
    span = len(words) + max_gap
    free = [j for j in range(max(0, at - span), min(len(forms), at + span + 1)) if j != at]
    for word, is_prefix in words:
        j = next((j for j in free if _word_matches(word, is_prefix, *forms[j])), None)
        if j is None:
            return False
        free.remove(j)
    return True


def _word_matches(word: str, is_prefix: bool, form: str, lemma: str) -> bool:
    if is_prefix:
        return form.startswith(word) or lemma.startswith(word)
    return word in (form, lemma)


@functools.lru_cache(maxsize=200_000)
def _lemma(token: str, language: str) -> str:
    import simplemma

    try:
        return simplemma.lemmatize(token, lang=language).lower()
    except ValueError:  # a token simplemma cannot handle: the form is its own lemma
        return token


@functools.cache
def _load(language: str) -> WordList:
    text = resources.files("persona").joinpath(f"data/moderation/{language}.toml").read_text(
        "utf-8")
    data = tomllib.loads(text)
    entries, patterns = [], []
    for category, table in data.items():
        if not isinstance(table, dict):
            continue
        for tier, weight in (("strong", STRONG), ("weak", WEAK)):
            for raw in table.get(tier, []):
                words = tuple((w.rstrip("*"), w.endswith("*")) for w in raw.lower().split())
                entries.append(Entry(category, raw, words, weight))
        patterns += [(category, re.compile(p)) for p in table.get("patterns", [])]
    return WordList(language, entries, patterns, int(data.get("max_gap", 0)),
                    bool(data.get("free_order", False)))


def list_entries(language: str) -> list[str]:
    """Every entry and pattern of one language's lists (for tests and docs)."""
    data = tomllib.loads(resources.files("persona").joinpath(
        f"data/moderation/{language}.toml").read_text("utf-8"))
    return [e for t in data.values() if isinstance(t, dict)
            for k in ("strong", "weak", "patterns") for e in t.get(k, [])]
