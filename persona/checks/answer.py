"""One verdict per generated answer or question, whatever wrote it: normalise, then judge.

A model's text deviates in two ways, and each gets its own treatment:

- **What can be normalised is.** Markdown or quotes around the text, a label before it
  ("Andrej Babiš:", "**Odpověď:**"), a decorated, repeated or missing signature, line breaks
  inside the paragraph, lowercase sentence starts and the spec's own fix-ups (Czech preposition
  vocalisation). `normalise_answer` / `normalise_question` are idempotent, and on good text
  (every offline answer and question) they change no byte.
- **What cannot is asked again**, with its reason (`answer_problems`, `question_problems`): a
  refusal, the wrong language, a value of the slot not mentioned in any form, too few or too
  many sentences, a sentence said twice, clashing parts, a refusal or wrap-up in the middle,
  a copy of its template
  (word 4-grams, `COPY_LIMIT`), a slip-rule output in an answer that reports none.

Pure functions; the slip markers and refusal patterns are derived from the spec and
`persona/data/refusals.toml` once per spec.
"""

from __future__ import annotations

import functools
import re
from importlib import resources

from persona import lemmas
from persona import text as T
from persona.finder import Finder, finder
from persona.rules import clashes, language_ok, misplaced_endings
from persona.spec import (
    PersonaSpec,
    Placeholder,
    per_spec,
)

# A model that keeps half or more of its template's own word 4-grams copied it rather than
# writing an answer of its own (docs/llm.md: "copy ratio").
COPY_LIMIT = 0.5

_FENCE = re.compile(r"^```[^\n]*\n(.*?)\n?```\s*$", re.S)
_EMPHASIS = re.compile(r"(\*\*|__)(.+?)\1|(?<![\w*])\*(?!\s)([^*\n]+?)(?<!\s)\*(?![\w*])")
_LINE_MARKUP = re.compile(r"^\s*(?:#{1,6}\s+|>\s?|(?:[-*•]|\d{1,2}[.)])\s+)", re.M)
_QUOTES = {'"': '"', "„": "“", "“": "”", "«": "»", "»": "«", "‚": "‘", "'": "'"}
# A sentence end not followed by a capital: after these words the dot is an abbreviation.
_ABBREVIATIONS = ("tzv", "např", "atd", "apod", "resp", "tj", "mj", "cca", "mil", "mld", "tis",
                  "č", "str", "odst", "e.g", "i.e", "etc", "mr", "mrs", "dr", "st", "vs")
_CAPITAL = re.compile(r"(^|[.!?…]\s+)([„“\"«(]?)([^\W\d_])")
_WORDS = re.compile(r"[^\W\d_]+")


# -- normalising -----------------------------------------------------------------------------

def normalise_answer(text: str, spec: PersonaSpec) -> str:
    """The answer as one signed paragraph, without the decorations models add."""
    body = _undecorate(text, _answer_labels(spec), spec.persona.signature)
    return T.sign(_tidy(body, spec), spec.persona.signature)


def normalise_question(text: str, spec: PersonaSpec) -> str:
    """The question as one paragraph, without a label, quotes or markdown."""
    return _tidy(_undecorate(text, _question_labels(spec), None), spec)


def _undecorate(text: str, labels: tuple[str, ...], signature: str | None) -> str:
    """Peel markup, labels, the signature and quotes until none is left (they nest)."""
    body = text.strip()
    for _ in range(5):
        new = _unwrap(body)
        new = _strip_label(new, labels)
        if signature is not None:
            new = strip_signature(new, signature)
        new = _unquote(new)
        if new == body:
            break
        body = new
    return body


def _tidy(body: str, spec: PersonaSpec) -> str:
    body = " ".join(body.split())
    return capitalize_sentences(T.rewrite(body, spec.grammar.fixups))


