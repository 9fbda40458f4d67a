"""Requests-per-minute and tokens-per-minute pacing for an asyncio client.

A GCRA-style limiter (a token bucket of depth one): each request books the earliest start at
which both budgets allow it, and the next booking starts where this one ends. Requests are
spaced evenly, so any window of the run sees at most `rpm` per minute, and a steady run sits
just under the limit instead of bursting into 429s.
"""

from __future__ import annotations

import asyncio
import time

# Pace at 97 % of the limits: requests leave evenly but reach the server with network and
# event-loop jitter, and a late first arrival makes the server's measured rate overshoot.
MARGIN = 0.97


class RateLimiter:
    def __init__(self, rpm: float | None = None, tpm: float | None = None,
                 clock=time.monotonic):
        self.rpm = rpm * MARGIN if rpm else None
        self.tpm = tpm * MARGIN if tpm else None
        self.clock = clock
        self._next_request = 0.0
        self._next_tokens = 0.0

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

    async def wait(self, tokens: int = 0) -> None:
        delay = self.book(tokens)
        if delay > 0:
            await asyncio.sleep(delay)
