"""The offline screen: word lists and patterns per category, shipped as data, no network.

A heuristic, not a verdict: it finds the vocabulary of threats, slurs, self-harm, sexual
content and crime (persona/data/moderation/<lang>.toml, the format is described in cs.toml),
not intent, irony or context. Czech words are matched by their form and by their lemma
(simplemma), so one entry covers its inflections (zabít: zabiju, zabil, zabíjel …); an entry
ending in `*` matches a prefix of the form or lemma, which covers what the lemmatizer misses
(podřízn*: podříznu); one starting with `=` matches that form only, not its lemma (=shoot:
not "shooting"). Every verdict names the entries that matched (`evidence`).

Combination rules carry most of the generalisation: a list names word *sets* (`[sets]`: harm
verbs, weapons, persons, group nouns, dehumanising predicates …) and a category lists rules
such as `"harm + person"`: when every set of a rule matches in one sentence, within
`combine_window` words, the category gets a strong hit named by the words that met
(`harm:utopit + person:ho`). A word that is harmless alone (utopit: to drown money; shoot: the
shooting season) counts only beside a target, so political anger and idioms stay clean while
paraphrases of a threat (utopíme ho, hold her head under the water) are found.
"""

from __future__ import annotations

import bisect
import functools
import re
import tomllib
from dataclasses import dataclass
from importlib import resources

from persona import lemmas
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
    words: tuple[tuple[str, str], ...]  # (word, how: "word" form or lemma, "prefix", "form")
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
        spots: dict[str, dict[str, tuple[str, int]]] = {}  # where an entry matched
        lower = text.lower()
        czech = bool(_CZECH_LETTERS.search(lower))
        sentence_of = _sentence_ids(lower)
        for wl in self.lists:
            lemmas = wl.language == "cs" or not czech
            tokens = list(_WORD.finditer(lower))
            forms = [(m.group(0), _lemma(m.group(0), wl.language) if lemmas else m.group(0))
                     for m in tokens]
            # Entries and combinations match within one sentence: the words of "rozbít hlav*"
            # in "… to zase rozbili. No hlavně …" are not one entry.
            sentences = [sentence_of(m.start()) for m in tokens]
            for a, b in _runs(sentences):
                for entry, at in wl.match(forms[a:b]):
                    hits.setdefault(entry.category, {})[entry.text] = entry.weight
                    spots.setdefault(entry.category, {})[entry.text] = (wl.language, a + at)
                if wl.rules:
                    for category, text in wl.combinations(forms[a:b], sentences[a:b]):
                        hits.setdefault(category, {})[text] = STRONG
            for category, pattern in wl.patterns:
                for m in pattern.finditer(lower):
                    hits.setdefault(category, {})[m.group(0)] = STRONG
        scores = {}
        for category, entries in hits.items():
            # One word counts once: two entries that match the same word (krad*, krást:
            # "kradou") are one piece of evidence, weighted by the stronger of them.
            by_word: dict[object, float] = {}
            for text, w in entries.items():
                key = spots.get(category, {}).get(text, text)
                by_word[key] = max(w, by_word.get(key, 0.0))
            miss = 1.0
            for w in by_word.values():
                miss *= 1 - w
            scores[category] = round(1 - miss, 4)
        flagged = [c for c, s in scores.items() if s >= DEFAULT_THRESHOLD]
        return Verdict(scores, flagged, {c: sorted(e) for c, e in hits.items()})


class WordList:
    def __init__(self, language: str, entries: list[Entry], patterns, max_gap: int,
                 free_order: bool = False, sets: WordList | None = None,
                 rules: list[tuple[str, tuple[str, ...]]] = (), window: int = 8):
        self.language = language
        self.sets = sets  # a WordList whose entries' category is the name of their set
        self.rules = list(rules)  # (category, set names): all of them in one sentence
        self.window = window  # the words of a combination at most this far apart
        self.max_gap = max_gap  # other words allowed between the words of a multi-word entry
        self.free_order = free_order  # the words of an entry in any order (Czech)
        self.patterns = patterns
        self.exact: dict[str, list[Entry]] = {}  # first word (exact) -> entries
        self.prefix: dict[str, list[Entry]] = {}  # first word (prefix) -> entries
        self.form: dict[str, list[Entry]] = {}  # first word (this form only) -> entries
        for e in entries:
            word, how = e.words[0]
            {"word": self.exact, "prefix": self.prefix, "form": self.form}[how].setdefault(
                word, []).append(e)
        self.prefix_lengths = sorted({len(w) for w in self.prefix})

    def match(self, forms: list[tuple[str, str]]) -> list[tuple[Entry, int]]:
        """Every entry found, with the position of the word it starts at."""
        found = []
        for i, (form, lemma) in enumerate(forms):
            for e in self._starting(form, lemma):
                if len(e.words) == 1:
                    found.append((e, i))
                elif self.free_order:
                    if _rest_anywhere(e.words[1:], forms, i, self.max_gap):
                        found.append((e, i))
                elif _rest_matches(e.words[1:], forms, i + 1, self.max_gap):
                    found.append((e, i))
        return found

    def combinations(self, forms, sentences: list[int]) -> list[tuple[str, str]]:
        """(category, evidence) for every rule whose sets all match in one sentence."""
        by_set: dict[str, list[tuple[int, str]]] = {}
        for e, i in self.sets.match(forms):
            by_set.setdefault(e.category, []).append((i, e.text))
        out = []
        for category, names in self.rules:
            if any(n not in by_set for n in names):
                continue
            found = _combine([by_set[n] for n in names], sentences, self.window)
            if found:
                pairs = zip(names, found, strict=True)
                out.append((category, " + ".join(f"{n}:{t}" for n, t in pairs)))
        return out

    def _starting(self, form: str, lemma: str) -> list[Entry]:
        out = list(self.exact.get(form, ())) + self.form.get(form, [])
        if lemma != form:
            out += self.exact.get(lemma, ())
        for n in self.prefix_lengths:
            for w in {form[:n], lemma[:n]}:
                if len(w) == n:
                    out += self.prefix.get(w, ())
        return out


