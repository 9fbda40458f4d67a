"""One request pool for a whole run: every LLM request of every stage and batch goes through
it, bounded by --concurrency, paced by --rpm/--tpm, cached, retried in our own hands.

The API (generation uses it; moderation and the bench are meant to):

    pool = RequestPool(base_url=..., api_key=..., model="gpt-4o-mini", concurrency=64,
                       rpm=None, tpm=None, timeout=60, max_retries=5,
                       cache=RequestCache(folder))
    results = pool.run([Item("fill", build, parse), ...])   # blocking; results in order

    # or, from a coroutine on pool.runner (what the overlapped stages do):
    pool.submit(item, on_done)      # on_done(item, result), called on the loop
    await pool.drain()              # until nothing is queued, in flight or backing off
    pool.close()

An `Item` is one unit of work: `build(n)` makes the messages of its n-th ask (0 the first, n > 0
a re-ask after a malformed answer) or returns the Failure that keeps it unsent, `parse(content)`
reads an answer (the message content) into the result or a Failure. For another endpoint
(`path="/moderations"`), `build` returns the whole body (the pool adds "model") and `parse`
gets the answer's JSON text. A result is never an exception: what still fails after
`max_retries` transport retries comes back as a Failure for the caller to decide on.
`priority` (a tuple, lower first) orders the queue; `usage` (requests, cached, re-asks, tokens,
USD) is filled in per item; `pool.stats`, `pool.queued`, `pool.adaptive.limit` and `pool.spent`
are the pool's running figures, and `monitor(info)` gets them as they change.

- **Cache.** Before a request takes a slot its key (model + messages + params) is looked up in
  the request cache; every answer is appended the moment it arrives, so a killed run re-sends
  only requests that had no answer.
- **Retries are ours.** The SDK runs with max_retries=0; a 408/409/429/5xx or a dropped
  connection is retried by the pool with exponential backoff (Retry-After / retry-after-ms
  honoured; from 0.1 s instead of 0.5 s while under a tenth of recent attempts fail: an
  isolated error, not a struggling server), a timeout at once (the timeout was the wait);
  a backing-off item holds no slot (but a 429'd one, below), other items go on. Every
  attempt passes the rate limiter, so --rpm/--tpm hold with retries counted.
- **Malformed answers** (parse gives a retryable Failure) are asked again at once as their own
  requests, up to `item.reasks` times, each with its own cache key.
- **Adaptive concurrency.** When a quarter of recent answers are 429s the slot limit drops by a
  quarter (at most every half second); a run of successes as long as the limit (at least 10)
  gives one slot back, up to --concurrency; the live display shows the lowered limit. A 429'd
  request keeps its slot while it waits (the server said "too many at once"; other failures
  free theirs), and uses its own budget of RATE_LIMITED_TRIES tries, not max_retries: it
  means "later", not "broken".
- **Hedging.** When nothing waits for a slot (the end of a run, a stall) and a request has
  been out HEDGE_FACTOR times the median answer time (at least HEDGE_MIN_S), the same request
  is sent once more beside it; the first answer wins and the other is cancelled, a failure of
  one while the other is still out is ignored. At most HEDGE_SHARE of the requests (and only
  while no 429 has lowered the limit), so it costs a few requests and saves the run's tail
  from waiting out a hung request's --timeout (`hedge=False`, or a --max-cost budget: never,
  since a cancelled copy may still be billed and its cost is never reported).
- **Early stop.** When STOP_STREAK attempts in a row failed and none succeeded for
  STOP_SECONDS (server down, every request an error), the pool raises one ProviderError
  instead of spending every item's retry budget. Auth errors, an unknown model (404) and a
  refused request (400) stop at once.
- **Budget.** With --max-cost, each request books its worst case (prompt + max_tokens) before
  it is sent; a request that would pass the budget raises BudgetExceeded.
- **What the model accepts.** Every chat request is shaped for its model's family
  (providers/models.py: max_completion_tokens, reasoning_effort, no temperature where only the
  default is accepted); a 400 refusing a parameter the run may change is adapted once (a note,
  the same ask again), any other 400 stops the run with the server's message. An answer the
  token limit cut (finish_reason "length") is asked again once with four times the limit,
  then comes back as a Failure. `usage` counts reasoning and cached input tokens, priced.
- **Priority.** Items carry a priority tuple (lower first): the stages put older batches
  first, so a batch's retries overtake the next batch's first asks.
"""

from __future__ import annotations

