"""What the LLM is asked for each item and how its answer is read: `*_request` / `parse_*`.

Pure functions, testable offline. The code decides everything that must be exact: per slot
the template, the style, the values and whether to slip, seeded per item and attempt like
the offline provider. The model only writes:

- **fill, `write` mode (the default)**: a writing task. The model gets the style's
  description and a few of the style's own sentences (sampled per slot), the values the
  answer must be about and those it may use, the template as an idea to say in its own
  words, and a sentence range (`FillBrief`). The answer comes back unsigned and without
  slips; the code normalises it, makes the slip (`text.apply_slip`, exact in the text and in
  meta.jsonl) and signs it. Where no slip rule fits, the stage asks once for a rephrase that
  uses a trigger word (`rephrase` requests).
- **fill, `strict` mode**: the template filled word for word, with two style phrases around
  it (the course's original shape); slips are still the code's.
- **questions**: the answer and its topics in their neutral forms (never the persona's own
  labels), with example questions of the right kind.
- **templates**: new templates like the examples, the spec's placeholder syntax explained.

A parse returns the item or a Failure with the raw answer; the checks every answer must pass
live in persona/checks/answer.py and run in the stage, whoever wrote the text.
"""

from __future__ import annotations

import json
import random
import re
from dataclasses import dataclass, replace

from persona import defaults, prompts
from persona import text as T
from persona.checks.answer import mentions_value, normalise_answer, normalise_question
from persona.providers.base import Failure, FillRequest, FillResult, QuestionRequest
from persona.providers.offline import (
    OfflineProvider,
    draw_values,
    finish,
    has_question_frame,
    lookup_values,
    render_question,
)
from persona.spec import AGREE_RE, PLACEHOLDER_RE, PersonaSpec, expansions, per_spec

TEMPLATES_PER_REQUEST = 20
FILL_MODES = ("write", "strict")
MAX_TOKENS = {"templates": 2048, "fill": 512, "questions": 256}
TRIGGERS = 8  # trigger words offered per rephrase request
QUESTION_SENTENCES = 2  # a journalist's question: one or two sentences

FILL_SCHEMA = {"type": "object", "additionalProperties": False, "required": ["text"],
               "properties": {"text": {"type": "string"}}}
QUESTION_SCHEMA = {"type": "object", "additionalProperties": False, "required": ["question"],
                   "properties": {"question": {"type": "string"}}}
TEMPLATES_SCHEMA = {"type": "object", "additionalProperties": False, "required": ["templates"],
                    "properties": {"templates": {"type": "array", "items": {"type": "string"}}}}
SCHEMAS = {"templates": TEMPLATES_SCHEMA, "fill": FILL_SCHEMA, "questions": QUESTION_SCHEMA}

# Several items per request (write-mode fill, questions): the tasks of up to --per-request
# items travel in one request under one shared part (the static prompt first, then the
# examples shared by a block of slots, then the items), and come back as one JSON array.
PER_REQUEST = defaults.PER_REQUEST  # the default K (measured: docs/benchmarks.md, "Issue 19")
GROUP_BLOCK = 300  # slots whose requests share their examples: one group key per block
# max_tokens per item of a grouped request: what a tokens-per-minute limit counts, so not far
# above what an item takes (~90 and ~50 tokens; one cut by it is asked again with twice this)
MEMBER_TOKENS = {"fill": 240, "questions": 96}
GROUP_STYLE_EXAMPLES = 8  # style sentences shown per grouped fill request
QUESTION_EXAMPLES = 6  # question examples per grouped questions request
GAP = "___"  # where a topic goes in a shared example
GROUP_FIELDS = {"fill": ("answers", "text"), "questions": ("questions", "question")}


def _group_schema(kind: str) -> dict:
    field, value = GROUP_FIELDS[kind]
    item = {"type": "object", "additionalProperties": False, "required": ["id", value],
            "properties": {"id": {"type": "string"}, value: {"type": "string"}}}
    return {"type": "object", "additionalProperties": False, "required": [field],
            "properties": {field: {"type": "array", "items": item}}}


