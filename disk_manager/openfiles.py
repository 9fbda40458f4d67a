"""Which files running processes hold open, so `clean` never pulls one from under them."""

from __future__ import annotations

import logging
import os

import psutil

log = logging.getLogger(__name__)


def open_paths() -> set[str]:
    """Real paths of the regular files open in any process we may inspect.

    Processes of other users raise AccessDenied; those files are not ours to delete either
    (the file system would refuse), so skipping them is safe.
    """
    paths: set[str] = set()
    denied = 0
    for proc in psutil.process_iter():
        try:
            for f in proc.open_files():
                paths.add(os.path.realpath(f.path))
        except (psutil.AccessDenied, psutil.NoSuchProcess, psutil.ZombieProcess):
            denied += 1
        except OSError as e:  # /proc vanished under us or a similar race
            log.debug("open_files of %s: %s", proc.pid, e)
    log.debug("open files: %d seen, %d processes not readable", len(paths), denied)
    return paths


def touches_open_file(paths: list[str], opened: set[str]) -> str | None:
    """The first open file that is one of `paths` or lies below one of them, else None."""
    for p in paths:
        real = os.path.realpath(p) if not os.path.islink(p) else os.path.abspath(p)
        prefix = real.rstrip(os.sep) + os.sep
        for o in opened:
            if o == real or o.startswith(prefix):
                return o
    return None
