"""The offline provider: a deterministic grammar, no network, no key.

Stage 1 recombines the spec's openers, cores and closers; stage 2 frames a template in its
style, fills it with values drawn for the slot and makes the slip the stage asked for; stage 3
picks a journalist's question frame that shares the answer's topic and enemy and fills it with
the answer's own values. Every draw uses a `random.Random` seeded by (seed, stage, item,
attempt), so an item's text never depends on which other items were made before it.
"""

from __future__ import annotations

import random

from persona import rules
from persona import text as T
from persona.providers.base import Failure, FillRequest, FillResult, QuestionRequest
from persona.spec import AGREE_RE, PersonaSpec, per_spec


class OfflineProvider:
    name = "offline"
    normalises = True  # its text needs no normalising (the grammar applies the fix-ups)
    forkable = True  # writes in this process, from the spec alone: forked workers may write
    asks_ahead = True  # fill's workers may ask each answer's question at once (see `ahead`)

    def __init__(self) -> None:
        # Questions asked ahead by fill's workers, judged on their own, for the questions
        # stage of the same run: (spec id, seed, slot, values) -> ask_and_judge's result.
        # A question depends on nothing else, so the stage's result is the same bytes.
        self.ahead: dict[tuple, tuple] = {}

    def write_templates(self, spec: PersonaSpec, count: int, seed: int, round_no: int = 0
                        ) -> list[str]:
        """`count` templates of the grammar; the same ones in every round (`round_no`: a
        grammar has nothing new to give a shortfall)."""
        g = spec.grammar
        rng = random.Random(f"{seed}:templates")
        seen: set[str] = set()
        out: list[str] = []
        stale_rounds = 0
        # Rounds over the shuffled cores keep every core equally used; stop when rounds stop
        # finding new texts (a small grammar may have fewer unique templates than asked).
        while len(out) < count and stale_rounds < 50:
            before = len(out)
            cores = list(g.cores)
            rng.shuffle(cores)
            for core in cores:
                opener = rng.choice(g.openers)
                closer = rng.choice(g.closers)
                if not fits_mentions(spec, opener, core, closer):
                    opener, closer = "", ""  # the core alone never names a value too often
                text = T.join(opener, core, closer)
                if text not in seen:
                    seen.add(text)
                    out.append(text)
                    if len(out) == count:
                        break
            stale_rounds = stale_rounds + 1 if len(out) == before else 0
        return out

    def fill(self, spec: PersonaSpec, requests: list[FillRequest], seed: int
             ) -> list[FillResult | Failure]:
        return [self._fill_one(spec, r, seed) for r in requests]

    def _fill_one(self, spec: PersonaSpec, req: FillRequest, seed: int) -> FillResult | Failure:
        rng = random.Random(f"{seed}:fill:{req.index}:{req.attempt}")
        composed = compose_answer(spec, req.style, req.template.text, rng)
        if composed is None:
            return Failure("no clash-free composition of this template and style")
        text, values = composed
        slip = None
        if req.slip:
            slipped = T.apply_slip(text, spec.slips, rng, spec.persona.language)
            if slipped is None:
                return Failure("no slip rule matches this answer")
            text, made = slipped
            slip = made.to_dict()
        # the grammar applies the spec's fix-ups and capitals itself: normalising its text
        # changes no byte (tests/test_llm_path.py), so the stage need not
        return FillResult(text=T.sign(text, spec.persona.signature),
                          values={k: T.value_key(v) for k, v in values.items()}, slip=slip,
                          normalised=True)

    def ask(self, spec: PersonaSpec, requests: list[QuestionRequest], seed: int
            ) -> list[str | Failure]:
        return [self._ask_one(spec, r, seed) for r in requests]

    def _ask_one(self, spec: PersonaSpec, req: QuestionRequest, seed: int) -> str | Failure:
        rng = random.Random(f"{seed}:ask:{req.index}:{req.attempt}")
        frame = pick_question_frame(spec, set(req.answer["values"]), rng)
        if frame is None:
            return Failure("no question frame fits the answer's placeholders", retry=False)
        values = lookup_values(spec, req.answer["values"])
        lead = req.attempt > 0 or rng.random() < LEAD_SHARE
        return render_question(spec, frame, values, rng, lead)