GROUP_SCHEMAS = {kind: _group_schema(kind) for kind in GROUP_FIELDS}


# -- stage 1 -------------------------------------------------------------------------------

def templates_requests(spec: PersonaSpec, count: int, seed: int, attempt: int = 0,
                       round_no: int = 0) -> list[list[dict]]:
    """One request per TEMPLATES_PER_REQUEST templates, each with its own examples (the
    offline grammar's recombinations, alternatives drawn: the model sees no `[a|b]`), so the
    requests differ and the bank varies. `round_no` > 0 asks for a shortfall with other
    examples."""
    pool = OfflineProvider().write_templates(spec, max(count, TEMPLATES_PER_REQUEST) * 2, seed)
    rng = random.Random(f"{seed}:template-examples:{round_no}:{attempt}")
    if round_no:
        rng.shuffle(pool)
    out = []
    for k in range(0, count, TEMPLATES_PER_REQUEST):
        n = min(TEMPLATES_PER_REQUEST, count - k)
        examples = _distinct_openers([T.choose_alternatives(t, rng)
                                      for t in pool[k % len(pool):] + pool[:k % len(pool)]],
                                     min(n, 8))
        task = {"task": "templates", "chunk": k // TEMPLATES_PER_REQUEST, "attempt": attempt,
                **({"round": round_no} if round_no else {}), "count": n,
                "examples": examples}
        out.append(prompts.messages("templates", spec, task,
                                    agreement=agreement_help(spec)))
    return out


def _distinct_openers(texts: list[str], n: int) -> list[str]:
    """The first `n` texts whose first three words no earlier pick shares (so the examples
    do not prime one opening)."""
    out, seen = [], set()
    for text in texts:
        head = tuple(text.lower().split()[:3])
        if head not in seen:
            seen.add(head)
            out.append(text)
            if len(out) == n:
                break
    return out


def agreement_help(spec: PersonaSpec) -> str:
    """The `{category@word}` words of the spec, each with its forms and a use from the spec,
    for the templates prompt ("" when the spec has none)."""
    lines = []
    for name, ph in spec.placeholders.items():
        for word, table in ph.agree.items():
            forms = ", ".join(dict.fromkeys(table.values()))
            use = _agreement_example(spec, f"{{{name}@{word}}}")
            lines.append(f"- `{{{name}@{word}}}`: the form that agrees with the value of "
                         f"`{name}` ({forms})" + (f", as in `{use}`" if use else ""))
    if not lines:
        return ""
    return ("A word that must agree with a value in gender and number is written as "
            "`{category@word}` and the code puts in the right form:\n" + "\n".join(lines))


def _agreement_example(spec: PersonaSpec, token: str) -> str:
    """The shortest whole sentence of the spec (alternatives drawn) that uses the word."""
    found = [s for _, text in spec.fragments() if token in text
             for s in re.split(r"(?<=[.!?])\s+", expansions(text)[0]) if token in s]
    return min(found, key=len) if found else ""


def parse_templates(content: str) -> list[str] | Failure:
    obj = _json_object(content)
    if isinstance(obj, Failure):
        return obj
    items = obj.get("templates")
    if not isinstance(items, list) or not all(isinstance(t, str) for t in items):
        return Failure("answer lacks a 'templates' list of strings", content)
    return [t.strip() for t in items if t.strip()]


def template_examples(messages: list[dict]) -> list[str]:
    """The examples a templates request showed (its near-copies are refused)."""
    m = re.search(r"```json\s*\n(.*?)\n```", messages[-1]["content"], re.S)
    return json.loads(m.group(1)).get("examples", []) if m else []


# -- stage 2 -------------------------------------------------------------------------------

