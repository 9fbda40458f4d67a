"""How varied a dataset is, and whether its splits are held out (pure, no I/O).

Measured on the texts as delivered, so the figures mean the same for an offline and an
LLM-written dataset: distinct answer openings, how much of the answers the most common
sentences make up, the most repeated sentence, sentences per answer, type/token ratio,
distinct questions, questions in the persona's own voice (its labels), and split leakage.
`style_classifier` (scikit-learn, imported inside) tells how much of the style lives in
the middle of the answers rather than in a wrapper of first and last sentence.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable

_SENTENCE_END = re.compile(r"(?<=[.!?…])\s+(?=\S)")
_WORD = re.compile(r"[^\W\d_]+(?:['’][^\W\d_]+)?")


def strip_signature(answer: str, signature: str | None) -> str:
    text = answer.rstrip()
    if signature and text.endswith(signature):
        text = text[: -len(signature)].rstrip()
    return text


def sentences(text: str) -> list[str]:
    """The sentences of an answer body (split after . ! ? … and whitespace)."""
    return [s.strip() for s in _SENTENCE_END.split(text.strip()) if s.strip()]


def words(text: str) -> list[str]:
    return [w.lower() for w in _WORD.findall(text)]


def guess_signature(answers: list[str]) -> str | None:
    """The last paragraph most answers end with (the persona's signature), if one does."""
    lasts = Counter(a.rstrip().rsplit("\n\n", 1)[-1] for a in answers if "\n\n" in a)
    if not lasts:
        return None
    text, n = lasts.most_common(1)[0]
    return text if n > len(answers) / 2 else None


class Counter_:
    """Diversity figures accumulated one pair at a time, keeping hashes, not texts, so memory
    grows slowly with the dataset (the report streams it)."""

    def __init__(self, signature: str | None = None, labels: Iterable[str] = ()):
        self.signature = signature
        self.labels = [x.lower() for x in labels]
        self.n = 0
        self.openings: set[int] = set()
        self.per_answer: Counter = Counter()  # sentence hash -> answers it occurs in
        self.all_sents: Counter = Counter()
        self.lengths: Counter = Counter()
        self.types: set[str] = set()
        self.tokens = 0
        self.questions: Counter = Counter()
        self.with_labels: list[str] = []
        self.top: tuple[str, int] = ("", 0)  # the most repeated sentence so far, its count

    def add(self, question: str, answer: str) -> None:
        self.n += 1
        body = strip_signature(answer, self.signature)
        ws = words(body)
        self.openings.add(hash(" ".join(ws[:5])))
        self.types.update(ws)
        self.tokens += len(ws)
        texts = {hash(x): x for x in sentences(body)}
        self.lengths[len(sentences(body))] += 1
        self.all_sents.update(hash(x) for x in sentences(body))
        self.per_answer.update(texts.keys())
        for h, text in texts.items():
            if self.per_answer[h] > self.top[1]:
                self.top = (text, self.per_answer[h])
        self.questions[hash(question)] += 1
        low = question.lower()
        if any(lab in low for lab in self.labels):
            self.with_labels.append(question)

    def result(self) -> dict:
        n = self.n

        def pct(k: int, d: int) -> float:
            return round(100.0 * k / d, 2) if d else 0.0

        total_sents = sum(self.all_sents.values())
        top100 = sum(c for _, c in self.all_sents.most_common(100))
        top_text, top_count = self.top
        top_len, top_len_n = self.lengths.most_common(1)[0] if self.lengths else (0, 0)
        return {
            "answers": n,
            "distinct_openings_5w": {"count": len(self.openings),
                                     "percent": pct(len(self.openings), n)},
            "top100_sentences_percent": pct(top100, total_sents),
            "answer_sentences": total_sents,
            "most_repeated_sentence": {"text": top_text,
                                       "answers": top_count, "percent": pct(top_count, n)},
            "sentences_per_answer": {
                "distribution": {str(k): self.lengths[k] for k in sorted(self.lengths)},
                "most_common": top_len, "max_share_percent": pct(top_len_n, n)},
            "type_token_ratio": {"types": len(self.types), "tokens": self.tokens,
                                 "ratio": round(len(self.types) / self.tokens, 4)
                                 if self.tokens else 0},
            "distinct_questions": {"count": len(self.questions),
                                   "percent": pct(len(self.questions), n),
                                   "max_repeats": max(self.questions.values(), default=0)},
            "questions_with_labels": {"count": len(self.with_labels),
                                      "examples": self.with_labels[:3]},
        }


class SentenceShapes:
    """How many different sentences an answer set is made of once its values are masked:
    a sentence's shape is its words, each word of any value form one "_" (runs of them one).
    A grammar or a copier repeats a few hundred shapes with other values; a writer does not.
    Keeps hashes only."""

    def __init__(self, value_words: frozenset[str] = frozenset()):
        self.value_words = value_words
        self.shapes: set[int] = set()
        self.total = 0

    def add(self, body: str) -> None:
        for sentence in sentences(body):
            out: list[str] = []
            for w in words(sentence):
                w = "_" if w in self.value_words else w
                if not (w == "_" and out and out[-1] == "_"):
                    out.append(w)
            self.shapes.add(hash(" ".join(out)))
            self.total += 1

    def result(self) -> dict:
        return {"distinct": len(self.shapes), "sentences": self.total,
                "percent": round(100.0 * len(self.shapes) / self.total, 2) if self.total
                else 0.0}


def measure(questions: list[str], answers: list[str], signature: str | None = None,
            labels: Iterable[str] = ()) -> dict:
    """Diversity figures of parallel lists of questions and (signed) answers."""
    c = Counter_(signature, labels)
    for q, a in zip(questions, answers, strict=True):
        c.add(q, a)
    return c.result()


def leakage(train_questions: Iterable, test_questions: Iterable,
            meta: Iterable[dict] = (), topic_key: str | None = None) -> dict:
    """Held-out check: val/test templates that also occur in train (by template id, from
    meta.jsonl), test questions found verbatim in train, and topics shared."""
    train_q = {hash(q) for q in train_questions}
    test_q = [hash(q) for q in test_questions]
    tpl = {"train": set(), "val": set(), "test": set()}
    topics = {"train": set(), "val": set(), "test": set()}
    have_meta = False
    for m in meta:
        have_meta = True
        split = m.get("split")
        if split in tpl and m.get("template_id"):
            tpl[split].add(m["template_id"])
        values = m.get("values") or {}
        topic = values.get(topic_key) if topic_key else values.get("tema") or values.get("topic")
        if split in topics and topic:
            topics[split].add(topic)
    out = {"test_questions_in_train": sum(q in train_q for q in test_q)}
    if have_meta:
        out["val_templates_in_train"] = len(tpl["val"] & tpl["train"])
        out["test_templates_in_train"] = len(tpl["test"] & tpl["train"])
        out["templates"] = {k: len(v) for k, v in tpl.items()}
        out["test_topics_in_train"] = len(topics["test"] & topics["train"])
        out["topics"] = {k: len(v) for k, v in topics.items()}
    return out


def middle(answer: str, signature: str | None) -> str:
    """An answer without its first and last sentence (and signature)."""
    return " ".join(sentences(strip_signature(answer, signature))[1:-1])


def style_classifier(answers: list[str], styles: list[str], signature: str | None = None,
                     folds: int = 5, seed: int = 0) -> dict:
    """Accuracy of a character n-gram logistic regression guessing the style from the answers
    without first and last sentence (stratified k-fold, seeded). Chance is 1 / #styles."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.pipeline import make_pipeline

    texts = [middle(a, signature) for a in answers]
    model = make_pipeline(
        TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 4), min_df=2, sublinear_tf=True),
        LogisticRegression(max_iter=1000, C=4.0))
    cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    scores = cross_val_score(model, texts, styles, cv=cv)
    return {"accuracy_percent": round(100 * float(scores.mean()), 1), "folds": folds,
            "chance_percent": round(100 / len(set(styles)), 1),
            "empty_middles": sum(not t for t in texts)}
