"""Moderation for the loopback test server: `/v1/moderations`, a Llama Guard chat mode, and
the rewrite task that `persona moderate --fix regenerate` sends to an LLM.

Inputs are flagged by planted markers, `[[flag:<category>]]` with OpenAI's category names
(tests/data/moderation/planted.jsonl carries them); everything else is safe. Answers have
the omni-moderation shape (13 categories with `categories`, `category_scores`,
`category_applied_input_types`). A chat request to a model whose name contains "guard" is
answered like Llama Guard 3: `safe`, or `unsafe` and the S-codes of its markers. Faults:
latency, the error rate (429/500/hangs) and the malformed share of the main server's Config.
"""

from __future__ import annotations

import json
import re
import time

CATEGORIES = (
    "harassment", "harassment/threatening", "hate", "hate/threatening", "illicit",
    "illicit/violent", "self-harm", "self-harm/intent", "self-harm/instructions", "sexual",
    "sexual/minors", "violence", "violence/graphic",
)
MARKER = re.compile(r"\[\[flag:([a-z/-]+)\]\]")
LLAMA_GUARD_CODES = {"violence": "S1", "illicit": "S2", "sexual/minors": "S4", "hate": "S10",
                     "harassment": "S10", "self-harm": "S11", "sexual": "S12"}


def flags(text: str) -> set[str]:
    return {c for c in MARKER.findall(text) if c in CATEGORIES}


def result(text: str) -> dict:
    found = flags(text)
    return {"flagged": bool(found),
            "categories": {c: c in found for c in CATEGORIES},
            "category_scores": {c: 0.97 if c in found else 0.0004 for c in CATEGORIES},
            "category_applied_input_types": {c: ["text"] for c in CATEGORIES}}


def handle_moderations(handler, body: dict) -> None:
    """POST /v1/moderations: one result per input, faults as for chat completions."""
    state, cfg = handler.server.state, handler.server.state.config
    inputs = body.get("input")
    inputs = [inputs] if isinstance(inputs, str) else inputs
    with state.lock:
        state.total += 1
        state.kinds["moderations"] += 1
        state.times.append(time.time())
        state.batch_lines["moderation_inputs"] += len(inputs or [])
    if cfg.latency:
        time.sleep(cfg.latency)
    if not isinstance(inputs, list) or not all(isinstance(x, str) for x in inputs):
        handler._send(400, {"error": {"message": "input must be a string or a list of strings",
                                      "type": "invalid_request_error", "param": "input"}})
        return
    status = handler._fault(cfg, state, body)
    if status:
        state.count(status, "moderations", "")
        return
    results = [result(x) for x in inputs]
    if cfg.malformed_rate and state.draw() < cfg.malformed_rate:
        results = results[:-1]  # one result short: the client must not trust it
    handler._send(200, {"id": f"modr-{state.new_id('m')}", "model": body.get("model", ""),
                        "results": results})
    state.count(200, "moderations", "")


def guard_answer(body: dict) -> str:
    """What Llama Guard 3 answers: `safe`, or `unsafe` and the S-codes of the markers."""
    text = " ".join(str(m.get("content", "")) for m in body.get("messages", []))
    codes = sorted({LLAMA_GUARD_CODES[c] for c in flags(text) if c in LLAMA_GUARD_CODES},
                   key=lambda c: int(c[1:]))
    return "unsafe\n" + ",".join(codes) if codes else "safe"


def guard_completion(body: dict, state) -> dict | None:
    """The chat completion of a guard model (model name contains "guard"), else None. The
    malformed share is drawn per arrival (not per body), so asking again can succeed."""
    if "guard" not in str(body.get("model", "")).lower():
        return None
    content = guard_answer(body)
    if state.config.malformed_rate and state.draw() < state.config.malformed_rate:
        content = "I cannot help with that."  # neither safe nor unsafe
    return {"id": f"chatcmpl-{state.new_id('g')}", "object": "chat.completion",
            "created": int(time.time()), "model": body.get("model", ""),
            "choices": [{"index": 0, "finish_reason": "stop", "logprobs": None,
                         "message": {"role": "assistant", "content": content}}],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}


def rewrite(task: dict) -> dict:
    """The rewrite task: the answer without its sentences that carry a marker (a marker
    follows the sentence it marks)."""
    parts = re.split(r"(?<=[.!?])\s+(?!\[\[flag:)", task.get("answer", ""))
    kept = [p for p in parts if not MARKER.search(p)]
    return {"text": " ".join(kept).strip() or json.dumps("…")}
