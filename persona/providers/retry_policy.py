"""How the request pool reacts to failures: backoff, the adaptive concurrency limit, the early
stop. Pure and clock-injected, so they are tested without a server.
"""

from __future__ import annotations

import logging
import random
import time
from collections import deque

from persona.errors import ProviderError

log = logging.getLogger(__name__)

BACKOFF_FIRST_S, BACKOFF_MAX_S, RETRY_AFTER_MAX_S = 0.5, 8.0, 60.0
# An isolated error (under CALM_SHARE of the last CALM_WINDOW attempts failed, 429s aside:
# they have their own Retry-After and the adaptive limit) backs off from CALM_FIRST_S: the
# server is fine, the item should not idle; errors that pile up get 0.5 s.
CALM_FIRST_S, CALM_SHARE, CALM_WINDOW = 0.1, 0.1, 100
STOP_STREAK, STOP_SECONDS = 10, 20.0


class AdaptiveLimit:
    """Slots allowed in flight: down by a quarter when 429s pile up, +1 per run of successes
    (one per `limit` successes in a row, at least RECOVER: one per round trip, as TCP does)."""

    WINDOW, SHARE, COOLDOWN_S, RECOVER = 32, 0.25, 0.5, 10

    def __init__(self, ceiling: int, clock=time.monotonic):
        self.ceiling = self.limit = ceiling
        self.clock = clock
        self.recent: deque[bool] = deque(maxlen=self.WINDOW)  # True: a 429
        self.streak = 0
        self.last_cut = float("-inf")
        self.cuts = 0

    def success(self) -> None:
        self.recent.append(False)
        self.streak += 1
        # +1 per round of successes (as many as slots, at least RECOVER): additive increase
        if self.streak >= max(self.RECOVER, self.limit) and self.limit < self.ceiling:
            self.limit += 1
            self.streak = 0

    def rate_limited(self) -> None:
        self.recent.append(True)
        self.streak = 0
        hits, now = sum(self.recent), self.clock()
        if (hits >= max(2, self.SHARE * max(len(self.recent), 8))
                and now - self.last_cut >= self.COOLDOWN_S and self.limit > 1):
            self.limit = max(1, self.limit * 3 // 4)
            self.last_cut, self.cuts = now, self.cuts + 1
            self.recent.clear()
            log.info("rate limited: concurrency now %d", self.limit)


class FailureWatch:
    """Says when to give up: STOP_STREAK failed attempts in a row and no success for
    STOP_SECONDS since the first of them."""

    def __init__(self, clock=time.monotonic):
        self.clock = clock
        self.streak = 0
        self.since = 0.0
        self.recent: deque[bool] = deque(maxlen=CALM_WINDOW)  # True: a failed attempt

    @property
    def calm(self) -> bool:
        """Few of the recent attempts failed (and enough were seen to say so)."""
        return (len(self.recent) >= CALM_WINDOW // 10
                and sum(self.recent) < CALM_SHARE * len(self.recent))

    def ok(self) -> None:
        self.streak = 0
        self.recent.append(False)

    def failed(self, why: str, rate_limited: bool = False) -> ProviderError | None:
        self.recent.append(not rate_limited)
        now = self.clock()
        if self.streak == 0:
            self.since = now
        self.streak += 1
        if self.streak >= STOP_STREAK and now - self.since >= STOP_SECONDS:
            return ProviderError(
                f"stopped: the last {self.streak} requests all failed over "
                f"{now - self.since:.0f} s (last: {why}); is the server up and the model "
                "name right? Finished batches are kept, run again to resume")
        return None


def retry_after(exc: Exception) -> float | None:
    """Seconds the server asked us to wait (retry-after-ms, then Retry-After), or None."""
    headers = getattr(getattr(exc, "response", None), "headers", None)
    if not headers:
        return None
    for name, scale in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        try:
            value = float(headers.get(name, ""))
        except ValueError:
            continue
        if 0 <= value / scale <= RETRY_AFTER_MAX_S:
            return value / scale
    return None


def backoff(tries: int, exc: Exception | None = None, calm: bool = False) -> float:
    """Wait before attempt `tries` + 1: the server's Retry-After, else 0.5 s (0.1 s when
    `calm`: an isolated error) doubling to 8 s, jittered down by up to a quarter (so items
    that failed together do not return together)."""
    asked = retry_after(exc) if exc is not None else None
    if asked is not None:
        return asked
    first = CALM_FIRST_S if calm else BACKOFF_FIRST_S
    return min(BACKOFF_MAX_S, first * 2 ** (tries - 1)) * (1 - 0.25 * random.random())
