"""The bad-input table: every command x every kind of bad input, run through the real CLI.

Each module in this package holds a `CASES` list for one area (one module per command group,
so a new command adds a module, not lines in a shared file). `tests/test_bad_inputs.py`
collects them all and runs each case in a subprocess, asserting: the expected exit code,
at most `max_lines` lines on stderr, no `Traceback`, the expected text on stderr, and that no
file that existed in the workspace before the command (an earlier run's output) changed.

Helpers for case modules (paths to build bad files from) are below the dataclass.
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
    # Builds files in the workspace first; may return a callable run after the command
    # (to stop a process it started, say).
    setup: Callable[[Path], Callable[[], None] | None] | None = None
    prog: str = "persona"  # or "disk-manager"
    env: dict[str, str] = field(default_factory=dict)  # "{ws}" is replaced here too
    max_lines: int = 3
    timeout: float = 60.0
    # The workspace starts as a copy of the shared finished workspace (templates/, generated/,
    # final/ of a `persona run --count 60`), so "no earlier output changed" is checked on it.
    workspace: bool = False
    root_ok: bool = True  # False: a permission case that root would pass (skipped as root)
    # A folder of the workspace the command may not write into: read_only_dir() makes it
    # 0555; root ignores that, so as root the command runs in a mount namespace where the
    # folder is a read-only bind mount (skipped only where `unshare -m` is refused).
    read_only: str = ""


# -- helpers for case modules ----------------------------------------------------------------

def closed_port() -> int:
    """A loopback port nobody listens on (bound, then released): "a server that is down"."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write(name: str, content: bytes | str) -> Callable[[Path], None]:
    """A setup that writes one file (bytes as given, text as UTF-8) into the workspace."""

    def setup(ws: Path) -> None:
        path = ws / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))

    return setup


def mkdir(name: str) -> Callable[[Path], None]:
    def setup(ws: Path) -> None:
        (ws / name).mkdir(parents=True, exist_ok=True)

    return setup


def hold_lock(command: str = "persona run",
              under: str = "") -> Callable[[Path], Callable[[], None]]:
    """A setup that starts a process holding the workspace lock (of the folder `under` in the
    workspace: a finetune --out, say); the harness stops it after."""

    def setup(ws: Path) -> Callable[[], None]:
        ws = ws / under if under else ws
        import os
        import subprocess
        import sys

        code = ("import sys, time\nfrom persona.workspace import workspace_lock\n"
                f"with workspace_lock(sys.argv[1], {command!r}):\n"
                "    print('locked', flush=True)\n    time.sleep(120)\n")
        root = str(Path(__file__).resolve().parents[2])  # this checkout's persona, not another
        env = {**os.environ, "PYTHONPATH": root}
        proc = subprocess.Popen([sys.executable, "-c", code, str(ws)], stdout=subprocess.PIPE,
                                text=True, env=env)
        assert proc.stdout.readline().strip() == "locked"

        def stop() -> None:
            proc.kill()
            proc.wait()
            proc.stdout.close()

        return stop

    return setup


BINARY = bytes(range(256)) * 16
NOT_UTF8 = "Babiš odpovídá\n".encode("iso8859_2")
HUGE_LINE = '{"messages": [{"role": "user", "content": "' + "a" * 3_000_000 + '"}'
CHAT_LINE = ('{"messages": [{"role": "user", "content": "Jak se máte?"}, '
             '{"role": "assistant", "content": "Dobře."}]}\n')


def mkfifo(name: str) -> Callable[[Path], None]:
    """A named pipe: a device-like path inside the workspace (safe to point writes at)."""

    def setup(ws: Path) -> None:
        import os

        os.mkfifo(ws / name)

    return setup


def read_only_dir(name: str) -> Callable[[Path], Callable[[], None]]:
    """A folder nobody but root may write into (cases using it set `read_only=name`)."""

    def setup(ws: Path) -> Callable[[], None]:
        folder = ws / name
        folder.mkdir()
        folder.chmod(0o555)
        return lambda: folder.chmod(0o755)  # so the temporary folder can be removed

    return setup
