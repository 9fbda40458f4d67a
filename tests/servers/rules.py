"""OpenAI's rules for today's models, enforced by the loopback server (`openai_rules`).

Written from OpenAI's documentation and the errors its API returns (as quoted in public
issues, 2025-2026), independently of persona/data/models.toml, so a test that passes here
did not just agree with itself:

- reasoning models (gpt-5.x, gpt-6, o-series) refuse `max_tokens` (400
  `unsupported_parameter`, "Use 'max_completion_tokens' instead"), a temperature other than the
  default 1 where the family takes none (`unsupported_value`; gpt-5.1/5.2/5.4 take one only
  with reasoning_effort "none"), and a reasoning_effort the family does not have
  (`unsupported_value`, naming the supported ones); every model refuses a parameter the API
  does not know ("Unrecognized request argument supplied");
- reasoning spends tokens by effort (its default where none is sent), billed within
  `completion_tokens` and reported in `completion_tokens_details.reasoning_tokens`; when
  reasoning and answer pass `max_completion_tokens`, the answer is cut (`finish_reason`
  "length"; empty when reasoning ate it all);
- the prompt cache: a prompt of 1,024 tokens or more whose prefix was seen before reports the
  seen prefix, in 128-token steps, as `prompt_tokens_details.cached_tokens`.
"""

from __future__ import annotations

import threading

# (name prefixes, reasoning, temperature: "any" | "none-only" | "default", efforts, default)
FAMILIES = [
    # a model newer than persona's table: what a release between two persona versions does
    (("gpt-7",), True, "default", ("low", "medium", "high"), "medium"),
    (("gpt-6",), True, "default", ("low", "medium", "high", "xhigh"), "medium"),
    (("gpt-5.6",), True, "default", ("none", "low", "medium", "high", "xhigh", "max"),
     "medium"),
    (("gpt-5.5",), True, "default", ("none", "low", "medium", "high", "xhigh"), "medium"),
    (("gpt-5.4", "gpt-5.2"), True, "none-only", ("none", "low", "medium", "high", "xhigh"),
     "none"),
    (("gpt-5.1",), True, "none-only", ("none", "low", "medium", "high"), "none"),
    (("gpt-5",), True, "default", ("minimal", "low", "medium", "high"), "medium"),
    (("o1", "o3", "o4"), True, "default", ("low", "medium", "high"), "medium"),
]
SPEND = {"none": 0, "minimal": 40, "low": 300, "medium": 1200, "high": 9000, "xhigh": 20000,
         "max": 40000}
KNOWN = {"model", "messages", "temperature", "top_p", "max_tokens", "max_completion_tokens",
         "response_format", "reasoning_effort", "stream", "stream_options", "n", "stop", "seed",
         "presence_penalty", "frequency_penalty", "logprobs", "top_logprobs", "logit_bias",
         "user", "metadata", "store", "verbosity", "prompt_cache_key", "tools", "tool_choice",
         "parallel_tool_calls", "service_tier", "modalities", "audio", "prediction",
         "safety_identifier", "prompt_cache_retention", "web_search_options"}


def family(model: str):
    name = model.lower().removeprefix("ft:")
    best = None
    for fam in FAMILIES:
        for prefix in fam[0]:
            if (name == prefix or name.startswith((prefix + "-", prefix + ":"))) and (
                    best is None or len(prefix) > best[0]):
                best = (len(prefix), fam)
    return best[1] if best else None


def _error(message: str, param: str | None, code: str | None) -> dict:
    return {"error": {"message": message, "type": "invalid_request_error", "param": param,
                      "code": code}}


def check(body: dict) -> dict | None:
    """OpenAI's 400 body for a request the model refuses, or None."""
    for key in body:
        if key not in KNOWN:
            return _error(f"Unrecognized request argument supplied: {key}", None, None)
    fam = family(str(body.get("model", "")))
    if fam is None:
        return None
    _, reasoning, temperature, efforts, default = fam
    if reasoning and "max_tokens" in body:
        return _error("Unsupported parameter: 'max_tokens' is not supported with this model. "
                      "Use 'max_completion_tokens' instead.", "max_tokens",
                      "unsupported_parameter")
    effort = body.get("reasoning_effort", default)
    if "reasoning_effort" in body and effort not in efforts:
        listed = ", ".join(f"'{e}'" for e in efforts[:-1]) + f", and '{efforts[-1]}'"
        return _error(f"Unsupported value: 'reasoning_effort' does not support '{effort}' "
                      f"with this model. Supported values are: {listed}.",
                      "reasoning_effort", "unsupported_value")
    t = body.get("temperature")
    if t is not None and t != 1 and (temperature == "default" or (
            temperature == "none-only" and effort != "none")):
        return _error(f"Unsupported value: 'temperature' does not support {t} with this "
                      "model. Only the default (1) value is supported.", "temperature",
                      "unsupported_value")
    return None


class PromptCache:
    """Prefixes of prompts seen, in 128-token steps from 1,024 on (per model)."""

    def __init__(self):
        self.seen: set[tuple[str, int, int]] = set()
        self.lock = threading.Lock()

    def cached(self, model: str, ids: list[int]) -> int:
        steps = len(ids) // 128
        hashes = [(model, k, hash(tuple(ids[:k * 128]))) for k in range(8, steps + 1)]
        with self.lock:
            hit = max((k * 128 for (m, k, h) in hashes if (m, k, h) in self.seen), default=0)
            self.seen.update(hashes)
        return hit


def apply(body: dict, completion: dict, cache: PromptCache) -> dict:
    """Spend reasoning tokens, cut what passes the limit, report cached input."""
    from persona.checks.tokens import get_encoding

    fam = family(str(body.get("model", "")))
    usage = completion["usage"]
    enc = get_encoding("o200k_base")
    text = "".join(f"<{m.get('role')}>{m.get('content')}" for m in body.get("messages", [])
                   if isinstance(m, dict))
    cached = cache.cached(str(body.get("model")), enc.encode_ordinary(text))
    if cached:
        usage["prompt_tokens_details"] = {"cached_tokens": min(cached, usage["prompt_tokens"])}
    if fam is None or not fam[1]:
        return completion
    effort = body.get("reasoning_effort", fam[4])
    spend = SPEND.get(effort, 0)
    limit = body.get("max_completion_tokens")
    choice = completion["choices"][0]
    answer = usage["completion_tokens"]
    if limit is not None and spend + answer > limit:
        keep = max(0, limit - spend)
        content = choice["message"]["content"] or ""
        choice["message"]["content"] = content[: keep * 3] if keep else ""
        choice["finish_reason"] = "length"
        spend, answer = min(spend, limit), keep
    usage["completion_tokens"] = spend + answer
    usage["completion_tokens_details"] = {"reasoning_tokens": spend}
    usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
    return completion
