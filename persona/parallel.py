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

import functools
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


class Warm:
    """A forked worker that runs `prepare()` as soon as it starts (a tokenizer to load, ~0.3 s
    that holds the GIL), so that the preparation runs on another core beside what this
    process does next; `later(fn, *args)` then runs `fn(prepared, *args)` there and hands
    the worker to the handle it returns. Where workers() allows none, or the preparation
    failed in the worker, both run in this process at `get()` (so a failure is raised here,
    as it is). `close()` ends a worker that was never used."""

    def __init__(self, prepare: Callable[[], object]):
        self.prepare = prepare
        self._pool = None
        if workers() > 1:
            import multiprocessing

            self._pool = multiprocessing.get_context("fork").Pool(
                1, initializer=_prepare, initargs=(prepare,))

    def later(self, fn: Callable, *args) -> _WarmCall:
        pool, self._pool = self._pool, None
        here = functools.partial(_here, self.prepare, fn, args)
        return _WarmCall(pool, pool.apply_async(_with_prepared, (fn, args)) if pool else None,
                         here)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.terminate()
            self._pool.join()
            self._pool = None


class _WarmCall:
    """Warm.later's handle: `get()` the worker's result (then the worker ends), or, where
    there was none or it could not prepare, `here()` in this process."""

    def __init__(self, pool, result, here: Callable[[], object]):
        self._pool, self._result, self._here = pool, result, here

    def get(self):
        if self._result is None:
            return self._here()
        try:
            got = self._result.get()
        finally:
            self._pool.terminate()
            self._pool.join()
        return self._here() if isinstance(got, _Unprepared) else got


_PREPARED: tuple = ()  # in Warm's worker: (what it prepared,), or () if that failed


class _Unprepared:
    """What Warm's worker answers when its preparation failed."""


def _prepare(prepare: Callable[[], object]) -> None:
    global _PREPARED
    try:
        _PREPARED = (prepare(),)
    except Exception:  # noqa: BLE001 - the parent does it again and reports the error
        _PREPARED = ()


def _with_prepared(fn: Callable, args: tuple):
    if not _PREPARED:
        return _Unprepared()
    return fn(_PREPARED[0], *args)


def _here(prepare: Callable[[], object], fn: Callable, args: tuple):
    return fn(prepare(), *args)
