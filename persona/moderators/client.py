"""Sending moderation requests: concurrent, paced, retried, cached. A small seam over the
pieces the generation provider uses: the SDK's retries and backoff (429/5xx, Retry-After),
`RateLimiter` for --rpm and `RequestCache` for resume.

A job is one request whose answer is parsed into one result per input; every result is cached
under its own input's key the moment its answer arrives, so a killed run re-sends only inputs
that had no answer, whatever the batching of the rerun. A request that still fails after the
SDK's retries, or whose answer does not parse, is sent again in the next round (up to
ROUNDS); what then still fails is a ProviderError: the answered inputs stay cached.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from persona.errors import ProviderError
from persona.providers.llm_cache import RequestCache, request_key
from persona.providers.rate_limit import RateLimiter

log = logging.getLogger(__name__)
ROUNDS = 5


@dataclass
class Job:
    path: str  # "/moderations" or "/chat/completions"
    body: dict
    keys: list[str]  # the cache key of each input the answer covers
    parse: Callable[[Any], list[dict] | None]  # answer -> one result per key, None: malformed


def input_key(model: str, kind: str, text: str) -> str:
    """The cache key of one input (hash of model, kind and text; the text is not stored)."""
    return request_key(model, [{"role": kind, "content": text}], {"kind": kind})


class Client:
    def __init__(self, *, base_url: str | None, api_key_env: str = "OPENAI_API_KEY",
                 concurrency: int = 8, rpm: float | None = None, timeout: float = 60.0,
                 max_retries: int = 3, cache_dir: Path | None = None, kind: str = "moderation",
                 model: str = ""):
        self.base_url = base_url or os.environ.get("OPENAI_BASE_URL") or None
        self._api_key = os.environ.get(api_key_env)
        if not self._api_key:
            if not self.base_url:
                raise ProviderError(f"no API key: set {api_key_env}, or pass --base-url for a "
                                    "local server that needs none")
            self._api_key = "not-needed"
        self.concurrency, self.timeout, self.max_retries = concurrency, timeout, max_retries
        self.limiter = RateLimiter(rpm)
        self.cache = RequestCache(cache_dir)
        self.kind, self.model = kind, model
        self.stats = {"requests": 0, "cached": 0, "failed": 0, "malformed": 0}

    def __repr__(self) -> str:  # no key in reprs or logs
        return f"Client(base_url={self.base_url!r})"

    def cached(self, key: str) -> dict | None:
        hit = self.cache.get(key)
        return None if hit is None else json.loads(hit["content"])

    def answers(self, keys: list[str], make_jobs: Callable[[list[int]], list[Job]],
                on_progress: Callable[[int, int], None] | None = None) -> list[dict | None]:
        """The cached answer of every input key; `make_jobs(todo)` builds the requests for
        the inputs (indices into `keys`) the cache does not hold, which are sent first."""
        todo = [i for i, k in enumerate(keys) if self.cached(k) is None]
        self.stats["cached"] += len(keys) - len(todo)
        done = [len(keys) - len(todo)]

        def tick(n: int) -> None:
            done[0] += n
            if on_progress:
                on_progress(done[0], len(keys))

        self.run(make_jobs(todo), tick)
        return [self.cached(k) for k in keys]

    def run(self, jobs: list[Job], on_done: Callable[[int], None] | None = None,
            strict: bool = True) -> list[Job]:
        """Send every job (its results land in the cache). Jobs still failing after ROUNDS
        raise ProviderError, or with `strict` False come back (the caller asks otherwise)."""
        pending = jobs
        try:
            for _ in range(ROUNDS):
                if not pending:
                    return []
                pending = asyncio.run(self._round(pending, on_done))
        finally:
            self.cache.close()
        if pending and strict:
            raise ProviderError(
                f"{len(pending)} moderation request(s) still failing after {ROUNDS} rounds of "
                "retries; answered inputs are cached, run again to resume")
        return pending

    async def _round(self, jobs: list[Job], on_done) -> list[Job]:
        from openai import AsyncOpenAI  # heavy: imported only when a request is sent

        client = AsyncOpenAI(base_url=self.base_url, api_key=self._api_key,
                             max_retries=self.max_retries, timeout=self.timeout)
        sem = asyncio.Semaphore(self.concurrency)
        try:
            ok = await asyncio.gather(*(self._one(client, sem, j, on_done) for j in jobs))
        finally:
            await client.close()
        return [j for j, good in zip(jobs, ok, strict=True) if not good]

    async def _one(self, client, sem, job: Job, on_done) -> bool:
        import openai

        async with sem:
            await self.limiter.wait()
            try:
                resp = await client.post(job.path, cast_to=object, body=job.body)
            except openai.APIConnectionError as e:
                where = self.base_url or "api.openai.com"
                raise ProviderError(f"cannot reach the moderation server at {where}: "
                                    f"{type(e).__name__}") from None
            except (openai.AuthenticationError, openai.PermissionDeniedError,
                    openai.NotFoundError, openai.BadRequestError) as e:
                raise ProviderError(f"{type(e).__name__}: {_short(e)}") from None
            except (openai.APIStatusError, openai.APITimeoutError) as e:
                self.stats["failed"] += 1
                log.info("moderation request failed after retries: %s", type(e).__name__)
                return False
        results = job.parse(resp)
        if results is None or len(results) != len(job.keys):
            self.stats["malformed"] += 1
            return False
        for key, result in zip(job.keys, results, strict=True):
            self.cache.put(key, self.kind, self.model, json.dumps(result), {})
        self.stats["requests"] += 1
        if on_done:
            on_done(len(job.keys))
        return True


def _short(e: Exception) -> str:
    return str(getattr(e, "message", e)).splitlines()[0][:300]