def capitalize_sentences(text: str) -> str:
    """A capital after every sentence end (not after an abbreviation such as "tzv.")."""

    def sub(m: re.Match) -> str:
        head = text[:m.start(2)].rstrip()
        if head.endswith(".") and _after_abbreviation(head):
            return m.group(0)
        return m.group(1) + m.group(2) + m.group(3).upper()

    return _CAPITAL.sub(sub, text)


def _after_abbreviation(head: str) -> bool:
    word = head[:-1].rsplit(None, 1)[-1].lower() if head[:-1].strip() else ""
    return word.isdigit() or word in _ABBREVIATIONS


def _unwrap(text: str) -> str:
    body = text.strip()
    m = _FENCE.match(body)
    if m:
        body = m.group(1).strip()
    body = _LINE_MARKUP.sub("", body)
    return _EMPHASIS.sub(lambda m: m.group(2) or m.group(3), body).strip()


def _unquote(body: str) -> str:
    """Without the quotes around the whole text ("„…“"), when no other quote of the kind
    stands inside."""
    if len(body) > 2 and _QUOTES.get(body[0]) == body[-1] and body[0] not in body[1:-1] \
            and body[-1] not in body[1:-1]:
        return body[1:-1].strip()
    return body


@functools.lru_cache(maxsize=16)
def _label_re(labels: tuple[str, ...]) -> re.Pattern:
    alt = "|".join(re.escape(x) for x in sorted(labels, key=len, reverse=True))
    return re.compile(rf"^\s*(?:{alt})(?:\s*\([^()\n]{{0,40}}\))?\s*(?::|—|–|-\s)\s*",
                      re.IGNORECASE)


def _strip_label(body: str, labels: tuple[str, ...]) -> str:
    """Drop "Label:" lines and prefixes ("Andrej Babiš (ironie):", "Odpověď —")."""
    if not labels:
        return body
    label = _label_re(labels)
    for _ in range(3):
        new = label.sub("", body, count=1).lstrip()
        if new == body or not new:
            break
        body = new
    return body


@per_spec
def _labels(spec: PersonaSpec, role: str) -> tuple[str, ...]:
    data = _data()
    out = list(data.get("labels", {}).get(role, []))
    if role == "answer":
        out += [spec.persona.name, *_signature_variants(spec.persona.signature)]
        out += [s.label for s in spec.styles.values()]
        out += list(data.get("labels", {}).get("style", []))
    return tuple(x for x in dict.fromkeys(out) if x)


def _answer_labels(spec: PersonaSpec) -> tuple[str, ...]:
    return _labels(spec, "answer")


def _question_labels(spec: PersonaSpec) -> tuple[str, ...]:
    return _labels(spec, "question")


def _signature_variants(signature: str) -> list[str]:
    """The signature, its initial-and-surname form and the surname alone ("A. Babiš")."""
    words = signature.split()
    out = [signature]
    if len(words) >= 2 and words[0][:1].isalpha():
        out += [f"{words[0][0]}. {' '.join(words[1:])}", words[-1]]
    return [x for x in out if len(x) >= 3]


def strip_signature(body: str, signature: str) -> str:
    """The text without the signature it ends with, however decorated ("— *Andrej Babiš*",
    "S pozdravem,\\nAndrej Babiš", twice). A name that ends a sentence after a comma is part
    of the sentence and stays."""
    if not signature:
        return body.strip()
    patterns, alone = _signature_res(signature)
    text = body.strip()
    if not any(v.casefold() in text.casefold() for v in _signature_variants(signature)):
        return text  # the common case: nothing to strip
    while True:
        new = text
        for pattern in patterns:
            new = pattern.sub("", new).rstrip()
        if alone.fullmatch(new):
            new = ""
        if new == text:
            return text
        text = new