MAX_COMPOSE = 30


def compose_answer(spec: PersonaSpec, style_name: str, template: str, rng: random.Random,
                   fixed: dict[str, dict[str, str]] | None = None
                   ) -> tuple[str, dict[str, dict[str, str]]] | None:
    """(text, values) of one answer of the template in the style: composed, values drawn
    (`fixed` ones put in their place: `persona pairs` keeps an example's topic), filled and
    checked (sentence count, clashes, misplaced endings); None when MAX_COMPOSE tries find
    no composition that passes. The grammar's plain shape (no `style_sentences`) is one
    try: a style prefix, the template, a suffix."""

    def fill(body: str) -> tuple[str, dict]:
        values, extra = draw_values(spec, body, rng)
        for name, value in (fixed or {}).items():
            if name in values:
                values[name] = value
                extra.pop(name, None)
        return finish(spec, style_name, body, values, extra), values

    if not spec.grammar.style_sentences:
        style = spec.styles[style_name]
        return fill(T.choose_alternatives(T.join(rng.choice(style.prefixes), template,
                                                 rng.choice(style.suffixes)), rng))
    for _ in range(MAX_COMPOSE):
        body = T.choose_alternatives(compose(spec, style_name, template, rng), rng)
        if any(n > spec.grammar.max_mentions for n in T.mentions(body).values()):
            continue
        text, values = fill(body)
        if (len(T.split_sentences(text)) <= spec.grammar.max_sentences
                and not rules.clashes(spec, text)
                and not rules.misplaced_endings(text, spec)):
            return text, values
    return None
LEAD_SHARE = 0.3  # first questions that get a context sentence before them


def fits_mentions(spec: PersonaSpec, *parts: str) -> bool:
    total: dict[str, int] = {}
    for part in parts:
        for k, n in T.mentions(part).items():
            total[k] = total.get(k, 0) + n
    return all(n <= spec.grammar.max_mentions for n in total.values())


def draw_values(spec: PersonaSpec, body: str, rng: random.Random
                ) -> tuple[dict[str, dict[str, str]], dict[str, list[dict[str, str]]]]:
    """One value per category the body names (agreeing words included); categories marked
    `per_mention` get a different value for every mention."""
    names = sorted(set(T.categories(body)) | {m.group(1) for m in AGREE_RE.finditer(body)})
    values, extra = {}, {}
    for name in names:
        ph = spec.placeholders[name]
        if ph.per_mention:
            n = max(1, T.mentions(body).get(name, 0))
            picks = rng.sample(ph.values, min(n, len(ph.values)))
            extra[name] = (picks * n)[:n]
            values[name] = picks[0]
        else:
            values[name] = rng.choice(ph.values)
    return values, extra


def finish(spec: PersonaSpec, style: str, body: str, values: dict, extra: dict) -> str:
    text = T.rewrite(T.fill(body, values, spec, extra=extra), spec.grammar.fixups)
    return T.capitalize_sentences(text)


