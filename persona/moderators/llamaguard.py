"""Llama Guard 3 behind any OpenAI-compatible chat server (vLLM, llama.cpp, Ollama).

Each text is sent as one user turn; the server's chat template wraps it in Llama Guard's
classification prompt, and the model answers `safe`, or `unsafe` and a line of S-codes. The
codes are mapped to Llama Guard's category names (score 1.0 per code: the model gives no
scores). An answer that is neither is malformed and asked again (client.py).
"""

from __future__ import annotations

import re

from persona.moderators.base import Verdict
from persona.moderators.client import Client, Job, input_key

DEFAULT_MODEL = "meta-llama/Llama-Guard-3-8B"
S_CODES = {
    "S1": "violent crimes", "S2": "non-violent crimes", "S3": "sex-related crimes",
    "S4": "child sexual exploitation", "S5": "defamation", "S6": "specialized advice",
    "S7": "privacy", "S8": "intellectual property", "S9": "indiscriminate weapons",
    "S10": "hate", "S11": "suicide & self-harm", "S12": "sexual content", "S13": "elections",
    "S14": "code interpreter abuse",
}
_CODE = re.compile(r"\bS(\d{1,2})\b")


class LlamaGuard:
    name = "llamaguard"
    heuristic = False

    def __init__(self, *, base_url: str | None = None, model: str | None = None,
                 api_key_env: str = "OPENAI_API_KEY", concurrency: int = 8,
                 rpm: float | None = None, timeout: float = 60.0, max_retries: int = 3,
                 cache_dir=None, **_ignored):
        self.model = model or DEFAULT_MODEL
        self.client = Client(base_url=base_url, api_key_env=api_key_env,
                             concurrency=concurrency, rpm=rpm, timeout=timeout,
                             max_retries=max_retries, cache_dir=cache_dir, model=self.model,
                             kind="llamaguard")

    @property
    def stats(self) -> dict:
        return self.client.stats

    def check(self, texts: list[str], on_progress=None) -> list[Verdict]:
        keys = [input_key(self.model, "llamaguard", t) for t in texts]

        def jobs(todo: list[int]) -> list[Job]:  # one chat request per input
            return [Job("/chat/completions",
                        {"model": self.model, "temperature": 0, "max_tokens": 20,
                         "messages": [{"role": "user", "content": texts[i]}]},
                        [keys[i]], _parse) for i in todo]

        return [_verdict(a) for a in self.client.answers(keys, jobs, on_progress)]


def parse_answer(content: str) -> list[str] | None:
    """Llama Guard's answer as its S-codes ([] for safe), or None when it is neither."""
    lines = [x.strip() for x in content.strip().splitlines() if x.strip()]
    if not lines:
        return None
    if lines[0].lower() == "safe":
        return []
    if lines[0].lower() != "unsafe":
        return None
    codes = [f"S{n}" for n in _CODE.findall(" ".join(lines[1:]))]
    return codes if codes and all(c in S_CODES for c in codes) else None


def _parse(resp) -> list[dict] | None:
    try:
        content = resp["choices"][0]["message"]["content"] or ""
    except (KeyError, IndexError, TypeError):
        return None
    codes = parse_answer(content)
    return None if codes is None else [{"codes": codes}]


def _verdict(result: dict) -> Verdict:
    names = [S_CODES[c] for c in result["codes"]]
    return Verdict({n: 1.0 for n in names}, names)