@functools.lru_cache(maxsize=8)
def _signature_res(signature: str) -> tuple[tuple[re.Pattern, ...], re.Pattern]:
    """The signature on its own line (a greeting before it), after a sentence, after a dash;
    and the signature alone."""
    names = "|".join(re.escape(x) for x in _signature_variants(signature))
    deco = r"[\s*_\"'„“”»«~—–-]*"
    greeting = r"(?:(?:s pozdravem|se srdečným pozdravem|váš|vaše|podpis|signed|yours|regards|" \
               r"best regards|sincerely)[,:]?\s*)?"
    own_line = re.compile(rf"\n{deco}{greeting}{deco}(?:{names}){deco}\.?{deco}$", re.I)
    same_line = re.compile(rf"(?<=[.!?…])\s*(?:[—–-]+\s*)?{deco}(?:{names}){deco}\.?{deco}$",
                           re.I)
    dashed = re.compile(rf"\s+[—–-]+\s*{deco}(?:{names}){deco}\.?{deco}$", re.I)
    return (own_line, same_line, dashed), re.compile(rf"{deco}(?:{names}){deco}\.?", re.I)


# -- judging answers -------------------------------------------------------------------------

def answer_problems(text: str, spec: PersonaSpec, style: str, *, slip: dict | None = None,
                    brief: dict | None = None) -> list[str]:
    """Why the (normalised, signed) answer must be asked again; [] when it may stay.

    `slip`: the slip the answer reports (it is undone before the checks that look for slip
    outputs and values). `brief`: what the writer was asked (an LLM's fill request): the values
    it must name (`required`, category -> value key), the sentence range (`sentences`), the
    template it must not copy (`template`, alternatives resolved)."""
    body = _body(text, spec)
    own = undo_slip(body, slip)
    problems: list[str] = []
    if style not in spec.styles:
        problems.append(f"unknown style label {style!r}")
    if is_refusal(own, spec.persona.language):
        problems.append("a refusal, not an answer")
    if not own.strip():
        problems.append("empty answer")
    elif not language_ok(own, spec.persona.language):
        problems.append(f"does not read as language {spec.persona.language!r}")
    left = T.unresolved(text)
    if left:
        problems.append(f"unresolved placeholder {left[0]!r}")
    if not T.is_signed(text, spec.persona.signature):
        problems.append(f"not signed {spec.persona.signature!r}")
    written = brief is not None  # by a model that was briefed (an LLM), not by the grammar
    brief = brief or {}
    for name, key in (brief.get("required") or {}).items():
        value = _value(spec, name, key)
        if value is not None and not mentions_value(own, value, spec.placeholders[name],
                                                    spec.persona.language):
            problems.append(f"does not mention {{{name}}} ({key})")
    if brief.get("sentences"):
        lo, hi = brief["sentences"]
        n = len(T.split_sentences(body))
        if not lo <= n <= hi:
            problems.append(f"{n} sentences, {lo}-{hi} asked")
    # a sentence twice (in the offline grammar an interjection of three words or fewer may
    # be a tic: "By Jove!"; a model's repeat is a flaw whatever its length)
    sentences = [x.casefold() for x in T.split_sentences(body)
                 if written or len(x.split()) > 3]
    if len(sentences) != len(set(sentences)):
        problems.append("a sentence said twice")
    if clashes(spec, body):
        problems.append("clashing parts")
    problems += misplaced_endings(body, spec)[:1]
    if brief.get("template"):
        ratio = copy_ratio(own, brief["template"])
        if ratio is not None and ratio >= COPY_LIMIT:
            problems.append(f"a copy of its template ({ratio:.0%} of its word 4-grams)")
    found = unreported_slips(own, spec)
    if found:
        problems.append(f"an unreported slip ({found[0]!r})")
    return problems


def _body(text: str, spec: PersonaSpec) -> str:
    body = text.rstrip()
    sig = spec.persona.signature
    if sig and body.endswith(sig):
        body = body[: -len(sig)]
    return body.strip()


def undo_slip(body: str, slip: dict | None) -> str:
    """The text as it was before its reported slip (the first occurrence of `to` put back)."""
    if not slip or slip.get("to") not in body:
        return body
    return body.replace(slip["to"], slip["from"], 1)