@dataclass(frozen=True)
class FillBrief:
    """What one slot's answer is to be, decided by the code (seeded by slot and attempt)."""

    template: str  # the template, alternatives drawn
    idea: str  # the template filled with the values: what the answer may start from
    examples: tuple[str, ...]  # strict mode: the style phrases, filled with the same values
    values: dict  # category -> the value (all its forms) for the slot
    extra: dict  # per-mention categories: a value per mention
    required: tuple[str, ...]  # categories the answer must name
    sentences: tuple[int, int]  # the sentence range asked for

    def keys(self) -> dict[str, str]:
        return {k: T.value_key(v) for k, v in self.values.items()}

    def checks(self, mode: str) -> dict:
        """What the stage checks the answer against (FillResult.brief)."""
        out = {"required": {k: T.value_key(self.values[k]) for k in self.required}}
        if mode == "write":
            out.update(sentences=list(self.sentences), template=self.idea)
        return out


def fill_brief(spec: PersonaSpec, req: FillRequest, seed: int, mode: str = "write"
               ) -> FillBrief:
    """The slot's brief; in `strict` mode its examples are one prefix and one suffix of the
    style, the phrases the template is framed with; in write mode none (the grouped
    request's shared part shows the style's sentences: `fill_shared`)."""
    rng = random.Random(f"{seed}:fill:{req.index}:{req.attempt}")
    style = spec.styles[req.style]
    template = T.choose_alternatives(req.template.text, rng)
    picked = [rng.choice(style.prefixes), rng.choice(style.suffixes)] if mode == "strict" \
        else []
    examples = [T.choose_alternatives(p, rng) for p in picked]
    values, extra = draw_values(spec, " ".join([template, *examples]), rng)
    idea = finish(spec, req.style, template, values, extra)
    filled = list(dict.fromkeys(finish(spec, req.style, e, values, extra) for e in examples))
    cats = T.categories(template)
    required = [c for c in cats if c in spec.journalist.match] or [
        c for c in cats if not spec.placeholders[c].per_mention] or cats
    g = spec.grammar
    weights = g.style_sentences or {"1": 1.0, "2": 1.0}
    r = int(rng.choices(list(weights), weights=list(weights.values()))[0])
    n = min(g.max_sentences, len(T.units(template)) + r)
    return FillBrief(template, idea, tuple(filled), values, extra, tuple(required),
                     (max(1, n - 1), min(g.max_sentences, max(n + 1, 2))))


def fill_request(spec: PersonaSpec, req: FillRequest, seed: int, reask: int = 0,
                 mode: str = "write") -> tuple[list[dict], FillBrief]:
    """(messages, brief) of a request of its own: strict mode, or a rephrase. `reask` > 0:
    the same task asked again after a malformed answer (the number makes it a new request).
    A request carrying `req.previous` (the text of the slot's answer at attempt
    `previous["attempt"]`) asks for a rephrase of that answer with a trigger word, so that a
    slip rule fits; its brief is that attempt's (a write-mode one: `fill_member`'s)."""
    if req.previous:
        brief = fill_brief(spec, replace(req, attempt=req.previous["attempt"]), seed, mode)
    else:
        brief = fill_brief(spec, req, seed, mode)
    style = spec.styles[req.style]
    base = {"task": "fill", "id": req.id, "attempt": req.attempt}
    if req.previous:
        task = {**base, "task": "rephrase", "text": req.previous["text"],
                "use_one_of": trigger_words(spec, f"{seed}:{req.index}:{req.attempt}")}
        stage = "fill_rephrase"
    elif mode == "strict":
        template = T.fill_agreement(brief.template, brief.values, spec)
        phrases = [p for p in brief.examples if p]
        forms = {m.group(1): set() for m in PLACEHOLDER_RE.finditer(template)}
        for m in PLACEHOLDER_RE.finditer(template):
            forms[m.group(1)].add(m.group(2) or spec.placeholders[m.group(1)].forms[0])
        task = {**base, "style": req.style, "template": template, "style_phrases": phrases,
                "values": {k: {f: v for f, v in brief.values[k].items() if f in forms[k]}
                           for k in forms}}
        stage = "fill_strict"
    else:  # write mode goes several slots to a request: fill_member, group_messages
        raise ValueError("a write-mode slot is asked with fill_member, in a grouped request")
    msgs = prompts.messages(stage, spec, {**task, **_reask(reask)}, style_label=style.label,
                            style_description=style.description)
    return msgs, brief


