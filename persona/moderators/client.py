"""Sending moderation requests: through the request pool (providers/request_pool.py) that
generation uses, so they are concurrent, paced by --rpm with every retry counted, retried and
backed off in our hands, hedged at the end, and stopped early when everything fails.

A job is one request whose answer is parsed into one result per input; every result is cached
under its own input's key (`input_key`) the moment its answer arrives, so a killed run
re-sends only inputs that had no answer, whatever the batching of the rerun (the pool keeps
no cache of its own here: a re-ask sends the very same body). An answer that does not parse
is asked again up to ROUNDS - 1 times; a job still failing then is a ProviderError
(answered inputs stay cached), or, with `strict=False`, comes back to the caller.
"""

from __future__ import annotations

import functools
import json
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from persona.errors import ProviderError
from persona.providers.base import Failure
from persona.providers.llm_cache import RequestCache, request_key
from persona.providers.openai_compat import check_reachable
from persona.providers.request_pool import Item, RequestPool

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
        self.rpm = rpm
        self.cache = RequestCache(cache_dir)
        self.kind, self.model = kind, model
        self.stats = {"requests": 0, "cached": 0, "failed": 0, "malformed": 0}
        self._pool: RequestPool | None = None

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
            strict: bool = True, reasks: int = ROUNDS - 1) -> list[Job]:
        """Send every job (its results land in the cache); a malformed answer is asked again
        up to `reasks` times. Jobs still failing raise ProviderError, or with `strict` False
        come back (the caller asks otherwise)."""
        if not jobs:
            return []
        pool = self._pool_for_run()
        failed: list[Job] = []

        def done(job: Job, item: Item, result) -> None:
            if isinstance(result, Failure):
                self.stats["malformed" if result.retry else "failed"] += 1
                failed.append(job)
                return
            for key, got in zip(job.keys, result, strict=True):
                self.cache.put(key, self.kind, self.model, json.dumps(got), {})
            self.stats["requests"] += 1
            if on_done:
                on_done(len(job.keys))

        async def go():
            for job in jobs:
                item = Item(self.kind, lambda n, body=job.body: dict(body),
                            functools.partial(_parse, job), reasks=reasks,
                            max_tokens=int(job.body.get("max_tokens") or 0), path=job.path,
                            whole=True)
                pool.submit(item, functools.partial(done, job))
            await pool.drain()

        try:
            pool.loop_run(go())
        finally:
            pool.close()
            self.cache.close()
        if failed and strict:
            raise ProviderError(
                f"{len(failed)} moderation request(s) still failing after retries and "
                f"{reasks} re-asks; answered inputs are cached, run again to resume")
        return failed

    def _pool_for_run(self) -> RequestPool:
        if self._pool is None:
            if self.base_url:
                try:
                    check_reachable(self.base_url)
                except ProviderError as e:
                    raise ProviderError(f"cannot reach the moderation server: {e}") from None
            self._pool = RequestPool(base_url=self.base_url, api_key=self._api_key,
                                     model=self.model, concurrency=self.concurrency,
                                     rpm=self.rpm, timeout=self.timeout,
                                     max_retries=self.max_retries, cache=_NoCache())
        return self._pool


class _NoCache:
    """The pool's cache for moderation: none. Results are cached per input above, and a
    malformed answer must be asked again with the very same body (a cache would answer it)."""

    def entries(self):
        return iter(())

    def get(self, key: str) -> None:
        return None

    def put(self, *args, **kwargs) -> None:
        return None

    def close(self) -> None:
        return None


def _parse(job: Job, text: str):
    """One result per input of the job, or a Failure that asks again."""
    try:
        results = job.parse(json.loads(text))
    except ValueError:
        results = None
    if results is None or len(results) != len(job.keys):
        return Failure("malformed moderation answer", text[:300], retry=True)
    return results
