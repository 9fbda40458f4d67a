"""The dry run: requests, tokens and cost each LLM stage would take, before spending anything.

Prompts are the real ones, rendered for a sample of slots (the offline provider stands in for
answers that do not exist yet); the expected output is the JSON the offline provider's text
would make. Retries are not included: the stages retry only rejected items.
"""

from __future__ import annotations

import json

from persona.checks.cost import generation_cost
from persona.checks.tokens import count_text, encoding_for_model, estimate_request_tokens
from persona.providers import llm_tasks as tasks
from persona.providers.base import FillRequest, QuestionRequest, TemplateRecord
from persona.providers.offline import OfflineProvider
from persona.spec import PersonaSpec
from persona.stages.fill import slip_schedule, style_schedule, template_schedule
from persona.text import categories, forms_used

SAMPLE = 60


def estimate(spec: PersonaSpec, *, count: int, seed: int, model: str,
             templates: int | None, bank: list[TemplateRecord] | None,
             batch_api: bool = False, fill_mode: str = "write") -> list[dict]:
    enc = encoding_for_model(model)[0]
    offline = OfflineProvider()
    rows = []
    if bank is None:  # stage 1 runs: estimate it, and sample stage 2 from the offline bank
        n = templates or spec.grammar.count
        texts = offline.write_templates(spec, n, seed)
        reqs = tasks.templates_requests(spec, n, seed)
        inp = sum(estimate_request_tokens(m, model)[0] for m in reqs)
        out = count_text(json.dumps({"templates": texts}, ensure_ascii=False), enc)
        rows.append(_row("templates", len(reqs), inp, out, model, batch_api))
        bank = [TemplateRecord(f"t{i}", t, categories(t), forms_used(t, spec))
                for i, t in enumerate(texts)]
    styles, slips = style_schedule(spec.style.mix, count, seed), slip_schedule(
        spec.style.slip_rate, count, seed)
    k = min(SAMPLE, count)
    order = list(template_schedule(len(bank), 0, k, seed))
    fill_in = fill_out = ask_in = ask_out = 0
    for i, t in enumerate(order):
        req = FillRequest(i, f"{spec.id}-a{i + 1:06d}", bank[t], styles[i], i in slips)
        fill_in += estimate_request_tokens(tasks.fill_request(spec, req, seed, 0, fill_mode)[0],
                                           model)[0]
        res = offline.fill(spec, [req], seed)[0]
        text = getattr(res, "text", "")
        body = text[: len(text) - len(spec.persona.signature)].rstrip()  # sent unsigned
        fill_out += count_text(json.dumps({"text": body}, ensure_ascii=False), enc)
        answer = {"id": req.id, "text": text, "values": getattr(res, "values", {})}
        msgs = tasks.question_request(spec, QuestionRequest(i, answer), seed)
        if isinstance(msgs, list):
            ask_in += estimate_request_tokens(msgs, model)[0]
            q = offline.ask(spec, [QuestionRequest(i, answer)], seed)[0]
            ask_out += count_text(json.dumps({"question": str(q)}, ensure_ascii=False), enc)
    scale = count / k
    rows.append(_row("fill", count, fill_in * scale, fill_out * scale, model, batch_api))
    rows.append(_row("questions", count, ask_in * scale, ask_out * scale, model, batch_api))
    return rows


def _row(stage: str, requests: int, inp: float, out: float, model: str, batch_api: bool) -> dict:
    inp, out = round(inp), round(out)
    return {"stage": stage, "requests": requests, "input_tokens": inp, "output_tokens": out,
            "cost_usd": generation_cost(model, inp, out, batch_api=batch_api)}