import asyncio
import functools
import heapq
import itertools
import json
import logging
import statistics
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from persona.errors import BudgetExceeded, ProviderError
from persona.providers.base import Failure
from persona.providers.llm_cache import RequestCache, request_key
from persona.providers.rate_limit import RateLimiter
from persona.providers.retry_policy import AdaptiveLimit, FailureWatch, backoff

log = logging.getLogger(__name__)

# httpx's connection pool scans every pending request and connection on each state change
# (cost grows with the square of requests in flight): several clients of 16 keep scans short.
CONNECTIONS_PER_CLIENT = 16
RETRYABLE_STATUS = (408, 409, 429)  # and every 5xx
# A 429 says "later", not "broken": it uses its own, larger budget of tries per item, while the
# concurrency comes down to what the server takes.
RATE_LIMITED_TRIES = 20
# Hedging (a second copy of a slow request while slots idle): after HEDGE_FACTOR times the
# median answer time, at least HEDGE_MIN_S; at most HEDGE_SHARE of requests (HEDGE_FREE more).
HEDGE_FACTOR, HEDGE_MIN_S, HEDGE_SHARE, HEDGE_FREE, HEDGE_TICK_S = 3.0, 0.5, 0.02, 8, 0.05
HEDGE_SAMPLES = 5  # answers timed before the median is trusted
USAGE_KEYS = ("requests", "cached", "malformed_reasked", "prompt_tokens", "completion_tokens",
              "reasoning_tokens", "cached_tokens")
# an answer the token limit cut is asked again once with this many times the limit (and at
# least CUT_ROOM more: what a reasoning model may spend before it writes)
CUT_GROWTH, CUT_ROOM = 4, 8192
# the answer an item of a grouped request gets when the request's answer lacks it (or has it
# malformed): its parse fails on it, so it is asked again (alone or with others)
MISSING = '{"missing": "no answer for this item in the grouped answer"}'


@dataclass(eq=False)
class Item:
    """One request to make (and re-ask while malformed); see the module docstring."""

    kind: str  # the stage or task ("fill", "questions", ...): cache entries and stats carry it
    build: Callable[[int], list[dict] | dict | Failure]  # chat messages, or a whole body
    parse: Callable[[str], Any]
    reasks: int = 0  # malformed answers asked again at most this often
    max_tokens: int = 512
    schema: dict | None = None  # JSON schema of the answer (response_format, while accepted)
    temperature: float = 0.9
    priority: tuple = ()
    tag: Any = None  # the caller's own (a request record, a batch number)
    path: str = "/chat/completions"  # another endpoint (e.g. /moderations): build a body
    params: dict | None = None  # request parameters as they are (plain text: no schema)
    whole: bool = False  # parse gets the whole answer's JSON text, not the message content
    usage: dict = field(default_factory=lambda: dict.fromkeys((*USAGE_KEYS, "cost_usd"), 0))
    _reask: int = 0
    _tries: int = 0
    _limited: int = 0
    _on_done: Callable | None = None
    _gen: int = 0
    _wire: tuple | None = None  # (messages, params, key) of the ask in flight
    _live: set = field(default_factory=set)  # its attempts under way (two when hedged)
    _wired: int = 0  # of which on the wire now
    _since: float = 0.0  # when the ask went on the wire
    _hedged: bool = False
    _grown: bool = False  # asked again with a higher limit after a cut answer
    # Several items per request: items of one `group` (same key) may travel in one request;
    # then `build(n)` gives the item's task (a dict with an "id") and the pool renders the
    # request with the group. `members`: the items a request carries (a carrier item).
    group: Group | None = None
    members: list | None = None
    _qseq: int | None = None  # its place in the queue (None: not queued)


@dataclass(eq=False)
class Group:
    """Items that may share one request: `render(tasks)` makes the request's messages for
    the items' tasks (`render([])`: the shared part, which keys each item's cache entry);
    `read(content, partial)` gives {task id: the item's own answer, as a one-item answer
    reads}, `partial` when the token limit cut the answer."""

    key: tuple
    render: Callable[[list[dict]], list[dict]]
    read: Callable[[str, bool], dict[str, str]]
    schema: dict | None = None
    _prefix: list | None = None

    def prefix(self) -> list[dict]:
        if self._prefix is None:
            self._prefix = self.render([])
        return self._prefix