# -- several items per request ---------------------------------------------------------------

def fill_group_key(req: FillRequest) -> tuple:
    """Fill items that may share a request: one style, one block of slots."""
    return ("fill", req.style, req.index // GROUP_BLOCK)


def question_group_key(req: QuestionRequest) -> tuple:
    return ("questions", req.index // GROUP_BLOCK)


@per_spec
def _shared_store(spec: PersonaSpec) -> dict:
    return {}


def _gap_value(spec: PersonaSpec, name: str) -> dict[str, str]:
    """A stand-in value whose every form is GAP (its gender and number kept for agreement)."""
    ph = spec.placeholders[name]
    value = dict(ph.values[0])
    return {k: (v if k == ph.agreement else GAP) for k, v in value.items()}


def _with_gaps(spec: PersonaSpec, style: str, text: str, rng: random.Random) -> str:
    """A style sentence filled for a shared part: topics (journalist.match categories) as
    GAP, other categories (an outburst, a criticism) with drawn values."""
    values, extra = draw_values(spec, text, rng)
    for name in list(values):
        if name in spec.journalist.match:
            values[name] = _gap_value(spec, name)
            if name in extra:
                extra[name] = [values[name]] * len(extra[name])
    return finish(spec, style, text, values, extra)


def fill_shared(spec: PersonaSpec, seed: int, style: str, block: int) -> dict:
    """What the grouped fill requests of one style and block of slots share: the style's own
    sentences (GROUP_STYLE_EXAMPLES, seeded by style and block; refusals and wrap-ups apart
    as `closers`). It depends on nothing else, so an item's request does not depend on which
    items share it."""
    store, key = _shared_store(spec), ("fill", seed, style, block)
    if key not in store:
        rng = random.Random(f"{seed}:fill-examples:{style}:{block}")
        st = spec.styles[style]
        pool = [p for p in [*st.prefixes, *st.bodies, *st.suffixes] if p.strip()]
        picked = rng.sample(pool, min(GROUP_STYLE_EXAMPLES, len(pool)))
        filled = list(dict.fromkeys(_with_gaps(spec, style, T.choose_alternatives(p, rng), rng)
                                    for p in picked))
        closers = [e for e in filled if spec.grammar.ending(e)]
        store[key] = {"task": "fill", "style": f"{style}: {st.description}",
                      "style_examples": [e for e in filled if e not in closers],
                      **({"closers": closers} if closers else {})}
    return store[key]


def fill_member(spec: PersonaSpec, req: FillRequest, seed: int, reask: int = 0
                ) -> tuple[dict, FillBrief]:
    """One slot's task within a grouped write-mode fill request, and its brief."""
    brief = fill_brief(spec, req, seed, "write")
    may_use = {k: _words(spec, k, brief) for k in sorted(brief.values)
               if k not in brief.required}
    task = {"id": req.id, **({"attempt": req.attempt} if req.attempt else {}),
            "about": {k: _nominative(spec, k, brief) for k in brief.required},
            **({"may_use": may_use} if may_use else {}),
            "idea": brief.idea, "sentences": f"{brief.sentences[0]}-{brief.sentences[1]}",
            **_reask(reask)}
    return task, brief


def question_shared(spec: PersonaSpec, seed: int, block: int) -> dict:
    """The example questions a block's grouped questions requests share: frames of the
    journalist with GAP where a topic goes (the last one with a context lead sentence)."""
    store, key = _shared_store(spec), ("questions", seed, block)
    if key not in store:
        rng = random.Random(f"{seed}:ask-examples:{block}")
        frames = rng.sample(spec.journalist.questions,
                            min(QUESTION_EXAMPLES, len(spec.journalist.questions)))
        examples = []
        for i, frame in enumerate(frames):
            names = set(T.categories(frame)) | {m.group(1) for m in AGREE_RE.finditer(frame)}
            gaps = {n: _gap_value(spec, n) for n in spec.placeholders}
            lead = i == len(frames) - 1
            q = render_question(spec, frame, {n: gaps[n] for n in names} if not lead else gaps,
                                rng, lead=lead, max_sentences=QUESTION_SENTENCES)
            if q not in examples:
                examples.append(q)
        store[key] = {"task": "questions", "examples": examples}
    return store[key]


def question_member(spec: PersonaSpec, req: QuestionRequest, seed: int, reask: int = 0
                    ) -> dict | Failure:
    """One answer's task within a grouped questions request."""
    keys = req.answer["values"]
    values = lookup_values(spec, keys)
    if not has_question_frame(spec, set(keys)):
        return Failure("no question frame fits the answer's placeholders", retry=False)
    answer = req.answer["text"]
    sig = spec.persona.signature
    if sig and answer.endswith(sig):  # the signature says nothing about the question
        answer = answer[: -len(sig)].rstrip()
    return {"id": req.answer["id"], **({"attempt": req.attempt} if req.attempt else {}),
            "answer": answer, "topics": neutral_topics(spec, values),
            **({"context": True} if req.attempt else {}), **_reask(reask)}


def group_messages(spec: PersonaSpec, stage: str, shared: dict, items: list[dict]
                   ) -> list[dict]:
    """The messages of one grouped request: the stage's prompt (static, first), then the JSON
    block: the shared part, then one task per line."""
    head = json.dumps(shared, ensure_ascii=False)
    body = head[:-1] + ', "tasks": [' + (
        "\n" + ",\n".join(json.dumps(t, ensure_ascii=False) for t in items) + "\n" if items
        else "") + "]}"
    return prompts.messages(stage, spec, body)


def read_group(kind: str, content: str, partial: bool = False) -> dict[str, str]:
    """{task id: that item's own answer, as a one-item request's answer reads} of a grouped
    answer; items missing or malformed in it are absent. `partial`: the answer was cut by
    the token limit: the items complete before the cut are read."""
    field, value = GROUP_FIELDS[kind]
    obj = _json_object(content)
    entries = obj.get(field) if isinstance(obj, dict) else None
    if not isinstance(entries, list):
        entries = _complete_entries(content, field) if partial else []
    out: dict[str, str] = {}
    for e in entries:
        if (isinstance(e, dict) and isinstance(e.get("id"), str) and isinstance(e.get(value), str)
                and e["id"] not in out):
            out[e["id"]] = json.dumps({value: e[value]}, ensure_ascii=False)
    return out


def _complete_entries(content: str, field: str) -> list:
    """The whole objects of the `field` array of a JSON text cut short."""
    m = re.search(rf'"{field}"\s*:\s*\[', content)
    if not m:
        return []
    decoder, pos, out = json.JSONDecoder(), m.end(), []
    while True:
        while pos < len(content) and content[pos] in " \t\r\n,":
            pos += 1
        try:
            obj, pos = decoder.raw_decode(content, pos)
        except json.JSONDecodeError:
            return out
        out.append(obj)


def _nominative(spec: PersonaSpec, name: str, brief: FillBrief) -> str:
    """A value as the model is given it: its first form (several picks: the first)."""
    return T.value_key((brief.extra.get(name) or [brief.values[name]])[0])


def _words(spec: PersonaSpec, name: str, brief: FillBrief) -> list[str]:
    """The words and phrases a category's picks for the slot offer (may_use: a list)."""
    picks = brief.extra.get(name) or [brief.values[name]]
    return list(dict.fromkeys(T.value_key(v) for v in picks))


def parse_fill(content: str, spec: PersonaSpec, req: FillRequest, brief: FillBrief, seed: int,
               mode: str = "write") -> FillResult | Failure:
    """The model's answer, normalised, slipped by the code when the slot asks for a slip
    (none when no rule fits: the stage then asks for a rephrase), and signed."""
    obj = _json_object(content)
    if isinstance(obj, Failure):
        return obj
    text = obj.get("text")
    if not isinstance(text, str) or not text.strip():
        return Failure("answer lacks a 'text' string", content)
    signed = normalise_answer(text, spec)
    body = signed[: len(signed) - len(spec.persona.signature)].rstrip() \
        if spec.persona.signature else signed
    values = {k: T.value_key(v) for k, v in brief.values.items()
              if k in brief.required or mentions_value(body, v, spec.placeholders[k],
                                                       spec.persona.language)}
    slip = None
    if req.slip:
        rng = random.Random(f"{seed}:slip:{req.index}:{req.attempt}")
        slipped = T.apply_slip(body, spec.slips, rng, spec.persona.language)
        if slipped is not None:
            body, made = slipped
            slip = made.to_dict()
    return FillResult(text=T.sign(body, spec.persona.signature), values=values, slip=slip,
                      brief=brief.checks(mode), normalised=True)


@per_spec
def slip_triggers(spec: PersonaSpec) -> tuple[str, ...]:
    """Words of the spec's own sentences that some slip rule changes ("protože", "když", an
    idiom): what a rephrase is asked to use. Not the values' words ("spekulantů"): using
    one would bring a new topic into the answer."""
    texts = [v for _, t in spec.fragments() for v in expansions(t, 16)]
    values = " ".join(f for ph in spec.placeholders.values() for value in ph.values
                      for f in value.values()).lower()
    found: dict[str, None] = {}
    for rule in spec.slips:
        for text in texts:
            clean = PLACEHOLDER_RE.sub(" ", AGREE_RE.sub("", text))
            for m in re.finditer(rule.pattern, clean):
                word = m.group(0).strip()
                if word and len(word.split()) <= 4 and not re.search(
                        rf"(?<!\w){re.escape(word.lower())}(?!\w)", values):
                    found[word.lower()] = None
    return tuple(sorted(found))


def trigger_words(spec: PersonaSpec, key: str) -> list[str]:
    words = list(slip_triggers(spec))
    return sorted(random.Random(f"triggers:{key}").sample(words, min(TRIGGERS, len(words))))


# -- stage 3 -------------------------------------------------------------------------------

def neutral_topics(spec: PersonaSpec, values: dict[str, dict[str, str]]) -> dict[str, str]:
    """The answer's topics (its values of journalist.match categories, else all of them) as
    a journalist names them: the neutral form where the persona's own is a label
    ("neziskové organizace", not "neziskovky")."""
    out = {}
    topical = [n for n in values if n in spec.journalist.match] or list(values)
    for name, value in values.items():
        if name not in topical:
            continue
        ph = spec.placeholders[name]
        first = ph.forms[0]
        neutral = ph.question_forms.get(first)
        out[name] = (value.get(neutral) if neutral else None) or value[first]
    return out


def parse_question(content: str, spec: PersonaSpec) -> str | Failure:
    obj = _json_object(content)
    if isinstance(obj, Failure):
        return obj
    q = obj.get("question")
    if not isinstance(q, str) or not q.strip():
        return Failure("answer lacks a 'question' string", content)
    return normalise_question(q, spec)


def _reask(n: int) -> dict:
    """The task field of a re-ask: absent on the first ask, so its request (and cache key)
    is the one it always was."""
    return {"reask": n} if n else {}


def _json_object(content: str) -> dict | Failure:
    """The answer's JSON object; tolerates a Markdown code fence around it (plain mode)."""
    text = content.strip()
    if text.startswith("```"):
        text = text.split("\n", 1)[-1].rsplit("```", 1)[0]
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as e:
        return Failure(f"answer is not valid JSON ({e.msg})", content)
    if not isinstance(obj, dict):
        return Failure("answer is not a JSON object", content)
    return obj
