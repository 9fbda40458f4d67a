"""The offline provider: a deterministic grammar, no network, no key.

Stage 1 recombines the spec's openers, cores and closers; stage 2 frames a template in its
style, fills it with values drawn for the slot and makes the slip the stage asked for; stage 3
picks a journalist's question frame that shares the answer's topic and enemy and fills it with
the answer's own values. Every draw uses a `random.Random` seeded by (seed, stage, item,
attempt), so an item's text never depends on which other items were made before it.
"""

from __future__ import annotations

import random

from persona import text as T
from persona.providers.base import Failure, FillRequest, FillResult, QuestionRequest
from persona.spec import PersonaSpec


class OfflineProvider:
    name = "offline"

    def write_templates(self, spec: PersonaSpec, count: int, seed: int) -> list[str]:
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
                text = T.join(rng.choice(g.openers), core, rng.choice(g.closers))
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
        style = spec.styles[req.style]
        body = T.join(rng.choice(style.prefixes), req.template.text, rng.choice(style.suffixes))
        values = {name: rng.choice(spec.placeholders[name].values) for name in T.categories(body)}
        text = T.capitalize_sentences(T.rewrite(T.fill(body, values, spec), spec.grammar.fixups))
        slip = None
        if req.slip:
            slipped = T.apply_slip(text, spec.slips, rng)
            if slipped is None:
                return Failure("no slip rule matches this answer")
            text, made = slipped
            slip = made.to_dict()
        return FillResult(text=T.sign(text, spec.persona.signature),
                          values={k: T.value_key(v) for k, v in values.items()}, slip=slip)

    def ask(self, spec: PersonaSpec, requests: list[QuestionRequest], seed: int
            ) -> list[str | Failure]:
        return [self._ask_one(spec, r, seed) for r in requests]

    def _ask_one(self, spec: PersonaSpec, req: QuestionRequest, seed: int) -> str | Failure:
        rng = random.Random(f"{seed}:ask:{req.index}:{req.attempt}")
        frame = pick_question_frame(spec, set(req.answer["values"]), rng)
        if frame is None:
            return Failure("no question frame fits the answer's placeholders", retry=False)
        values = lookup_values(spec, req.answer["values"])
        question = T.rewrite(T.fill(frame, values, spec), spec.grammar.fixups)
        return T.capitalize_sentences(question)


def pick_question_frame(spec: PersonaSpec, have: set[str], rng: random.Random) -> str | None:
    """A frame using only the answer's categories and all of its `match` categories."""
    must = set(spec.journalist.match) & have
    fits = [q for q in spec.journalist.questions if set(T.categories(q)) <= have]
    best = [q for q in fits if must <= set(T.categories(q))]
    pool = best or fits
    return rng.choice(pool) if pool else None


def lookup_values(spec: PersonaSpec, keys: dict[str, str]) -> dict[str, dict[str, str]]:
    out = {}
    for name, key in keys.items():
        ph = spec.placeholders.get(name)
        match = next((v for v in ph.values if T.value_key(v) == key), None) if ph else None
        if match is None:
            raise KeyError(f"{name}={key!r} is not a value of the spec")
        out[name] = match
    return out
