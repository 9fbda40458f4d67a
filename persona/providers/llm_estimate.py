"""The dry run: requests, tokens and cost each LLM stage would take, before spending anything.

Prompts are the real ones, rendered for a sample of slots (the offline provider stands in for
answers that do not exist yet); the expected output is the JSON the offline provider's text
would make. Retries are not included: the stages retry only rejected items.

Grouped requests (write-mode fill and questions, `per_request` K > 1) are counted as they go
out: the slots of one group key (a style and block of slots for fill, a block for questions)
in requests of K, each carrying the static prompt and the key's shared examples once, and the
items' own tasks. `cacheable` is the part of the input that repeats the start of another
request byte for byte: what a server's prefix cache (vLLM's automatic prefix caching) can
serve; OpenAI's cache serves it only from a shared prefix of 1,024 tokens on (`openai_cached`).
"""

from __future__ import annotations

import json
import math
from collections import Counter

from persona.checks.cost import generation_cost
from persona.checks.tokens import count_text, encoding_for_model, estimate_request_tokens
from persona.providers import llm_tasks as tasks
from persona.providers.base import FillRequest, QuestionRequest, TemplateRecord
from persona.providers.offline import OfflineProvider
from persona.spec import PersonaSpec
from persona.stages.fill import slip_schedule, style_schedule, template_schedule
from persona.text import categories, forms_used

SAMPLE = 60
OPENAI_CACHE_MIN, OPENAI_CACHE_STEP = 1024, 128  # OpenAI caches prefixes from 1,024 tokens


def estimate(spec: PersonaSpec, *, count: int, seed: int, model: str,
             templates: int | None, bank: list[TemplateRecord] | None,
             batch_api: bool = False, fill_mode: str = "write",
             per_request: int = tasks.PER_REQUEST) -> list[dict]:
    enc = encoding_for_model(model)[0]
    offline = OfflineProvider()
    rows = []
    if bank is None:  # stage 1 runs: estimate it, and sample stage 2 from the offline bank
        n = templates or spec.grammar.count
        texts = offline.write_templates(spec, n, seed)
        reqs = tasks.templates_requests(spec, n, seed)
        inp = sum(estimate_request_tokens(m, model)[0] for m in reqs)
        out = count_text(json.dumps({"templates": texts}, ensure_ascii=False), enc)
        rows.append(_row("templates", len(reqs), inp, out, model, batch_api,
                         reserved=inp + len(reqs) * tasks.MAX_TOKENS["templates"]))
        bank = [TemplateRecord(f"t{i}", t, categories(t), forms_used(t, spec))
                for i, t in enumerate(texts)]
    styles, slips = style_schedule(spec.style.mix, count, seed), slip_schedule(
        spec.style.slip_rate, count, seed)
    k = min(SAMPLE, count)
    order = list(template_schedule(len(bank), 0, k, seed))
    # Batch API: one request per item (a group of one where items are grouped online)
    K = 1 if batch_api else max(1, per_request)
    fill = _Tally("fill", enc)
    ask = _Tally("questions", enc)
    grouped = fill_mode == "write"
    for i, t in enumerate(order):
        req = FillRequest(i, f"{spec.id}-a{i + 1:06d}", bank[t], styles[i], i in slips)
        res = offline.fill(spec, [req], seed)[0]
        text = getattr(res, "text", "")
        body = text[: len(text) - len(spec.persona.signature)].rstrip()  # sent unsigned
        if grouped:
            fill.member(tasks.fill_member(spec, req, seed)[0], {"id": req.id, "text": body})
        else:
            msgs = tasks.fill_request(spec, req, seed, 0, fill_mode)[0]
            fill.solo(estimate_request_tokens(msgs, model)[0],
                      count_text(json.dumps({"text": body}, ensure_ascii=False), enc))
        answer = {"id": req.id, "text": text, "values": getattr(res, "values", {})}
        task = tasks.question_member(spec, QuestionRequest(i, answer), seed)
        if isinstance(task, dict):
            q = offline.ask(spec, [QuestionRequest(i, answer)], seed)[0]
            ask.member(task, {"id": req.id, "question": str(q)})
    fill_keys = Counter(tasks.fill_group_key(FillRequest(i, "", bank[0], styles[i], False))
                        for i in range(count))
    ask_keys = Counter(("questions", i // tasks.GROUP_BLOCK) for i in range(count))

    def shared(key: tuple) -> list[dict]:
        if key[0] == "fill":
            part = tasks.fill_shared(spec, seed, key[1], key[2])
        else:
            part = tasks.question_shared(spec, seed, key[1])
        return tasks.group_messages(spec, key[0], part, [])

    for tally, keys in ((fill, fill_keys), (ask, ask_keys)):
        if tally.members or tally.solos:
            rows.append(tally.row(count, keys, K, shared, model, batch_api))
    return rows


class _Tally:
    """Sampled items of a stage: their own tasks' tokens (grouped) or whole requests' (solo)."""

    def __init__(self, kind: str, enc):
        self.kind, self.enc = kind, enc
        self.members = 0
        self.task_tokens = self.answer_tokens = 0
        self.solo_in = self.solo_out = self.solos = 0

    def member(self, task: dict, answer: dict) -> None:
        self.members += 1
        self.task_tokens += count_text(json.dumps(task, ensure_ascii=False) + ",\n", self.enc)
        self.answer_tokens += count_text(json.dumps(answer, ensure_ascii=False) + ", ", self.enc)

    def solo(self, inp: int, out: int) -> None:
        self.solos += 1
        self.solo_in += inp
        self.solo_out += out

    def row(self, count: int, keys: Counter, K: int, shared, model: str, batch_api: bool
            ) -> dict:
        if self.solos:  # strict mode: one request per item, as before
            scale = count / self.solos
            return _row(self.kind, count, self.solo_in * scale, self.solo_out * scale, model,
                        batch_api, reserved=self.solo_in * scale
                        + count * tasks.MAX_TOKENS[self.kind])
        per_task = self.task_tokens / self.members
        per_answer = self.answer_tokens / self.members
        requests = inp = cacheable = openai_cached = 0.0
        for key, n in keys.items():
            head = estimate_request_tokens(shared(key), model)[0]
            groups = math.ceil(n / K)
            requests += groups
            inp += groups * head + n * per_task
            # every request but the key's first repeats its start (prompt + shared examples)
            cacheable += (groups - 1) * head
            if head >= OPENAI_CACHE_MIN:
                openai_cached += (groups - 1) * (head // OPENAI_CACHE_STEP * OPENAI_CACHE_STEP)
        out = count * per_answer + requests * 6  # each answer: its items and the JSON around
        reserved = inp + count * tasks.MEMBER_TOKENS[self.kind]
        return _row(self.kind, int(requests), inp, out, model, batch_api, reserved=reserved,
                    cacheable=cacheable, openai_cached=openai_cached, per_request=K)


def _row(stage: str, requests: int, inp: float, out: float, model: str, batch_api: bool,
         reserved: float = 0.0, cacheable: float = 0.0, openai_cached: float = 0.0,
         per_request: int = 1) -> dict:
    inp, out = round(inp), round(out)
    cached = round(openai_cached)
    return {"stage": stage, "requests": requests, "per_request": per_request,
            "input_tokens": inp, "output_tokens": out,
            "cacheable_tokens": round(cacheable), "openai_cached_tokens": cached,
            # what a tokens-per-minute limit counts: prompt + the max_tokens asked for
            "tpm_tokens": round(reserved),
            "cost_usd": generation_cost(model, inp, out, batch_api=batch_api,
                                        cached_tokens=cached)}
