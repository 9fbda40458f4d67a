"""What the LLM is asked for each item and how its answer is read: `*_request` / `parse_*`.

Pure functions, testable offline. The code decides everything that must be exact (style, slip,
the values a template is filled with, seeded per item and attempt like the offline provider);
the model only writes. A parse returns the item or a Failure with the raw answer.
"""

from __future__ import annotations

import json
import random

from persona import prompts
from persona import text as T
from persona.providers.base import Failure, FillRequest, FillResult, QuestionRequest
from persona.providers.offline import (
    OfflineProvider,
    lookup_values,
    pick_question_frame,
    render_question,
)
from persona.spec import AGREE_RE, PersonaSpec

TEMPLATES_PER_REQUEST = 20
MAX_TOKENS = {"templates": 2048, "fill": 512, "questions": 256}

FILL_SCHEMA = {
    "type": "object", "additionalProperties": False, "required": ["text", "slip"],
    "properties": {
        "text": {"type": "string"},
        "slip": {"anyOf": [{"type": "null"}, {
            "type": "object", "additionalProperties": False, "required": ["kind", "from", "to"],
            "properties": {"kind": {"type": "string"}, "from": {"type": "string"},
                           "to": {"type": "string"}}}]},
    },
}
QUESTION_SCHEMA = {"type": "object", "additionalProperties": False, "required": ["question"],
                   "properties": {"question": {"type": "string"}}}
TEMPLATES_SCHEMA = {"type": "object", "additionalProperties": False, "required": ["templates"],
                    "properties": {"templates": {"type": "array", "items": {"type": "string"}}}}
SCHEMAS = {"templates": TEMPLATES_SCHEMA, "fill": FILL_SCHEMA, "questions": QUESTION_SCHEMA}


# -- stage 1 -------------------------------------------------------------------------------

def templates_requests(spec: PersonaSpec, count: int, seed: int, attempt: int = 0
                       ) -> list[list[dict]]:
    """One request per TEMPLATES_PER_REQUEST templates, each with its own examples (the
    offline grammar's recombinations), so the requests differ and the bank varies."""
    examples = OfflineProvider().write_templates(spec, count, seed)
    out = []
    for k in range(0, count, TEMPLATES_PER_REQUEST):
        n = min(TEMPLATES_PER_REQUEST, count - k)
        chunk = examples[k:k + n] or examples[:n]
        task = {"task": "templates", "chunk": k // TEMPLATES_PER_REQUEST, "attempt": attempt,
                "count": n, "examples": chunk}
        out.append(prompts.messages("templates", spec, task))
    return out


def parse_templates(content: str) -> list[str] | Failure:
    obj = _json_object(content)
    if isinstance(obj, Failure):
        return obj
    items = obj.get("templates")
    if not isinstance(items, list) or not all(isinstance(t, str) for t in items):
        return Failure("answer lacks a 'templates' list of strings", content)
    return [t.strip() for t in items if t.strip()]


# -- stage 2 -------------------------------------------------------------------------------

def fill_request(spec: PersonaSpec, req: FillRequest, seed: int, reask: int = 0
                 ) -> tuple[list[dict], dict[str, str]]:
    """(messages, values chosen: category -> value key). `reask` > 0: the same task asked
    again after a malformed answer (same values; the number makes it a new request)."""
    rng = random.Random(f"{seed}:fill:{req.index}:{req.attempt}")
    style = spec.styles[req.style]
    # Alternatives and agreeing words are resolved here, so the model sees only {cat.form}
    # slots and the values to put in them.
    template = T.choose_alternatives(req.template.text, rng)
    phrases = [T.choose_alternatives(rng.choice(style.prefixes), rng),
               T.choose_alternatives(rng.choice(style.suffixes), rng)]
    body = " ".join([template, *phrases])
    names = set(T.categories(body)) | {m.group(1) for m in AGREE_RE.finditer(body)}
    values = {name: rng.choice(spec.placeholders[name].values) for name in sorted(names)}
    template = T.fill_agreement(template, values, spec)
    phrases = [T.fill_agreement(p, values, spec) for p in phrases]
    values = {k: v for k, v in values.items() if k in T.categories(" ".join([template,
                                                                               *phrases]))}
    task = {"task": "fill", "id": req.id, "attempt": req.attempt, "style": req.style,
            "template": template, "style_phrases": phrases, "values": values,
            "slip": req.slip,
            "slip_rules": [r.model_dump(include={"kind", "pattern", "replacement"})
                           for r in spec.slips] if req.slip else [],
            "signature": spec.persona.signature, **_reask(reask)}
    msgs = prompts.messages("fill", spec, task, style_label=style.label,
                            style_description=style.description)
    return msgs, {k: T.value_key(v) for k, v in values.items()}


def parse_fill(content: str, req: FillRequest, values: dict[str, str]) -> FillResult | Failure:
    obj = _json_object(content)
    if isinstance(obj, Failure):
        return obj
    text, slip = obj.get("text"), obj.get("slip")
    if not isinstance(text, str) or not text.strip():
        return Failure("answer lacks a 'text' string", content)
    if slip is not None and not (isinstance(slip, dict) and all(
            isinstance(slip.get(k), str) for k in ("kind", "from", "to"))):
        return Failure("answer's 'slip' is not null or {kind, from, to}", content)
    if slip is not None and not req.slip:
        return Failure("a slip was made where none was asked for", content)
    if slip is not None and slip["to"] not in text:
        return Failure("the reported slip is not in the text", content)
    slip = {k: slip[k] for k in ("kind", "from", "to")} if slip else None
    return FillResult(text=text.strip(), values=values, slip=slip)


# -- stage 3 -------------------------------------------------------------------------------

def question_request(spec: PersonaSpec, req: QuestionRequest, seed: int, reask: int = 0
                     ) -> list[dict] | Failure:
    rng = random.Random(f"{seed}:ask:{req.index}:{req.attempt}")
    keys = req.answer["values"]
    values = lookup_values(spec, keys)
    examples: list[str] = []
    for _ in range(3):
        frame = pick_question_frame(spec, set(keys), rng)
        if frame is None:
            return Failure("no question frame fits the answer's placeholders", retry=False)
        q = render_question(spec, frame, values, rng, lead=req.attempt > 0)
        if q not in examples:
            examples.append(q)
    task = {"task": "questions", "id": req.answer["id"], "attempt": req.attempt,
            "answer": req.answer["text"], "topics": keys, "examples": examples,
            **_reask(reask)}
    return prompts.messages("questions", spec, task)


def parse_question(content: str) -> str | Failure:
    obj = _json_object(content)
    if isinstance(obj, Failure):
        return obj
    q = obj.get("question")
    if not isinstance(q, str) or not q.strip():
        return Failure("answer lacks a 'question' string", content)
    return q.strip()


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