def _rest_matches(words, forms, start: int, max_gap: int) -> bool:
    pos = start
    for word, how in words:
        for j in range(pos, min(pos + max_gap + 1, len(forms))):
            if _word_matches(word, how, *forms[j]):
                pos = j + 1
                break
        else:
            return False
    return True


def _rest_anywhere(words, forms, at: int, max_gap: int) -> bool:
    """The other words of an entry, each at its own position near `at`, in any order."""
    span = len(words) + max_gap
    free = [j for j in range(max(0, at - span), min(len(forms), at + span + 1)) if j != at]
    for word, how in words:
        j = next((j for j in free if _word_matches(word, how, *forms[j])), None)
        if j is None:
            return False
        free.remove(j)
    return True


def _combine(options, sentences, window: int, chosen=()):
    """One word of each set, different words at different positions of one sentence, within
    `window` (a rule naming one set twice needs two different entries of it)."""
    if not options:
        return [t for _, t in chosen]
    for i, text in options[0]:
        if any(i == j or text == t for j, t in chosen):
            continue
        if chosen:
            if sentences[i] != sentences[chosen[0][0]]:
                continue
            spots = [j for j, _ in chosen] + [i]
            if max(spots) - min(spots) > window:
                continue
        found = _combine(options[1:], sentences, window, chosen + ((i, text),))
        if found:
            return found
    return None


_SENTENCE_END = re.compile(r"[.!?;\n]+")


def _runs(ids: list[int]) -> list[tuple[int, int]]:
    """(start, end) of every run of equal sentence numbers."""
    runs, start = [], 0
    for i in range(1, len(ids) + 1):
        if i == len(ids) or ids[i] != ids[start]:
            runs.append((start, i))
            start = i
    return runs


def _sentence_ids(text: str):
    """A function from a character offset to the number of its sentence."""
    ends = [m.end() for m in _SENTENCE_END.finditer(text)]
    return lambda offset: bisect.bisect_right(ends, offset)


def _word_matches(word: str, how: str, form: str, lemma: str) -> bool:
    if how == "form":
        return word == form
    if how == "prefix":
        return form.startswith(word) or lemma.startswith(word)
    return word in (form, lemma)


@functools.lru_cache(maxsize=200_000)
def _lemma(token: str, language: str) -> str:
    simplemma = lemmas.load()
    try:
        return simplemma.lemmatize(token, lang=language).lower()
    except ValueError:  # a token simplemma cannot handle: the form is its own lemma
        return token


@functools.cache
def _load(language: str) -> WordList:
    text = resources.files("persona").joinpath(f"data/moderation/{language}.toml").read_text(
        "utf-8")
    data = tomllib.loads(text)
    entries, patterns, rules = [], [], []
    max_gap, free_order = int(data.get("max_gap", 0)), bool(data.get("free_order", False))
    stems = _Stems(data.get("verb_endings", []), int(data.get("min_stem", 5)))
    set_entries = [_entry(name, raw, 0.0, stems) for name, words in data.get("sets", {}).items()
                   for raw in words]
    for category, table in data.items():
        if not isinstance(table, dict) or category == "sets":
            continue
        for tier, weight in (("strong", STRONG), ("weak", WEAK)):
            entries += [_entry(category, raw, weight, stems) for raw in table.get(tier, [])]
        patterns += [(category, re.compile(p)) for p in table.get("patterns", [])]
        for rule in table.get("combine", []):
            names = tuple(n.strip() for n in rule.split("+"))
            unknown = [n for n in names if n not in data.get("sets", {})]
            if unknown:
                raise ValueError(f"{language}.toml: [{category}] combine names no set {unknown}")
            rules.append((category, names))
    sets = WordList(language, set_entries, [], max_gap, free_order)
    return WordList(language, entries, patterns, max_gap, free_order, sets, rules,
                    int(data.get("combine_window", 8)))


@dataclass(frozen=True)
class _Stems:
    """Infinitive endings (cs: -ovat, -nout, -at, -it …): an entry word that ends in one and
    keeps `min_length` letters without it matches as a prefix of its stem, so every form the
    lemmatizer does not know is found too (pořezat: pořezala, pořežu is not)."""

    endings: list[str]
    min_length: int

    def __call__(self, word: str) -> tuple[str, str]:
        for ending in sorted(self.endings, key=len, reverse=True):
            if word.endswith(ending) and len(word) - len(ending) >= self.min_length:
                return word[: -len(ending)], "prefix"
        return word, "word"


def _entry(category: str, raw: str, weight: float, stems: _Stems | None = None) -> Entry:
    words = tuple((w[1:], "form") if w.startswith("=") else
                  (w[:-1], "prefix") if w.endswith("*") else
                  stems(w) if stems else (w, "word")
                  for w in raw.lower().split())
    return Entry(category, raw, words, weight)


def list_entries(language: str) -> list[str]:
    """Every entry and pattern of one language's lists (for tests and docs)."""
    data = tomllib.loads(resources.files("persona").joinpath(
        f"data/moderation/{language}.toml").read_text("utf-8"))
    return [e for t in data.values() if isinstance(t, dict)
            for k in ("strong", "weak", "patterns") for e in t.get(k, [])] + [
        e for words in data.get("sets", {}).values() for e in words]