def _value(spec: PersonaSpec, name: str, key: str) -> dict[str, str] | None:
    from persona.providers.offline import value_index

    return value_index(spec).get(name, {}).get(key)


def value_forms(value: dict[str, str], ph: Placeholder) -> list[str]:
    """Every written form of a value (its case forms and the journalist's neutral ones)."""
    return list(dict.fromkeys(v for k, v in value.items() if k != ph.agreement))


def mentions_value(text: str, value: dict[str, str], ph: Placeholder,
                   language: str = "cs") -> bool:
    """Whether the text names the value in any form: one of the spec's forms, or (for forms
    a model inflects its own way) every content word's lemma (simplemma), in any order."""
    low = text.casefold()
    for form in value_forms(value, ph):
        if _form_re(form.casefold()).search(low):
            return True
    return _lemmas_present(low, value_forms(value, ph), language)


@functools.lru_cache(maxsize=4096)
def _form_re(form: str) -> re.Pattern:
    return re.compile(rf"(?<!\w){re.escape(form)}(?!\w)")


def _lemmas_present(low: str, forms: list[str], lang: str) -> bool:
    try:
        simplemma = lemmas.load()
    except ImportError:  # pragma: no cover - a dependency of the main install
        return False
    T._lemmas_ready(lang)
    try:
        have = {simplemma.lemmatize(w, lang=lang) for w in _WORDS.findall(low)}
    except (ValueError, KeyError):  # a language simplemma does not know
        return False
    for form in forms:
        words = [w for w in _WORDS.findall(form.casefold()) if len(w) >= 3]
        if words and all(simplemma.lemmatize(w, lang=lang) in have for w in words):
            return True
    return False


# -- copy ratio ------------------------------------------------------------------------------

def _grams(tokens: list[str | None], n: int = 4) -> set[tuple[str, ...]]:
    """Word n-grams made of words only (None stands for a value or an alternative)."""
    return {tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1)
            if None not in tokens[i:i + n]}


_PIECE = re.compile(r"(\[[^\[\]]*\|[^\[\]]*\]|\{[a-z][a-z0-9_]*(?:\.[a-z][a-z0-9_]*)?\}"
                    r"|\{[a-z][a-z0-9_]*@[a-z0-9_]+\})")


@functools.lru_cache(maxsize=8192)
def _skeleton(template: str) -> tuple:
    """A template as pieces: text, None (an alternative), ("P", category, form) or ("A",
    category, word); parsed once per template (the report reads every answer's)."""
    out: list = []
    for piece in _PIECE.split(template):
        if not piece:
            continue
        if piece.startswith("["):
            out.append(None)
        elif piece.startswith("{") and "@" in piece:
            name, word = piece[1:-1].split("@")
            out.append(("A", name, word))
        elif piece.startswith("{"):
            name, _, form = piece[1:-1].partition(".")
            out.append(("P", name, form or None))
        else:
            out.append(piece)
    return tuple(out)


def template_tokens(template: str, spec: PersonaSpec | None = None,
                    values: dict[str, dict[str, str]] | None = None) -> list[str | None]:
    """A template's words as its reader sees them: filled with `values` where given (the
    first value of a category for every mention); a slot without a value, an agreeing word
    of one, and every `[a|b]` alternative is one None (it matches nothing)."""
    from persona.spec import agree_form

    values = values or {}
    text: list[str] = []
    for piece in _skeleton(template):
        if piece is None:
            text.append(" \x00 ")
        elif isinstance(piece, str):
            text.append(piece)
        elif piece[1] not in values or spec is None:
            text.append(" \x00 ")
        elif piece[0] == "P":
            ph = spec.placeholders[piece[1]]
            text.append(values[piece[1]].get(piece[2] or ph.forms[0], "\x00"))
        else:
            ph = spec.placeholders[piece[1]]
            text.append(agree_form(ph.agree.get(piece[2], {}),
                                   ph.value_class(values[piece[1]])) or " \x00 ")
    out: list[str | None] = []
    for part in re.split(r"(\x00)", "".join(text)):
        if part == "\x00":
            out.append(None)
        else:
            out += [w.casefold() for w in _WORDS.findall(part)]
    return out


