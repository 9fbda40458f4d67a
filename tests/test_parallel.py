"""persona/parallel.py: Warm prepares in a forked worker and computes there later."""

from __future__ import annotations

import os
import sys

import pytest

from persona.errors import InputError
from persona.parallel import Warm

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="forked workers: Linux only")


def _pid_and_args(prepared, *args):
    return prepared, os.getpid(), args


def _prepared_pid():
    return ("ready", os.getpid())


def _fails():
    raise InputError("the tokenizer is missing", file="cache/o200k", field="encoding")


def test_warm_prepares_in_a_worker_and_computes_there(monkeypatch):
    monkeypatch.setenv("PERSONA_WORKERS", "2")
    warm = Warm(_prepared_pid)
    (ready, prepared_in), worker, args = warm.later(_pid_and_args, 1, "x").get()
    assert ready == "ready" and prepared_in == worker != os.getpid() and args == (1, "x")
    warm.close()  # after later(): nothing left to end, no error


def test_warm_in_one_process(monkeypatch):
    monkeypatch.setenv("PERSONA_WORKERS", "1")
    (ready, prepared_in), here, _ = Warm(_prepared_pid).later(_pid_and_args).get()
    assert ready == "ready" and prepared_in == here == os.getpid()


def test_a_failed_preparation_is_raised_here_as_it_is(monkeypatch):
    """The worker cannot hand an error back whole (its class may not pickle): the parent
    prepares again and raises the error itself, file and field included."""
    monkeypatch.setenv("PERSONA_WORKERS", "2")
    with pytest.raises(InputError) as e:
        Warm(_fails).later(_pid_and_args).get()
    assert "the tokenizer is missing" in str(e.value) and e.value.field == "encoding"


def test_an_unused_warm_worker_ends_on_close(monkeypatch):
    monkeypatch.setenv("PERSONA_WORKERS", "2")
    warm = Warm(_prepared_pid)
    pool = warm._pool
    procs = list(pool._pool)
    warm.close()
    assert warm._pool is None and not any(p.is_alive() for p in procs)
