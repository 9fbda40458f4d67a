"""Requests-per-minute and tokens-per-minute pacing for an asyncio client.

A GCRA-style limiter (a token bucket of depth one): each request books the earliest start at
which both budgets allow it, and the next booking starts where this one ends. Requests are
spaced evenly, so any window of the run sees at most `rpm` per minute, and a steady run sits
just under the limit instead of bursting into 429s. `wait` books only once the caller's turn
has come (waiters queue in order) and from the time it really leaves: a waiter the busy event
loop wakes late may catch up at most CATCH_UP spacing, so late wakes cost little rate and
never bunch more than one request above it (the 3 % margin absorbs it in any window of 34
spacings or more: two, as before, bunched a 40-request window over the limit at start-up).
"""

from __future__ import annotations

import asyncio
import re
import time

# Pace at 97 % of the limits: requests leave evenly but reach the server with network and
# event-loop jitter, and a late first arrival makes the server's measured rate overshoot.
MARGIN = 0.97
CATCH_UP = 1


class RateLimiter:
    def __init__(self, rpm: float | None = None, tpm: float | None = None,
                 clock=time.monotonic):
        self.rpm = rpm * MARGIN if rpm else None
        self.tpm = tpm * MARGIN if tpm else None
        self.clock = clock
        self._next_request = 0.0
        self._next_tokens = 0.0
        self._turn: asyncio.Lock | None = None

    def book(self, tokens: int = 0) -> float:
        """Book a slot for a request of `tokens`; return how long to wait for it."""
        now = self.clock()
        start = now
        if self.rpm:
            start = max(start, self._next_request)
        if self.tpm:
            start = max(start, self._next_tokens)
        if self.rpm:
            self._next_request = start + 60.0 / self.rpm
        if self.tpm:
            self._next_tokens = start + 60.0 * tokens / self.tpm
        return start - now

    def correct(self, tokens: int) -> None:
        """A request's prompt counted by the server differs from our estimate by `tokens`
        (another tokenizer: a vLLM server's model): book the difference, up or down."""
        if self.tpm and tokens:
            self._next_tokens += 60.0 * tokens / self.tpm

    def told(self, headers) -> str | None:
        """Take the pace a 429's `x-ratelimit-*` headers give: no token request before the
        bucket refills (`x-ratelimit-reset-tokens`), and the account's limit
        (`x-ratelimit-limit-tokens`) where it is lower than ours or we had none. Returns a
        note when the limit changed."""
        note = None
        limit = _number(headers.get("x-ratelimit-limit-tokens"))
        if limit and (self.tpm is None or limit * MARGIN < self.tpm):
            self.tpm = limit * MARGIN
            note = f"the server's tokens-per-minute limit is {limit:,.0f}: pacing under it"
        reset = _duration(headers.get("x-ratelimit-reset-tokens"))
        remaining = _number(headers.get("x-ratelimit-remaining-tokens"))
        if self.tpm and reset is not None and (remaining is None or remaining < self.tpm / 60):
            self._next_tokens = max(self._next_tokens, self.clock() + reset)
        return note

    def _earliest(self) -> float:
        return max(self._next_request if self.rpm else 0.0,
                   self._next_tokens if self.tpm else 0.0)

    async def wait(self, tokens: int = 0) -> None:
        if not (self.rpm or self.tpm):
            return
        if self._turn is None:
            self._turn = asyncio.Lock()  # FIFO: waiters leave in the order they came
        async with self._turn:
            delay = self._earliest() - self.clock()
            if delay > 0:
                await asyncio.sleep(delay)
            # We leave now: at our slot, or later if the loop woke us late (then up to
            # CATCH_UP spacings of the delay are made up); an idle limiter starts afresh.
            now = self.clock()
            late = CATCH_UP if delay > 0 else 0
            if self.rpm:
                step = 60.0 / self.rpm
                self._next_request = max(self._next_request, now - late * step) + step
            if self.tpm:
                step = 60.0 * tokens / self.tpm
                self._next_tokens = max(self._next_tokens, now - late * step) + step


def _number(value) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def _duration(value) -> float | None:
    """Seconds of an OpenAI reset header: "1.2s", "120ms", "6m0s", "1h2m3.5s"."""
    if not value:
        return None
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|h|m|s)", str(value))
    if not parts:
        return _number(value)
    scale = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
    return sum(float(n) * scale[u] for n, u in parts)