def copy_ratio(answer: str, template: str, spec: PersonaSpec | None = None,
               values: dict[str, dict[str, str]] | None = None) -> float | None:
    """Share of the template's word 4-grams (filled with the answer's `values`; alternatives
    and slots without a value left out) found in the answer; None when it has none."""
    own = _grams(template_tokens(template, spec, values))
    if not own:
        return None
    have = _grams([w.casefold() for w in _WORDS.findall(answer)])
    return len(own & have) / len(own)


def overlap(a: str, b: str) -> float:
    """Share of a's word 4-grams (placeholders as words) that b has too: near-copies."""
    def grams(text: str) -> set:
        words = [w.casefold() for w in re.findall(r"\{[^{}]+\}|[^\W\d_]+", text)]
        return _grams(words)  # type: ignore[arg-type]

    mine = grams(a)
    return len(mine & grams(b)) / len(mine) if mine else 0.0


# -- refusals and slips ----------------------------------------------------------------------

@functools.lru_cache(maxsize=1)
def _data() -> dict:
    import tomllib

    path = resources.files("persona") / "data" / "answer_checks.toml"
    return tomllib.loads(path.read_text(encoding="utf-8"))


@functools.lru_cache(maxsize=8)
def _refusal_re(language: str) -> Finder | None:
    pats = _data().get("refusals", {})
    chosen = pats.get(language, []) + pats.get("any", [])
    return finder("|".join(f"(?:{p})" for p in chosen), re.I) if chosen else None


def is_refusal(text: str, language: str) -> bool:
    """A model declining the task ("Omlouvám se, ale…", "I can't help with that"); the
    persona's own refusals ("To nebudu komentovat.") are answers and do not count."""
    pattern = _refusal_re(language)
    return bool(pattern and pattern.search(text))


@per_spec
def slip_markers(spec: PersonaSpec) -> tuple[tuple[str, str, bool], ...]:
    """(kind, text, whole) of every slip output that cannot be correct text: the replacement
    of a rule without backreferences, lowercase, unless all of its words are words of the
    language (simplemma's dictionary) or the spec's own texts hold it; `whole`: a whole word
    or phrase (the rule's pattern ends at a word boundary), else a word's beginning
    ("dignitalizac…"). A rule with backreferences ("\\1ov") makes forms no pattern can tell
    from correct words: only a reported slip of it is checked (in the text, by the stage)."""
    own = " ".join(text for _, text in spec.fragments()).casefold()
    own += " " + " ".join(v for ph in spec.placeholders.values() for value in ph.values
                          for v in value.values()).casefold()
    out = []
    for rule in spec.slips:
        if re.search(r"\\\d|\\g<", rule.replacement):
            continue
        literal = rule.replacement.strip()
        words = _WORDS.findall(literal)
        if not words or literal.casefold() in own:
            continue
        if len(words) == 1 and _known_word(words[0], spec.persona.language):
            continue
        whole = rule.pattern.rstrip().endswith(("\\b", ")")) or " " in literal
        out.append((rule.kind, literal.lower(), whole))
    return tuple(out)


def _known_word(word: str, language: str) -> bool:
    try:
        import simplemma

        return simplemma.is_known(word.lower(), lang=language)
    except (ImportError, ValueError, KeyError):
        return False


def unreported_slips(body: str, spec: PersonaSpec) -> list[str]:
    """Slip outputs in a text that reports no slip: a set lookup per word and a substring
    test per phrase (54 regular expressions per answer cost a third of an offline run)."""
    words, stems, phrases = _marker_sets(spec)
    found = [w for w in _WORDS.findall(body)
             if (low := w.lower()) in words or (stems and low.startswith(stems))]
    if phrases is not None:
        found += phrases.findall(body.lower())
    return found


