"""OpenAI's moderation endpoint (`POST /v1/moderations`, omni-moderation-latest by default).

Many inputs per request (`batch_size`, default 32; OpenAI documents no maximum list length),
requests concurrent and paced (client.py), each input's result cached. The endpoint's own
`flagged` booleans per category are its verdict; `--threshold` compares `category_scores`
instead. The endpoint is free.
"""

from __future__ import annotations

from persona.moderators.base import Verdict
from persona.moderators.client import Client, Job, input_key

DEFAULT_MODEL = "omni-moderation-latest"
BATCH_SIZE = 32


class OpenAIModerator:
    name = "openai"
    heuristic = False

    def __init__(self, *, base_url: str | None = None, model: str | None = None,
                 api_key_env: str = "OPENAI_API_KEY", concurrency: int = 8,
                 rpm: float | None = None, timeout: float = 60.0, max_retries: int = 3,
                 batch_size: int = BATCH_SIZE, cache_dir=None):
        self.model = model or DEFAULT_MODEL
        self.batch_size = batch_size
        self.client = Client(base_url=base_url, api_key_env=api_key_env,
                             concurrency=concurrency, rpm=rpm, timeout=timeout,
                             max_retries=max_retries, cache_dir=cache_dir, model=self.model)

    @property
    def stats(self) -> dict:
        return self.client.stats

    def check(self, texts: list[str], on_progress=None) -> list[Verdict]:
        keys = [input_key(self.model, "moderation", t) for t in texts]

        def jobs(todo: list[int]) -> list[Job]:  # many inputs per request
            return [Job("/moderations", {"model": self.model,
                                          "input": [texts[i] for i in chunk]},
                        [keys[i] for i in chunk], _parse)
                    for chunk in (todo[j:j + self.batch_size]
                                  for j in range(0, len(todo), self.batch_size))]

        return [_verdict(a) for a in self.client.answers(keys, jobs, on_progress)]


def _parse(resp) -> list[dict] | None:
    results = resp.get("results") if isinstance(resp, dict) else None
    if not isinstance(results, list):
        return None
    out = []
    for r in results:
        if not (isinstance(r, dict) and isinstance(r.get("categories"), dict)
                and isinstance(r.get("category_scores"), dict)):
            return None
        out.append({"categories": r["categories"], "category_scores": r["category_scores"]})
    return out


def _verdict(result: dict) -> Verdict:
    scores = {c: float(s) for c, s in result["category_scores"].items()}
    return Verdict(scores, [c for c, f in result["categories"].items() if f])