def compose(spec: PersonaSpec, style_name: str, template: str, rng: random.Random) -> str:
    """An answer of the template's sentences and the style's: a prefix, bodies after the
    template's first unit (an opener and its core are one) and before its last, and a
    suffix, as many as `grammar.style_sentences` draws; so the style is not only a wrapper.
    A template ending with a refusal or wrap-up (`grammar.last_only`) gets no suffix after
    it. No category is named more than `grammar.max_mentions` times."""
    g, style = spec.grammar, spec.styles[style_name]
    sizes = list(g.style_sentences)
    r = int(rng.choices(sizes, weights=[g.style_sentences[k] for k in sizes])[0])
    prefixes = [p for p in style.prefixes if p.strip()]
    suffixes = [p for p in style.suffixes if p.strip()]
    middle = [("t", s) for s in T.units(template)]
    if len(middle) >= 2 and middle[0][1] in g.openers:
        # an opener leads into the core: nothing stands between them
        middle[:2] = [("t", f"{middle[0][1]} {middle[1][1]}")]
    # a template that ends with a refusal or wrap-up (grammar.last_only) ends the answer
    closing = g.ending(middle[-1][1]) is not None
    has_prefix = r >= 2 and rng.random() < 0.7 and bool(prefixes)
    has_suffix = (not closing and r - has_prefix >= 2 and rng.random() < 0.6
                  and bool(suffixes))
    if r == 1 and not style.bodies:
        has_prefix = bool(prefixes)
    n_bodies = min(r - has_prefix - has_suffix, len(style.bodies))
    used = T.mentions(template)

    limit = g.max_mentions

    def pick(pool: list[str]) -> str | None:
        # most parts name no category: those fit without a look at the counts
        fits = [p for p in pool if not (named := T._mentions(p))
                or all(used.get(k, 0) + n <= limit for k, n in named)]
        if not fits:
            return None
        choice = rng.choice(fits)
        for k, n in T.mentions(choice).items():
            used[k] = used.get(k, 0) + n
        return choice

    bodies = []
    pool = list(style.bodies)
    for _ in range(n_bodies):
        b = pick(pool)
        if b is None:
            break
        pool.remove(b)
        bodies.append(b)
    for b in bodies:
        # after the template's first unit, which a body may refer back to ("A víte proč?"),
        # and before its last one, which closes the content (a one-unit template: after it)
        lo, hi = (1, len(middle) - 1) if len(middle) >= 2 else (1, 1)
        middle.insert(rng.randint(lo, max(lo, hi)), ("b", b))
    head = [("p", pick(prefixes))] if has_prefix else []
    tail = [("s", pick(suffixes))] if has_suffix else []
    parts = [p for p in head + middle + tail if p[1]]
    return T.join(*(text for _, text in parts))


def render_question(spec: PersonaSpec, frame: str, values: dict[str, dict[str, str]],
                    rng: random.Random, lead: bool = False, max_sentences: int | None = None
                    ) -> str:
    """A question frame filled in the journalist's voice: alternatives drawn, neutral forms
    of the values, with a context lead sentence before it when `lead` (and one fits, and the
    question stays within `max_sentences`)."""
    neutral = {name: ph.question_forms for name, ph in spec.placeholders.items()
               if ph.question_forms}
    frame = T.choose_alternatives(frame, rng)
    leads = [x for x in spec.journalist.leads
             if set(T.categories(x)) <= set(values)
             and {m.group(1) for m in AGREE_RE.finditer(x)} <= set(values)]
    if max_sentences is not None and len(T.split_sentences(frame)) >= max_sentences:
        leads = []
    if leads and lead:
        frame = T.join(T.choose_alternatives(rng.choice(leads), rng), frame)
    question = T.rewrite(T.fill(frame, values, spec, neutral), spec.grammar.fixups)
    return T.capitalize_sentences(question)


def has_question_frame(spec: PersonaSpec, have: set[str]) -> bool:
    """Whether some journalist frame fits an answer with these categories."""
    return bool(_frames_for(spec, frozenset(have)))


def pick_question_frame(spec: PersonaSpec, have: set[str], rng: random.Random) -> str | None:
    """A frame using only the answer's categories and all of its `match` categories."""
    pool = _frames_for(spec, frozenset(have))
    return rng.choice(pool) if pool else None


@per_spec
def _frame_cache(spec: PersonaSpec) -> dict:
    return {}


def _frames_for(spec: PersonaSpec, have: frozenset[str]) -> list[str]:
    cache = _frame_cache(spec)
    if have not in cache:
        must = set(spec.journalist.match) & have
        fits = [q for q in spec.journalist.questions if set(T.categories(q)) <= have]
        best = [q for q in fits if must <= set(T.categories(q))]
        cache[have] = best or fits
    return cache[have]


def lookup_values(spec: PersonaSpec, keys: dict[str, str]) -> dict[str, dict[str, str]]:
    out = {}
    index = value_index(spec)
    for name, key in keys.items():
        match = index.get(name, {}).get(key)
        if match is None:
            raise KeyError(f"{name}={key!r} is not a value of the spec")
        out[name] = match
    return out


@per_spec
def value_index(spec: PersonaSpec) -> dict[str, dict[str, dict[str, str]]]:
    """category -> value key -> the value (all its forms)."""
    return {name: {T.value_key(v): v for v in ph.values}
            for name, ph in spec.placeholders.items()}