@per_spec
def _marker_sets(spec: PersonaSpec
                 ) -> tuple[frozenset[str], tuple[str, ...], re.Pattern | None]:
    """Single words (a set), word beginnings (a tuple for startswith), phrases (one regex)."""
    markers = slip_markers(spec)
    phrases = [t for _, t, _ in markers if " " in t]
    return (frozenset(t for _, t, whole in markers if whole and " " not in t),
            tuple(t for _, t, whole in markers if not whole),
            re.compile(r"(?<!\w)(?:" + "|".join(map(re.escape, phrases)) + r")(?!\w)")
            if phrases else None)


# -- judging questions -----------------------------------------------------------------------

def question_problems(question: str, spec: PersonaSpec, values: dict[str, str] | None = None,
                      max_sentences: int | None = None) -> list[str]:
    """Why a (normalised) question must be asked again. `values`: the answer's values
    (category -> key); the question must name its topic (the first journalist.match
    category the answer has). `max_sentences`: what the writer was asked for (an LLM)."""
    problems: list[str] = []
    if not question.strip():
        return ["empty question"]
    if is_refusal(question, spec.persona.language):
        problems.append("a refusal, not a question")
    left = T.unresolved(question)
    if left:
        problems.append(f"unresolved placeholder {left[0]!r}")
    if "?" not in question:
        problems.append("not a question (no '?')")
    low = question.lower()
    label = next((lab for lab in spec.journalist.labels if lab.lower() in low), None)
    if label is not None:
        problems.append(f"the journalist uses the persona's label {label!r}")
    if not language_ok(question, spec.persona.language):
        problems.append(f"does not read as language {spec.persona.language!r}")
    topic = next(((name, (values or {})[name]) for name in spec.journalist.match
                  if name in (values or {})), None)
    if topic is not None:
        value = _value(spec, *topic)
        if value is not None and not mentions_value(question, value,
                                                    spec.placeholders[topic[0]],
                                                    spec.persona.language):
            problems.append(f"does not name the answer's topic ({topic[1]})")
    if max_sentences and len(T.split_sentences(question)) > max_sentences:
        problems.append(f"more than {max_sentences} sentences")
    return problems


def question_key(question: str) -> str:
    """What makes two questions the same question: case, spacing and punctuation aside."""
    return " ".join(_WORDS.findall(question.casefold()))


@per_spec
def address_heads(spec: PersonaSpec) -> tuple[tuple[str, ...], ...]:
    """How the journalist addresses the persona ("Pane Babiši,", "Pane předsedo,"): a head
    of up to three words before a comma that starts at least three question frames."""
    from collections import Counter

    from persona.spec import expansions

    counts: Counter = Counter()
    for frame in spec.journalist.questions:
        heads = set()
        for variant in expansions(frame, 64):
            head, sep, _ = variant.partition(", ")
            words = tuple(_WORDS.findall(head.casefold()))
            if sep and 0 < len(words) <= 3 and "{" not in head:
                heads.add(words)
        counts.update(heads)
    return tuple(sorted((h for h, n in counts.items() if n >= 3), key=len, reverse=True))


def question_keys(question: str, spec: PersonaSpec) -> tuple[str, str | None]:
    """(key, tail key) of a question with the journalist's address left out of every
    sentence: "Pane Babiši, X?" and "Pane předsedo, X?" are one question. The tail is the
    question without a first sentence that asks nothing (a lead: "Vraťme se k daním."), when
    what is left is a question of its own (five words or more, not "Mají pravdu?")."""
    heads = address_heads(spec)

    def key(sentences: list[str]) -> str:
        out: list[str] = []
        for sentence in sentences:
            words = _WORDS.findall(sentence.casefold())
            head = next((h for h in heads if tuple(words[:len(h)]) == h), ())
            out += words[len(head):]
        return " ".join(out)

    sentences = T.split_sentences(question)
    tail = key(sentences[1:]) if len(sentences) > 1 and "?" not in sentences[0] else None
    return key(sentences), (tail if tail and len(tail.split()) >= 5 else None)
