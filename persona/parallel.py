"""The offline stages' per-item work on every core: forked workers, results in order.

Writing an answer or a question with the offline grammar, and judging it on its own, depends
only on its slot and attempt (seeded per item), so it can run anywhere; what depends on
other items (dedup, the run's question index) stays in the parent, in order. So the bytes
are the same with one process or several.

The workers are forked once per stage with the spec, the provider and the loaded lemma
dictionary in memory (nothing to pickle but the requests and the results). Only where fork
is safe and cheap (Linux) and more than one core is ours; elsewhere, and for small rounds,
everything runs in this process.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

MIN_ITEMS = 64  # a round smaller than this is not worth the round trip to the workers
# chunks per worker: smaller chunks even out the workers' last ones (a chunk of a round of
# 3,000 answers is ~50 of them, ~70 ms), larger ones cost fewer round trips
CHUNKS = 32

_WORK: Callable | None = None  # the function the forked workers run (set before the fork)


def _run(item):
    return _WORK(item)


def workers() -> int:
    """Cores this process may use (at most 4: beyond that the parent's in-order work is the
    bottleneck); 1 where fork is not the default, safe way."""
    if sys.platform != "linux" or os.environ.get("PERSONA_WORKERS") == "1":
        return 1
    try:
        n = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        n = os.cpu_count() or 1
    return max(1, min(4, n, int(os.environ.get("PERSONA_WORKERS") or n)))


@contextmanager
def pool(work: Callable) -> Iterator[Callable[[list], list]]:
    """Yields `run(items)`: `work(item)` for every item, in order, spread over forked
    workers for large rounds, as an iterator (the parent takes each result as its chunk is
    done, while the workers go on). `work` must be a function of its item alone (the state
    it reads is the parent's at the fork). The workers are forked at the first large round
    (a stage whose rounds are all small, or answered ahead, forks none)."""
    global _WORK
    n = workers()
    if n <= 1:
        yield lambda items: (work(i) for i in items)
        return
    import gc
    import multiprocessing

    procs = None

    def run(items: list):
        nonlocal procs
        global _WORK
        if len(items) < MIN_ITEMS:
            return (work(i) for i in items)
        if procs is None:
            _WORK = work
            # Objects that exist now go to a permanent generation: the workers' garbage
            # collector then does not walk (and so copy, page by page) the parent's heap.
            gc.freeze()
            procs = multiprocessing.get_context("fork").Pool(n)
        return procs.imap(_run, items, chunksize=max(4, len(items) // (n * CHUNKS)))

    try:
        yield run
    finally:
        if procs is not None:
            procs.terminate()
            procs.join()
            gc.unfreeze()
        _WORK = None


class Later:
    """`fn(*args)` started now in a forked worker (where workers() allows), its result on
    `get()`; else computed on `get()` in this process. For a piece of work that needs only
    what the files and memory hold now (the report's copy ratios beside the rest of it)."""

    def __init__(self, fn: Callable, *args):
        self.fn, self.args = fn, args
        self._pool = self._async = None
        if workers() > 1:
            import multiprocessing

            self._pool = multiprocessing.get_context("fork").Pool(1)
            self._async = self._pool.apply_async(fn, args)

    def get(self):
        if self._async is None:
            return self.fn(*self.args)
        try:
            return self._async.get()
        finally:
            self._pool.terminate()
            self._pool.join()

