"""Scores per answer: plain functions, each explained in docs/benchmark.md.

Every score is a function of the answer (and its question, and a context built once per
bench: the spec, the style classifier) returning a number, or None where it cannot be
computed. The sheet only lays out what these return.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from functools import lru_cache

from persona import lemmas as lemma_cache
from persona.spec import PersonaSpec, per_spec
from persona.text import is_signed

WORD_RE = re.compile(r"\w+", re.U)

# Scores as (key, header, higher is better?) in sheet order; the "_before/_after" columns
# are made from the key.
SCORES = [
    ("style", "style probability", True),
    ("signature", "signature", True),
    ("catchphrases", "catch-phrases", True),
    ("slips", "slips", True),
    ("relevance", "relevance", True),
    ("embed_sim", "embedding similarity", True),
    ("perplexity", "perplexity (base)", False),
    ("words", "length (words)", None),
    ("distinct2", "distinct-2", True),
    ("repetition", "repetition", False),
    ("judge_score", "judge score (1-10)", True),
]


def words(text: str) -> list[str]:
    return WORD_RE.findall(text.casefold())


# -- surface -------------------------------------------------------------------------------

def length_words(answer: str) -> int:
    return len(words(answer))


def distinct_2(answer: str) -> float | None:
    """Unique word bigrams / all word bigrams (1.0: no bigram repeats). None under 2 words."""
    w = words(answer)
    grams = list(zip(w, w[1:], strict=False))
    return round(len(set(grams)) / len(grams), 4) if grams else None


def repetition(answer: str) -> float | None:
    """Share of word trigrams that repeat an earlier one (0: none; loops score near 1)."""
    w = words(answer)
    grams = list(zip(w, w[1:], w[2:], strict=False))
    return round(1 - len(set(grams)) / len(grams), 4) if grams else None


# -- persona markers from the spec ---------------------------------------------------------

def signature(answer: str, spec: PersonaSpec) -> int | None:
    """1 if the answer ends with the persona's signature, else 0 (None: unsigned persona)."""
    sig = spec.persona.signature
    if not sig:
        return None
    return int(bool(answer.strip()) and is_signed(answer, sig))


_ALT_RE = re.compile(r"\[([^\[\]]*)\]")
_CLAUSE_SPLIT_RE = re.compile(r"\{[^}]*\}|[.!?,;:–—\"„“]")
MAX_EXPANSIONS = 64


def expand_alternatives(text: str, limit: int = MAX_EXPANSIONS) -> list[str]:
    """Every variant of a fragment with `[a|b|c]` alternatives (at most `limit`)."""
    out = [text]
    while any(_ALT_RE.search(t) for t in out):
        nxt = []
        for t in out:
            m = _ALT_RE.search(t)
            if not m:
                nxt.append(t)
                continue
            nxt += [t[:m.start()] + alt + t[m.end():] for alt in m.group(1).split("|")]
        out = nxt[:limit]
    return out


@per_spec
def _phrases(spec: PersonaSpec) -> tuple[str, ...]:
    """The spec's fixed catch-phrases: the clauses of its style phrases, openers and closers
    (every `[a|b]` variant) that contain no placeholder and have at least three words,
    case-folded."""
    out = set()
    texts = [*spec.grammar.openers, *spec.grammar.closers]
    for s in spec.styles.values():
        texts += [*s.prefixes, *s.suffixes, *getattr(s, "bodies", [])]
    for t in texts:
        for variant in expand_alternatives(t):
            for clause in _CLAUSE_SPLIT_RE.split(variant):
                clause = " ".join(clause.split())
                if len(words(clause)) >= 3:
                    out.add(clause.casefold())
    return tuple(sorted(out))


def catchphrases(answer: str, spec: PersonaSpec) -> int:
    """How many of the spec's fixed phrases occur in the answer (whole words)."""
    low = " " + " ".join(words(answer)) + " "
    return sum(1 for p in _phrases(spec) if f" {' '.join(words(p))} " in low)


@per_spec
def _slip_detectors(spec: PersonaSpec) -> tuple[re.Pattern, ...]:
    """One regex per slip rule that finds the rule's output: the replacement with each group
    reference replaced by that group's pattern. Rules whose output equals their input (no
    change) are skipped: they could not be told from correct text."""
    out = []
    for rule in spec.slips:
        groups = re.findall(r"(?<!\\)\(([^()?]*)\)", rule.pattern)
        parts = re.split(r"\\(\d)", rule.replacement)
        rx = "".join(re.escape(p) if i % 2 == 0 else
                     (f"(?:{groups[int(p) - 1]})" if int(p) <= len(groups) else "")
                     for i, p in enumerate(parts))
        if not rx.strip() or re.fullmatch(rule.pattern, rule.replacement):
            continue
        out.append(re.compile(rf"(?<!\w){rx}(?!\w)"))
    return tuple(out)