class RequestPool:
    def __init__(self, *, base_url: str | None, api_key: str, model: str, concurrency: int = 16,
                 rpm: float | None = None, tpm: float | None = None, timeout: float = 60.0,
                 max_retries: int = 5, cache: RequestCache | None = None,
                 price: tuple[float, float] | tuple[float, float, float | None] | None = None,
                 batch_discount: float = 0.5, max_cost: float | None = None,
                 monitor: Callable[[dict], None] | None = None, hedge: bool = True,
                 shape=None, per_request: int = 1):
        from persona.providers.models import RequestShape

        self.base_url, self._api_key, self.model = base_url, api_key, model
        self.concurrency, self.timeout, self.max_retries = concurrency, timeout, max_retries
        self.limiter = RateLimiter(rpm, tpm)
        self.adaptive = AdaptiveLimit(concurrency)
        self.watch = FailureWatch()
        self.cache = cache if cache is not None else RequestCache(None)
        self.price, self.batch_discount, self.max_cost = price, batch_discount, max_cost
        self.monitor = monitor
        self.structured = True  # json_schema response_format until the server refuses it
        # what the model accepts (RequestShape: family rules, --reasoning-effort, --param, and
        # what a server's 400 taught the run)
        self.shape = shape if shape is not None else RequestShape(model)
        self.stats = {**dict.fromkeys(USAGE_KEYS, 0), "failed": 0, "retried": 0,
                      "rate_limited": 0, "hedged": 0, "cut": 0}
        # A cancelled copy may still be billed, and its cost is never reported: no hedging
        # under a budget.
        # Under --tpm a copy spends tokens the limit counts: no hedging there either.
        self.hedge = hedge and max_cost is None and not tpm
        self.per_request = max(1, per_request)  # items of one group per request (K)
        self.grouped = {"requests": 0, "items": 0}  # grouped requests sent, items they carried
        self._times: deque[float] = deque(maxlen=200)  # recent answer times (s)
        self._flying: set[Item] = set()  # items with an ask on the wire
        self._ticking = False
        self.spent = sum(self.cost(e["usage"], e.get("batch", False))
                         for e in self.cache.entries())
        self.in_flight = 0  # requests on the wire
        self._busy = 0  # slots taken (waiting for the limiter or on the wire)
        self._reserved = 0.0
        self._heap: list = []
        self._keyed: dict[tuple, list] = {}  # group key -> its queued items (a heap)
        self._queued = 0  # valid entries of the queue (taken ones are skipped lazily)
        self._seq = itertools.count()
        self._pending = 0  # submitted, not yet done (queued, in a slot or backing off)
        self._tasks: set[asyncio.Task] = set()
        self._fatal: BaseException | None = None
        self._gen = 0  # bumped by a fatal error: late timers of its items are dropped
        self._idle: asyncio.Event | None = None
        self._pump_soon = False
        self._clients: list = []
        self._next_client = 0
        self.runner: asyncio.Runner | None = None  # one event loop for the run

    def __repr__(self) -> str:  # no key in reprs, tracebacks or logs
        return f"RequestPool(model={self.model!r}, base_url={self.base_url!r})"

    # -- the API -----------------------------------------------------------------------------
    def run(self, items: list[Item]) -> list:
        """Send every item (cache first) and return their results in order."""
        if not items:
            return []
        results: list = [None] * len(items)

        def done(i: int, item: Item, result) -> None:
            results[i] = result

        async def go():
            for i, item in enumerate(items):
                self.submit(item, functools.partial(done, i))
            await self.drain()

        try:
            self.loop_run(go())
        finally:
            self.cache.close()
        return results

    def loop_run(self, coro):
        """Run a coroutine on the pool's event loop (kept from call to call)."""
        if self.runner is None:
            self.runner = asyncio.Runner()
        return self.runner.run(coro)

    def submit(self, item: Item, on_done: Callable[[Item, Any], None]) -> None:
        """Queue an item (call on the loop); `on_done(item, result)` runs when it is done."""
        item._on_done, item._gen = on_done, self._gen
        self._pending += 1
        if self._idle is None:
            self._idle = asyncio.Event()
        self._idle.clear()
        self._push(item)
        if self.hedge and not self._ticking:
            self._ticking = True
            asyncio.get_running_loop().call_later(HEDGE_TICK_S, self._hedge_tick)

    async def drain(self) -> None:
        """Wait until every submitted item is done; re-raise a fatal error (budget, a refused
        request, the early stop) after cancelling what is in flight."""
        if self._idle is not None and self._pending:
            await self._idle.wait()
        if self._fatal is not None:
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            self._heap.clear()
            self._keyed.clear()
            self._queued = 0
            self._pending, self._busy, self.in_flight = 0, 0, 0
            self._gen += 1
            fatal, self._fatal = self._fatal, None
            raise fatal

    @property
    def queued(self) -> int:
        """Items waiting for a slot (not those in flight or backing off)."""
        return self._queued

    def close(self) -> None:
        """Close the connections and the event loop; flush the cache."""
        self.cache.close()
        if self.runner is not None:
            for client in self._clients:
                self.runner.run(client.close())
            self.runner.close()
        self.runner, self._clients = None, []
        # Loop-bound state goes with the loop, so the pool can run again on a new one (the
        # limiter keeps its pacing).
        self._ticking, self._idle, self.limiter._turn = False, None, None

    def cost(self, usage: dict, batch: bool = False) -> float:
        """USD of one answer's usage: cached input at its price, reasoning within output."""
        if self.price is None:
            return 0.0
        inp, out = self.price[0], self.price[1]
        cached_price = self.price[2] if len(self.price) > 2 and self.price[2] is not None \
            else inp
        prompt = usage.get("prompt_tokens", 0)
        cached = min(usage.get("cached_tokens", 0), prompt)
        usd = ((prompt - cached) * inp + cached * cached_price
               + usage.get("completion_tokens", 0) * out) / 1e6
        return usd * (1 - self.batch_discount) if batch else usd

    def params(self, kind: str, max_tokens: int, schema: dict | None,
               temperature: float = 0.9) -> dict:
        """Request parameters as the code asks for them (part of the cache key, with the
        model's reasoning effort and --param); `shape.wire` turns them into what is sent."""
        params = {"temperature": temperature, "max_tokens": max_tokens,
                  **self.shape.key_params()}
        if schema is not None and self.structured:
            params["response_format"] = {"type": "json_schema", "json_schema": {
                "name": kind, "strict": True, "schema": schema}}
        return params

    def notify(self, kind: str, **extra) -> None:
        if self.monitor is not None:
            self.monitor({"kind": kind, "in_flight": self.in_flight, "spent": self.spent,
                          "limit": self.adaptive.limit, "concurrency": self.concurrency,
                          **self.stats, **extra})

    # -- scheduling --------------------------------------------------------------------------
    def _push(self, item: Item) -> None:
        if self._fatal is not None or item._gen != self._gen:
            return
        seq = next(self._seq)
        if item._qseq is None:
            self._queued += 1
        item._qseq = seq
        heapq.heappush(self._heap, (item.priority, seq, item))
        if item.group is not None and self.per_request > 1:
            heapq.heappush(self._keyed.setdefault(item.group.key, []), (item.priority, seq, item))
        if not self._pump_soon:
            self._pump_soon = True
            asyncio.get_running_loop().call_soon(self._pump)

    def _pump(self) -> None:
        """Start queued items while slots are free (cache hits take no slot)."""
        self._pump_soon = False
        while self._queued and self._busy < self.adaptive.limit and self._fatal is None:
            _, seq, item = heapq.heappop(self._heap)
            if item._qseq != seq:  # taken into another item's request, or queued again
                continue
            self._take(item)
            try:
                if item.group is not None:
                    self._start_group(item)
                else:
                    self._start(item)
            except Exception as e:  # a build or parse that raised: stop the run with it
                self._stop(e)

    def _take(self, item: Item) -> None:
        item._qseq = None
        self._queued -= 1

    def _same_key(self, key: tuple) -> Item | None:
        """The next queued item of a group key (taken off the queue), or None."""
        heap = self._keyed.get(key)
        while heap:
            _, seq, item = heapq.heappop(heap)
            if item._qseq == seq:
                self._take(item)
                return item
        self._keyed.pop(key, None)
        return None

    def _cached(self, item: Item, key: str, cut: Callable[[Item], None]) -> bool:
        """Answer the item from the cache if its key is there (a cut answer goes to `cut`,
        which asks again with a higher limit); whether it was."""
        hit = self.cache.get(key)
        if hit is None:
            return False
        item.usage["cached"] += 1
        self.stats["cached"] += 1
        if hit.get("cut"):
            cut(item)
        else:
            self._answer(item, hit["content"])
        return True

    def _member_key(self, item: Item, task: dict) -> str:
        """An item's cache key within grouped requests: the group's shared part, its own
        task and the parameters but the token limit, so the same item hits whatever other
        items shared its request (and whatever K)."""
        params = self.params(item.kind, 0, item.group.schema, item.temperature)
        params.pop("max_tokens")
        params["grouped"] = "grown" if item._grown else True
        return request_key(self.model, [*item.group.prefix(), {
            "role": "task", "content": json.dumps(task, ensure_ascii=False, sort_keys=True)}],
            params)

    def _start_group(self, first: Item) -> None:
        """Start a request carrying `first` and up to K - 1 more queued items of its group
        (those answered from the cache take no place in it)."""
        group, members, item = first.group, [], first
        while item is not None:
            task = item.build(item._reask)
            if isinstance(task, Failure):
                self._done(item, task)
            else:
                key = self._member_key(item, task)
                if not self._cached(item, key, self._member_cut):
                    item._wire = (task, None, key)
                    members.append(item)
            item = self._same_key(group.key) if len(members) < self.per_request else None
        if not members:
            return
        messages = group.render([m._wire[0] for m in members])
        # an item cut before gets twice its share, and the request room to reason first
        max_tokens = sum(m.max_tokens for m in members) + (
            CUT_ROOM if any(m._grown for m in members) else 0)
        carrier = Item(first.kind, lambda n: messages, str, max_tokens=max_tokens,
                       schema=group.schema, temperature=first.temperature,
                       priority=min(m.priority for m in members), members=members)
        carrier._on_done, carrier._gen = self._carried, self._gen
        self._pending += 1
        params = self.params(carrier.kind, max_tokens, group.schema, carrier.temperature)
        carrier._wire = (messages, params, request_key(self.model, messages, params))
        carrier._hedged = False
        self.grouped["requests"] += 1
        self.grouped["items"] += len(members)
        self._launch(carrier)

    def _carried(self, carrier: Item, result) -> None:
        """A carrier that failed for good (its retries spent): every item it carried fails."""
        if isinstance(result, Failure):
            for m in carrier.members:
                self._done(m, result)

    def _answered_group(self, carrier: Item, resp: Any) -> None:
        """A grouped request's answer: each item's own answer cached under its own key with
        its share of the usage, then read by the item (a missing or malformed one re-asks
        that item alone; the others are done). A cut answer gives the items complete before
        the cut; the rest go again with a higher limit."""
        choices = resp.get("choices") if isinstance(resp, dict) else None
        content = ((choices[0].get("message") or {}).get("content") or "") if choices else ""
        cut = bool(choices) and choices[0].get("finish_reason") == "length"
        usage = read_usage(resp)
        cost = self.cost(usage)
        self.spent += cost
        for k, v in (("requests", 1), *usage.items()):
            self.stats[k] += v
        got = carrier.members[0].group.read(content, cut)
        n = len(carrier.members)
        todo = []
        for i, m in enumerate(carrier.members):
            task, _, key = m._wire
            share = {k: v // n + (1 if i < v % n else 0) for k, v in usage.items()}
            mine = got.get(task["id"])
            if mine is None and cut:
                self.cache.put(key, m.kind, self.model, "", share, reask=m._reask, cut=True,
                               group=(i, n))
            else:
                mine = MISSING if mine is None else mine
                self.cache.put(key, m.kind, self.model, mine, share, reask=m._reask,
                               group=(i, n))
            for k, v in share.items():
                m.usage[k] += v
            m.usage["requests"] += 1 if i == 0 else 0
            m.usage["cost_usd"] += cost / n
            todo.append((m, mine))
        self.notify(carrier.kind)
        self._done(carrier, None)
        for m, mine in todo:
            if mine is None:
                self._member_cut(m)
            else:
                self._answer(m, mine)

    def _member_cut(self, item: Item) -> None:
        """An item the token limit cut within a grouped request: once more, alone or with
        others, with twice its share of the limit (and CUT_ROOM more for the request, what a
        reasoning model may spend first); then a Failure."""
        self.stats["cut"] += 1
        if item._grown:
            self._done(item, Failure(f"cut by the token limit ({item.max_tokens} tokens "
                                     "for this item, finish_reason length) twice"))
            return
        item._grown = True
        item.max_tokens *= 2
        self._push(item)

    def _start(self, item: Item) -> None:
        messages = item.build(item._reask)
        if isinstance(messages, Failure):
            self._done(item, messages)
            return
        if isinstance(messages, dict):  # a whole body for item.path; parse gets the JSON
            params = {"path": item.path}
            key = request_key(self.model, [messages], params)
        else:
            params = (dict(item.params, **self.shape.key_params()) if item.params is not None
                      else self.params(item.kind, item.max_tokens, item.schema,
                                       item.temperature))
            if item._grown:
                params["max_tokens"] = item.max_tokens
            key = request_key(self.model, messages, params)
        if self._cached(item, key, self._cut):
            return
        item._wire, item._hedged = (messages, params, key), False
        self._launch(item)

    def _launch(self, item: Item, hedge: bool = False) -> None:
        self._busy += 1
        task = asyncio.ensure_future(self._attempt(item, *item._wire, hedge=hedge))
        self._tasks.add(task)
        item._live.add(task)
        task.add_done_callback(self._tasks.discard)
        task.add_done_callback(item._live.discard)

    @staticmethod
    def _copy_out(item: Item) -> bool:
        """True when another copy of this ask is still out: then that one decides, and this
        one steps aside (at once, so two copies failing together do not both step aside)."""
        if len(item._live) > 1:
            item._live.discard(asyncio.current_task())
            return True
        return False

    def _hedge_tick(self) -> None:
        """While slots idle and nothing waits for one, send a second copy of a slow ask."""
        if self._pending == 0 or self._fatal is not None:
            self._ticking = False
            return
        asyncio.get_running_loop().call_later(HEDGE_TICK_S, self._hedge_tick)
        if (self._queued or len(self._times) < HEDGE_SAMPLES
                or self.adaptive.limit < self.concurrency
                or self.stats["hedged"] >= HEDGE_FREE + HEDGE_SHARE * self.stats["requests"]):
            return
        after = max(HEDGE_MIN_S, HEDGE_FACTOR * statistics.median(self._times))
        now = time.monotonic()
        for item in sorted((i for i in self._flying if not i._hedged and i._wired == 1
                            and len(i._live) == 1 and now - i._since > after),
                           key=lambda i: i._since):
            if self._busy >= self.adaptive.limit:
                break
            item._hedged = True
            self.stats["hedged"] += 1
            log.debug("%s: no answer after %.1f s, asking a second time", item.kind,
                      now - item._since)
            self._launch(item, hedge=True)

    def _answer(self, item: Item, content: str) -> None:
        got = item.parse(content)
        if isinstance(got, Failure) and got.retry and item._reask < item.reasks:
            item._reask += 1
            item.usage["malformed_reasked"] += 1
            self.stats["malformed_reasked"] += 1
            log.debug("%s: malformed answer (%s), asking again", item.kind, got.reason)
            self._push(item)
            return
        self._done(item, got)

    def _done(self, item: Item, result) -> None:
        self._pending -= 1
        try:
            item._on_done(item, result)
        except BaseException as e:  # the caller's bookkeeping failed (a write): stop the run
            self._stop(e)
            return
        if self._pending == 0 and self._idle is not None:
            self._idle.set()

    def _stop(self, exc: BaseException) -> None:
        if self._fatal is None:
            self._fatal = exc
        if self._idle is not None:
            self._idle.set()

    def _client(self):
        if not self._clients:
            from openai import AsyncOpenAI  # heavy: imported only when a request is sent

            self._clients = [AsyncOpenAI(base_url=self.base_url, api_key=self._api_key,
                                         max_retries=0, timeout=self.timeout)
                             for _ in range(-(-self.concurrency // CONNECTIONS_PER_CLIENT))]
        self._next_client = (self._next_client + 1) % len(self._clients)
        return self._clients[self._next_client]

    async def _attempt(self, item: Item, messages: list[dict], params: dict, key: str,
                       hedge: bool = False) -> None:
        import openai

        booked, sent, prompt = 0.0, 0.0, 0
        try:
            booked = self._reserve(item, messages)
            # the client first: the first one imports the SDK (a quarter second that blocks the
            # loop), which must not fall between the limiter's booking and the send
            client = self._client()
            prompt = _prompt_tokens(messages, self.model) if self.limiter.tpm else 0
            await self.limiter.wait(prompt + self.shape.output_limit(item.max_tokens)
                                    if self.limiter.tpm else 0)
            self.in_flight += 1
            item._wired += 1
            sent = time.monotonic()
            if not hedge:
                item._since = sent
                self._flying.add(item)
            self.notify(item.kind)
            try:
                # client.post, not chat.completions.create: the latter walks the body through
                # the SDK's TypedDict transform and builds a pydantic model of the answer (~40 %
                # of our CPU per request); our body is plain JSON and we read one field.
                if isinstance(messages, dict):  # a whole body (shaped if it is a chat one)
                    body = {"model": self.model, **(self.shape.wire(messages)
                                                    if item.path == "/chat/completions"
                                                    else messages)}
                else:
                    body = {"model": self.model, "messages": messages,
                            **self.shape.wire(params)}
                resp = await client.post(item.path, cast_to=object, body=body)
            finally:
                self.in_flight -= 1
                item._wired -= 1
                if not item._wired:
                    self._flying.discard(item)
        except openai.BadRequestError as e:
            if "response_format" in params and "response_format" in str(e):
                log.info("server refuses json_schema output; parsing plain JSON")
                self.structured = False
                self._push(item)  # the same ask, without response_format
            elif item.path == "/chat/completions" and self._adapted(e):
                self._push(item)  # the same ask, with the parameters the server takes
            else:
                self._stop(ProviderError(f"the server refused a request: {_short(e)}"))
        except (openai.AuthenticationError, openai.PermissionDeniedError,
                openai.NotFoundError) as e:
            self._stop(ProviderError(f"{type(e).__name__}: {_short(e)}"))
        except openai.APIStatusError as e:
            if (e.status_code in RETRYABLE_STATUS or e.status_code >= 500) and \
                    self._copy_out(item):
                pass
            elif e.status_code == 429:  # too many at once: the slot waits out the backoff too
                self._paced(e)
                wait = self._retry(item, e, "HTTP 429", later=False)
                if wait is not None:
                    await asyncio.sleep(wait)
                    self._push(item)
            elif e.status_code in RETRYABLE_STATUS or e.status_code >= 500:
                self._retry(item, e, f"HTTP {e.status_code}")
            else:
                self._stop(ProviderError(f"the server refused a request: {_short(e)}"))
        except openai.APITimeoutError as e:  # the timeout was the wait: again at once
            if not self._copy_out(item):
                self._retry(item, e, "APITimeoutError", wait=0.0)
        except openai.APIConnectionError as e:
            if not self._copy_out(item):
                self._retry(item, e, "APIConnectionError")
        except BudgetExceeded as e:
            self._stop(e)
        except asyncio.CancelledError:
            raise
        except Exception as e:  # a bug or an unreadable answer: stop with it, do not hang
            self._stop(e)
        else:
            if prompt and isinstance(resp, dict):  # the server's own count of the prompt
                self.limiter.correct(read_usage(resp)["prompt_tokens"] - prompt)
            self.watch.ok()
            self.adaptive.success()
            self._times.append(time.monotonic() - sent)
            me = asyncio.current_task()
            for other in list(item._live):  # a hedged ask: the first answer wins
                if other is not me:
                    other.cancel()
                    item._live.discard(other)
            try:
                if item.members is not None:
                    self._answered_group(item, resp)
                    return
                content = self._answered(item, key, resp)
                if content is None:
                    self._cut(item)
                else:
                    self._answer(item, content)
            except Exception as e:
                self._stop(e)
        finally:
            self._reserved -= booked
            self._busy -= 1
            if self._queued and not self._pump_soon and self._fatal is None:
                self._pump_soon = True
                asyncio.get_running_loop().call_soon(self._pump)

    def _paced(self, e) -> None:
        """A 429 with x-ratelimit-* headers sets the limiter's pace (and teaches it the
        account's tokens-per-minute limit)."""
        response = getattr(e, "response", None)
        headers = getattr(response, "headers", None)
        if headers is None:
            return
        note = self.limiter.told(headers)
        if note:
            log.info("%s", note)
            self.notify("adapted", note=note)

    def _adapted(self, e) -> bool:
        """Whether a 400 refusing a parameter is handled: adapted now, or already (a request
        that left before another's refusal taught the run)."""
        param = getattr(e, "param", None)
        if param and (param in self.shape.dropped or param in self.shape.renamed):
            return True
        body = e.body if isinstance(getattr(e, "body", None), dict) else {}
        note = self.shape.adapt(getattr(e, "code", None), param,
                                str(body.get("message") or _short(e)))
        if note is None:
            return False
        log.info("%s: %s", self.model, note)
        self.notify("adapted", note=note)
        return True

    def _retry(self, item: Item, exc: Exception, why: str, later: bool = True,
               wait: float | None = None) -> float | None:
        """Back off and send again, or give the item up (None). `later`: the item comes back
        by itself after the backoff, its slot freed meanwhile; else the wait is returned."""
        if getattr(exc, "status_code", None) == 429:
            self.stats["rate_limited"] += 1
            self.adaptive.rate_limited()
        calm = self.watch.calm  # as it was before this failure
        stop = self.watch.failed(why, rate_limited=getattr(exc, "status_code", None) == 429)
        if stop is not None:
            self._stop(stop)
            return None
        if getattr(exc, "status_code", None) == 429:
            item._limited += 1
            tries, budget = item._limited, RATE_LIMITED_TRIES
        else:
            item._tries += 1
            tries, budget = item._tries, self.max_retries
        if tries > budget:
            self.stats["failed"] += 1
            self._done(item, Failure(f"server error after {tries} tries: {why}"))
            return None
        self.stats["retried"] += 1
        self.notify(item.kind)
        wait = backoff(tries, exc, calm) if wait is None else wait
        if later:
            asyncio.get_running_loop().call_later(wait, self._push, item)
        return wait

    def _answered(self, item: Item, key: str, resp: Any) -> str | None:
        """The answer's content, cached and counted; None when the token limit cut it (the
        item is then asked again with a higher limit, or fails)."""
        choices = resp.get("choices") if isinstance(resp, dict) else None
        content = ((choices[0].get("message") or {}).get("content") or "") if choices else ""
        cut = bool(choices) and choices[0].get("finish_reason") == "length" and (
            not content or item.schema is not None)  # a cut JSON answer is no answer
        if item.whole or item.path != "/chat/completions":  # another endpoint: the whole answer
            content = json.dumps(resp, ensure_ascii=False)
        usage = read_usage(resp)
        self.cache.put(key, item.kind, self.model, content, usage, reask=item._reask, cut=cut)
        if usage.get("reasoning_tokens"):
            note = self.shape.reasoned(usage["reasoning_tokens"])
            if note:
                self.notify("adapted", note=note)
        cost = self.cost(usage)
        self.spent += cost
        for k, v in (("requests", 1), *usage.items()):
            self.stats[k] += v
            item.usage[k] += v
        item.usage["cost_usd"] += cost
        self.notify(item.kind)
        return None if cut else content

    def _cut(self, item: Item) -> None:
        """An answer the token limit ended (reasoning ate it, or the answer ran long): once
        more with CUT_GROWTH times the limit, then a Failure the stage counts."""
        self.stats["cut"] += 1
        if item._grown:
            self._done(item, Failure(f"cut by the token limit ({item.max_tokens} tokens, "
                                     "finish_reason length) twice"))
            return
        item._grown = True
        item.max_tokens = max(item.max_tokens * CUT_GROWTH, item.max_tokens + CUT_ROOM)
        log.info("%s: answer cut by the token limit, asking again with %d", item.kind,
                 item.max_tokens)
        self._push(item)

    def _reserve(self, item: Item, messages: list[dict]) -> float:
        """Book the most this request can cost (prompt + max_tokens); refuse past --max-cost."""
        if self.max_cost is None:
            return 0.0
        worst = self.cost({"prompt_tokens": _prompt_tokens(messages, self.model),
                           "completion_tokens": self.shape.output_limit(item.max_tokens)})
        if self.spent + self._reserved + worst > self.max_cost:
            raise BudgetExceeded(
                f"stopped before --max-cost {self.max_cost:g} USD would be exceeded "
                f"(spent {self.spent:.4f} USD); finished batches are kept, rerun with a "
                "higher --max-cost to go on")
        self._reserved += worst
        return worst


def read_usage(resp: Any) -> dict:
    """Token counts of an answer: prompt and completion, and within them the cached input
    (prompt_tokens_details) and the reasoning (completion_tokens_details) where given."""
    u = (resp.get("usage") if isinstance(resp, dict) else None) or {}
    usage = {"prompt_tokens": u.get("prompt_tokens", 0) or 0,
             "completion_tokens": u.get("completion_tokens", 0) or 0}
    reasoning = (u.get("completion_tokens_details") or {}).get("reasoning_tokens") or 0
    cached = (u.get("prompt_tokens_details") or {}).get("cached_tokens") or 0
    if reasoning:
        usage["reasoning_tokens"] = reasoning
    if cached:
        usage["cached_tokens"] = cached
    return usage


def _short(e: Exception) -> str:
    """An SDK error as one line (the server's own message where it gave one); the SDK puts
    no credentials in its messages."""
    body = getattr(e, "body", None)
    text = body.get("message") if isinstance(body, dict) and body.get("message") else \
        getattr(e, "message", e)
    return str(text).splitlines()[0][:300]


def _prompt_tokens(messages: list[dict], model: str) -> int:
    from persona.checks.tokens import estimate_request_tokens

    return estimate_request_tokens(messages, model)[0]
