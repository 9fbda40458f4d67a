"""The OpenAI-compatible provider: any chat-completions server through the official SDK.

One request per item, sent concurrently with `AsyncOpenAI` (a semaphore caps requests in
flight, a limiter paces them under --rpm/--tpm). The SDK retries 429/5xx/timeouts with backoff
and honours Retry-After; what still fails comes back as a Failure and the stage retries the
item with its next attempt. A malformed answer (one its parse turns into a Failure) is asked
again at once, within the same call, up to MAX_REASKS times: each re-ask is its own request
(the task carries `reask: n`, so its own cache key), and a rerun replays the same sequence
from the cache. A stage round thus no longer waits a whole extra round (and its slowest
request) for every malformed fifth; the re-asks are counted (`stats["malformed_reasked"]`).
Every answer is written to the request cache the moment it arrives, so a rerun sends only
what had no answer. The API key lives in the client only: it is never logged, cached or put
in an error message. With `batch_api`, each round goes through the Batch API instead
(openai_batch.py), and a malformed answer waits for the stage's next round (a new batch).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from persona.errors import BudgetExceeded, ProviderError
from persona.providers import llm_tasks as tasks
from persona.providers.base import Failure, FillRequest, FillResult, QuestionRequest
from persona.providers.llm_cache import RequestCache, request_key
from persona.providers.rate_limit import RateLimiter
from persona.spec import PersonaSpec

log = logging.getLogger(__name__)

# Makes one request's messages (for re-ask n, 0 the first ask) when a slot is free, or the
# Failure that keeps it unsent.
Build = Callable[[int], "list[dict] | Failure"]
# Reads an answer: the item, or the Failure that makes it malformed.
Parse = Callable[[str], Any]

TEMPLATE_ATTEMPTS = 4
# Extra asks per item and call for a malformed answer, before its Failure goes to the stage.
MAX_REASKS = 3
# httpx's connection pool scans every pending request and connection on each state change
# (cost grows with the square of requests in flight): at 64 in flight one pool cost ~20 % of
# our CPU per request. Several clients of 16 keep each scan short.
CONNECTIONS_PER_CLIENT = 16


class OpenAICompatProvider:
    name = "openai"

    def __init__(self, *, base_url: str | None = None, model: str = "gpt-4o-mini",
                 api_key_env: str = "OPENAI_API_KEY", concurrency: int = 16,
                 rpm: float | None = None, tpm: float | None = None,
                 max_cost: float | None = None, cache_dir=None, timeout: float = 60.0,
                 max_retries: int = 5, monitor: Callable[[dict], None] | None = None,
                 batch_api: bool = False, batch_dir=None):
        self.base_url = base_url or os.environ.get("OPENAI_BASE_URL") or None
        self._api_key = os.environ.get(api_key_env)
        if not self._api_key:
            if not self.base_url:
                raise ProviderError(f"no API key: set {api_key_env}, or pass --base-url for a "
                                    "local server that needs none")
            self._api_key = "not-needed"  # local servers ignore it; the SDK wants one
        self.model = model
        self.concurrency = concurrency
        self.timeout, self.max_retries = timeout, max_retries
        self.limiter = RateLimiter(rpm, tpm)
        self.max_cost = max_cost
        self.cache = RequestCache(cache_dir)
        self.batch_api = batch_api
        self.batch_dir = Path(batch_dir) if batch_dir else Path(cache_dir or ".") / "batches"
        self.monitor = monitor
        self.structured = True  # json_schema response_format until the server refuses it
        # Request parameters of plain-text kinds (the bench's answers, its judge): used as is,
        # no response_format, and their max_tokens books the --max-cost reservation.
        self.kind_params: dict[str, dict] = {}
        self._price = _price_of(model)
        self._batch_discount = _batch_discount()
        if max_cost is not None and self._price is None:
            raise ProviderError(f"--max-cost needs the price of model {model!r}, which the "
                                "price table lacks")
        self.in_flight = 0
        self.stats = {"requests": 0, "cached": 0, "failed": 0, "malformed_reasked": 0,
                      "prompt_tokens": 0, "completion_tokens": 0}
        self.spent = sum(self.cost(e["usage"], e.get("batch", False))
                         for e in self.cache.entries.values())
        self._reserved = 0.0
        self._stopped = False
        # One event loop and one client for all rounds: keep-alive connections carry over,
        # so a round of 300 does not start with 64 new connections and a new client.
        self._runner: asyncio.Runner | None = None
        self._clients: list = []

    def __repr__(self) -> str:  # no key in reprs, tracebacks or logs
        return f"OpenAICompatProvider(model={self.model!r}, base_url={self.base_url!r})"

    # -- the Provider protocol ---------------------------------------------------------------
    def write_templates(self, spec: PersonaSpec, count: int, seed: int) -> list[str | Failure]:
        """Template texts; a request still failing after the last attempt comes back as its
        Failure, so the stage files it under invalid/templates/ with its reason."""
        out: list[str | Failure] = []
        pending = list(range(-(-count // tasks.TEMPLATES_PER_REQUEST)))
        last: dict[int, Failure] = {}
        for attempt in range(TEMPLATE_ATTEMPTS):
            requests = tasks.templates_requests(spec, count, seed, attempt)
            msgs = [requests[i] for i in pending]
            retry = []
            # No re-ask within the call: the next attempt is the re-ask (new examples).
            builds = [functools.partial(_same, m) for m in msgs]
            results = self._run("templates", builds, [tasks.parse_templates] * len(msgs),
                                reask=False)
            for i, got in zip(pending, results, strict=True):
                if isinstance(got, Failure):
                    log.info("templates request %d: %s", i, got.reason)
                    retry.append(i)
                    last[i] = got
                else:
                    out.extend(got)
            pending = retry
            if not pending:
                break
        return out + [last[i] for i in pending]

    def fill(self, spec: PersonaSpec, requests: list[FillRequest], seed: int
             ) -> list[FillResult | Failure]:
        values: list[dict] = [{} for _ in requests]

        def build(i: int, reask: int) -> list[dict]:
            messages, values[i] = tasks.fill_request(spec, requests[i], seed, reask)
            return messages

        def parse(i: int, content: str) -> FillResult | Failure:
            return tasks.parse_fill(content, requests[i], values[i])

        n = range(len(requests))
        return self._run("fill", [functools.partial(build, i) for i in n],
                         [functools.partial(parse, i) for i in n])

    def ask(self, spec: PersonaSpec, requests: list[QuestionRequest], seed: int
            ) -> list[str | Failure]:
        builds = [functools.partial(_question, spec, r, seed) for r in requests]
        return self._run("questions", builds, [tasks.parse_question] * len(requests))

    def complete(self, kind: str, messages: list[list[dict]], parse: Parse | None = None
                 ) -> list:
        """Plain chat completions of `kind` (its parameters in `kind_params`): the content,
        or `parse(content)` (a Failure with retry=True re-asks), or the Failure of sending."""
        builds = [functools.partial(_same, m) for m in messages]
        return self._run(kind, builds, [parse or _content] * len(messages),
                         reask=parse is not None)

    # -- money -------------------------------------------------------------------------------
    def cost(self, usage: dict, batch: bool = False) -> float:
        if self._price is None:
            return 0.0
        usd = (usage.get("prompt_tokens", 0) * self._price[0]
               + usage.get("completion_tokens", 0) * self._price[1]) / 1e6
        return usd * (1 - self._batch_discount) if batch else usd

    def reserve_batch(self, kind: str, messages: list[list[dict]]) -> None:
        """Refuse a batch whose worst case (prompts + max_tokens each) passes --max-cost."""
        if self.max_cost is None:
            return
        worst = self.cost({"prompt_tokens": sum(_prompt_tokens(m, self.model) for m in messages),
                           "completion_tokens": tasks.MAX_TOKENS[kind] * len(messages)},
                          batch=True)
        if self.spent + worst > self.max_cost:
            raise BudgetExceeded(
                f"stopped before --max-cost {self.max_cost:g} USD would be exceeded: the next "
                f"batch may cost up to {worst:.4f} USD (spent {self.spent:.4f} USD); finished "
                "batches are kept, rerun with a higher --max-cost to go on")

    def _reserve(self, kind: str, messages: list[dict]) -> float:
        """Book the most this request can cost (prompt + max_tokens); refuse past --max-cost."""
        if self.max_cost is None:
            return 0.0
        worst = self.cost({"prompt_tokens": _prompt_tokens(messages, self.model),
                           "completion_tokens": self._max_tokens(kind)})
        if self.spent + self._reserved + worst > self.max_cost:
            self._stopped = True
            raise BudgetExceeded(
                f"stopped before --max-cost {self.max_cost:g} USD would be exceeded "
                f"(spent {self.spent:.4f} USD); finished batches are kept, rerun with a "
                "higher --max-cost to go on")
        self._reserved += worst
        return worst

    # -- sending -----------------------------------------------------------------------------
    def _run(self, kind: str, builds: list[Build], parses: list[Parse], reask: bool = True
             ) -> list:
        """Send the request each `build(0)` makes (or pass on the Failure it returns) and
        parse its answer; re-ask a malformed one (online mode, `reask`) at once."""
        if not builds:
            return []
        try:
            if self.batch_api:  # a round is a batch: malformed answers wait for the next one
                from persona.providers import openai_batch

                built = [b(0) for b in builds]
                sendable = [m for m in built if not isinstance(m, Failure)]
                answers = iter(openai_batch.run_round(self, kind, sendable))
                contents = [m if isinstance(m, Failure) else next(answers) for m in built]
                return [c if isinstance(c, Failure) else p(c)
                        for c, p in zip(contents, parses, strict=True)]
            if self._runner is None:
                self._runner = asyncio.Runner()
            return self._runner.run(self._gather(kind, builds, parses,
                                                 MAX_REASKS if reask else 0))
        finally:
            self.cache.close()  # fsync what this round answered

    async def _gather(self, kind: str, builds: list[Build], parses: list[Parse],
                      reasks: int) -> list:
        if not self._clients:
            from openai import AsyncOpenAI  # heavy: imported only when a request is sent

            self._clients = [AsyncOpenAI(base_url=self.base_url, api_key=self._api_key,
                                         max_retries=self.max_retries, timeout=self.timeout)
                             for _ in range(-(-self.concurrency // CONNECTIONS_PER_CLIENT))]
        sem = asyncio.Semaphore(self.concurrency)
        n = len(self._clients)
        jobs = [asyncio.ensure_future(self._one(self._clients[i % n], sem, kind, b, p, reasks))
                for i, (b, p) in enumerate(zip(builds, parses, strict=True))]
        try:
            return await asyncio.gather(*jobs)
        except BaseException:  # BudgetExceeded, a fatal error: stop the rest of the round
            for job in jobs:
                job.cancel()
            await asyncio.gather(*jobs, return_exceptions=True)
            raise

    def close(self) -> None:
        """Close the connections and the event loop kept between rounds."""
        if self._runner is not None:
            for client in self._clients:
                self._runner.run(client.close())
            self._runner.close()
        self._runner, self._clients = None, []

    def _max_tokens(self, kind: str) -> int:
        if kind in self.kind_params:
            return self.kind_params[kind].get("max_tokens", 512)
        return tasks.MAX_TOKENS[kind]

    def _params(self, kind: str) -> dict:
        if kind in self.kind_params:
            return dict(self.kind_params[kind])
        params = {"temperature": 0.9, "max_tokens": tasks.MAX_TOKENS[kind]}
        if self.structured:
            params["response_format"] = {"type": "json_schema", "json_schema": {
                "name": kind, "strict": True, "schema": tasks.SCHEMAS[kind]}}
        return params

    async def _one(self, client, sem: asyncio.Semaphore, kind: str, build: Build,
                   parse: Parse, reasks: int):
        """One item: its answer parsed, after up to `reasks` re-asks of malformed answers."""
        async with sem:
            for reask in range(reasks + 1):
                # The prompt is built here, once a slot is free: the first requests leave at
                # once instead of after the whole round's prompts are rendered.
                messages = build(reask)
                if isinstance(messages, Failure):
                    return messages
                content = await self._send(client, kind, messages, reask)
                if isinstance(content, Failure):  # the server's, after the SDK's retries
                    return content
                got = parse(content)
                if not (isinstance(got, Failure) and got.retry) or reask == reasks:
                    return got
                self.stats["malformed_reasked"] += 1
                log.debug("%s: malformed answer (%s), asking again", kind, got.reason)

    async def _send(self, client, kind: str, messages: list[dict], reask: int
                    ) -> str | Failure:
        """The answer's content, from the cache or the server, or the Failure of sending."""
        import openai

        while True:
            params = self._params(kind)
            key = request_key(self.model, messages, params)
            hit = self.cache.get(key)
            if hit is not None:
                self.stats["cached"] += 1
                self.notify(kind)
                return hit["content"]
            if self._stopped:
                raise BudgetExceeded("stopped: --max-cost reached")
            booked = self._reserve(kind, messages)
            tokens = (_prompt_tokens(messages, self.model) + self._max_tokens(kind)
                      if self.limiter.tpm else 0)
            await self.limiter.wait(tokens)
            self.in_flight += 1
            self.notify(kind)
            try:
                # client.post, not chat.completions.create: the latter walks the whole
                # body through the SDK's TypedDict transform and builds a pydantic model
                # of the answer, ~40 % of our CPU per request. Our body is plain JSON and
                # we read one field; the SDK still retries, backs off and raises its errors.
                resp = await client.post("/chat/completions", cast_to=object, body={
                    "model": self.model, "messages": messages, **params})
            except openai.BadRequestError as e:
                if "response_format" in params and "response_format" in str(e):
                    log.info("server refuses json_schema output; parsing plain JSON")
                    self.structured = False
                    continue
                raise ProviderError(f"the server refused a request: {_short(e)}") from None
            except (openai.AuthenticationError, openai.PermissionDeniedError,
                    openai.NotFoundError) as e:
                raise ProviderError(f"{type(e).__name__}: {_short(e)}") from None
            except (openai.APIStatusError, openai.APITimeoutError,
                    openai.APIConnectionError) as e:
                self.stats["failed"] += 1
                return Failure(f"server error after retries: {type(e).__name__}")
            finally:
                self.in_flight -= 1
                self._reserved -= booked
            return self._answered(kind, key, resp, reask)

    def _answered(self, kind: str, key: str, resp: dict, reask: int = 0) -> str:
        choices = resp.get("choices") if isinstance(resp, dict) else None
        content = ((choices[0].get("message") or {}).get("content") or "") if choices else ""
        u = (resp.get("usage") if isinstance(resp, dict) else None) or {}
        usage = {"prompt_tokens": u.get("prompt_tokens", 0) or 0,
                 "completion_tokens": u.get("completion_tokens", 0) or 0}
        self.cache.put(key, kind, self.model, content, usage, reask=reask)
        self.spent += self.cost(usage)
        self.stats["requests"] += 1
        self.stats["prompt_tokens"] += usage["prompt_tokens"]
        self.stats["completion_tokens"] += usage["completion_tokens"]
        self.notify(kind)
        return content

    def answered_batch(self, kind: str, key: str, body: dict) -> None:
        """Cache one answer of a Batch API output file (a chat-completion body)."""
        content = body["choices"][0].get("message", {}).get("content") or ""
        u = body.get("usage") or {}
        usage = {"prompt_tokens": u.get("prompt_tokens", 0) or 0,
                 "completion_tokens": u.get("completion_tokens", 0) or 0}
        self.cache.put(key, kind, self.model, content, usage, batch=True)
        self.spent += self.cost(usage, batch=True)
        self.stats["requests"] += 1
        self.stats["prompt_tokens"] += usage["prompt_tokens"]
        self.stats["completion_tokens"] += usage["completion_tokens"]

    def notify(self, kind: str, **extra) -> None:
        if self.monitor is not None:
            self.monitor({"kind": kind, "in_flight": self.in_flight, "spent": self.spent,
                          **self.stats, **extra})


def _same(messages: list[dict], reask: int) -> list[dict]:
    return list(messages)


def _content(content: str) -> str:
    return content


def _question(spec: PersonaSpec, req: QuestionRequest, seed: int, reask: int
              ) -> list[dict] | Failure:
    return tasks.question_request(spec, req, seed, reask)


def _short(e: Exception) -> str:
    """An SDK error as one line; the SDK puts no credentials in its messages."""
    return str(getattr(e, "message", e)).splitlines()[0][:300]


def _prompt_tokens(messages: list[dict], model: str) -> int:
    from persona.checks.tokens import estimate_request_tokens

    return estimate_request_tokens(messages, model)[0]


def _price_of(model: str) -> tuple[float, float] | None:
    from persona.checks.cost import load_prices

    found = load_prices().lookup(model)
    if found is None or found[1].input is None or found[1].output is None:
        return None
    return found[1].input, found[1].output


def _batch_discount() -> float:
    from persona.checks.cost import load_prices

    return load_prices().batch_discount
