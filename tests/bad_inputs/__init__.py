"""The bad-input table: every command x every kind of bad input, run through the real CLI.

Each module in this package holds a `CASES` list for one area (one module per command group,
so a new command adds a module, not lines in a shared file). `tests/test_bad_inputs.py`
collects them all and runs each case in a subprocess, asserting: the expected exit code,
at most `max_lines` lines on stderr, no `Traceback`, the expected text on stderr, and that no
file that existed in the workspace before the command (an earlier run's output) changed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Case:
    id: str
    # argv after the program name; "{ws}" is replaced by the case's temporary workspace
    # (also the command's cwd), "{data}" by the shared read-only example dataset folder.
    args: tuple[str, ...]
    exit: int = 2
    stderr: str | None = None  # a substring expected on stderr (case-insensitive)
    setup: Callable[[Path], None] | None = None  # builds files in the workspace first
    prog: str = "persona"  # or "disk-manager"
    env: dict[str, str] = field(default_factory=dict)
    max_lines: int = 3
    timeout: float = 60.0