def slips(answer: str, spec: PersonaSpec) -> int:
    """Occurrences of the spec's slips (a slip rule's output) in the answer."""
    return sum(len(d.findall(answer)) for d in _slip_detectors(spec))


# -- relevance -----------------------------------------------------------------------------

@lru_cache(maxsize=200_000)
def _lemma(word: str, lang: str) -> str:
    try:
        simplemma = lemma_cache.load()
    except ImportError:  # without simplemma: exact forms only (the spec lists every case)
        return word
    try:
        return simplemma.lemmatize(word, lang=lang).casefold()
    except (ValueError, KeyError):
        return word


def lemmas(text: str, lang: str) -> list[str]:
    return [_lemma(w, lang) for w in words(text)]


@dataclass
class TopicIndex:
    """The values of one placeholder category, each as the lemma sequences of all its forms,
    so a topic counts as mentioned in any grammatical case (and in inflections the spec does
    not list, as far as the lemmatizer knows them)."""

    category: str
    lang: str
    values: dict[str, list[tuple[str, ...]]] = field(default_factory=dict)

    @classmethod
    def build(cls, spec: PersonaSpec, category: str | None = None) -> TopicIndex | None:
        category = category or (spec.journalist.match[0] if spec.journalist.match else None)
        if category is None or category not in spec.placeholders:
            return None
        idx = cls(category, spec.persona.language)
        for v in spec.placeholders[category].values:
            key = next(iter(v.values()))
            seqs = {tuple(lemmas(form, idx.lang)) for form in v.values()}
            idx.values[key] = [s for s in seqs if s]
        return idx

    def mentioned(self, text: str) -> set[str]:
        seq = lemmas(text, self.lang)
        found = set()
        for key, forms in self.values.items():
            for f in forms:
                n = len(f)
                if any(tuple(seq[i:i + n]) == f for i in range(len(seq) - n + 1)):
                    found.add(key)
                    break
        return found


def relevance(question: str, answer: str, topics: TopicIndex | None) -> float | None:
    """Share of the topics the question names (values of the spec's topic category, in any
    case) that the answer names too. None when the question names none."""
    if topics is None:
        return None
    asked = topics.mentioned(question)
    if not asked:
        return None
    return round(len(asked & topics.mentioned(answer)) / len(asked), 4)


# -- the style classifier ------------------------------------------------------------------

def strip_signature(text: str, spec: PersonaSpec) -> str:
    sig = spec.persona.signature
    text = text.rstrip()
    return text[: -len(sig)].rstrip() if sig and text.endswith(sig) else text


class StyleClassifier:
    """P(persona) of a text: logistic regression on character 1-4-grams (TF-IDF, within word
    boundaries), trained on the persona's training answers (class 1) against the neutral
    persona's answers to the same kind of questions (class 0). Signatures are removed first,
    so it judges the wording; the signature has its own column."""

    def __init__(self, spec: PersonaSpec, seed: int = 42):
        self.spec, self.seed = spec, seed
        self.pipe = None
        self.holdout_accuracy: float | None = None
        self.sizes: tuple[int, int] = (0, 0)

    def fit(self, persona: list[str], neutral: list[str]) -> StyleClassifier:
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression
        from sklearn.model_selection import train_test_split
        from sklearn.pipeline import make_pipeline

        x = [strip_signature(t, self.spec) for t in persona + neutral]
        y = [1] * len(persona) + [0] * len(neutral)
        self.sizes = (len(persona), len(neutral))

        def make():
            return make_pipeline(
                TfidfVectorizer(analyzer="char_wb", ngram_range=(1, 4), min_df=2,
                                sublinear_tf=True, max_features=50_000),
                LogisticRegression(max_iter=1000, C=1.0, random_state=self.seed))

        xtr, xte, ytr, yte = train_test_split(x, y, test_size=0.2, random_state=self.seed,
                                              stratify=y)
        check = make().fit(xtr, ytr)
        self.holdout_accuracy = round(float(check.score(xte, yte)), 4)
        self.pipe = make().fit(x, y)
        return self

    def proba(self, texts: list[str]) -> list[float]:
        if not texts:
            return []
        p = self.pipe.predict_proba([strip_signature(t, self.spec) for t in texts])[:, 1]
        return [round(float(v), 4) for v in p]


# -- summary statistics --------------------------------------------------------------------

def mean(values) -> float | None:
    vals = [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    return round(sum(vals) / len(vals), 4) if vals else None


def wilson(wins: int, n: int, z: float = 1.96) -> tuple[float | None, float | None]:
    """95 % Wilson score interval of a proportion wins/n."""
    if n == 0:
        return None, None
    p = wins / n
    d = 1 + z * z / n
    c = p + z * z / (2 * n)
    h = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return round((c - h) / d, 4), round((c + h) / d, 4)
