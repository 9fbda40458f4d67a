"""Where a run's files live, and the per-stage manifest that makes reruns resume safely.

A stage folder holds `manifest.json` (the parameters it was made with) and numbered batch
files. A batch file is written atomically and last, so its existence means "done": a rerun
skips it. A rerun with other parameters is refused (or, with --force, the stage is redone),
never silently mixed.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

from persona.errors import WorkspaceError
from persona.io import write_json


@dataclass(frozen=True)
class Workspace:
    root: Path
    persona: str

    @property
    def templates_file(self) -> Path:
        return self.root / "templates" / f"{self.persona}.jsonl"

    @property
    def prompts(self) -> Path:
        """`prompts/<stage>.md` here replaces the built-in LLM prompt of that stage."""
        return self.root / "prompts"

    @property
    def generated(self) -> Path:
        return self.root / "generated" / self.persona

    @property
    def answers(self) -> Path:
        return self.generated / "answers"

    @property
    def dialogues(self) -> Path:
        return self.generated / "dialogues"

    @property
    def final(self) -> Path:
        return self.root / "final" / self.persona

    def invalid(self, stage: str) -> Path:
        return self.generated / "invalid" / stage

    @staticmethod
    def batch(folder: Path, index: int) -> Path:
        return folder / f"batch_{index + 1:04d}.jsonl"

    @staticmethod
    def stats(folder: Path, index: int) -> Path:
        return folder / f"batch_{index + 1:04d}.stats.json"

    def prepare(self, folder: Path, stage: str, params: dict, force: bool) -> None:
        """Make `folder` hold only work of `params`: claim it, or refuse a mismatch."""
        manifest = folder / "manifest.json"
        if force:
            for path in (folder, self.invalid(stage)):
                shutil.rmtree(path, ignore_errors=True)
        elif manifest.exists():
            old = json.loads(manifest.read_text(encoding="utf-8")).get("params", {})
            if old != params:
                diff = ", ".join(f"{k}: {old.get(k)!r} -> {v!r}" for k, v in params.items()
                                 if old.get(k) != v)
                raise WorkspaceError(
                    f"holds {stage} output made with other settings ({diff}); rerun with "
                    "--force to redo the stage, or use another --workspace", file=str(folder))
        elif folder.exists() and any(folder.glob("batch_*.jsonl")):
            raise WorkspaceError(f"holds {stage} batches without a manifest; rerun with --force",
                                 file=str(folder))
        folder.mkdir(parents=True, exist_ok=True)
        write_json(manifest, {"stage": stage, "params": params})

    @staticmethod
    def fingerprint(folder: Path) -> dict:
        manifest = folder / "manifest.json"
        if not manifest.exists():
            return {}
        return json.loads(manifest.read_text(encoding="utf-8")).get("params", {})


# -- the workspace lock ----------------------------------------------------------------------

LOCK_NAME = ".persona.lock"
_held: dict[Path, int] = {}  # lock files this process holds, with their nesting depth


@contextmanager
def workspace_lock(root: Path | str, command: str) -> Iterator[dict | None]:
    """Hold `root/.persona.lock` while a command writes the workspace.

    A second command on the same workspace gets a WorkspaceError (exit 2) naming the holder
    (pid, command, since when, host). The lock is an `flock` on the file, so the kernel drops
    it when its holder dies, even by SIGKILL: a file left behind is taken over, and the
    context yields what it said about its dead holder (None when there was none). Nesting in
    one process is allowed. Also the first write into `root`, so a path that cannot be a
    workspace (/dev/null, /proc/x, /sys/kernel) fails here as one line.
    """
    path = _lock_path(Path(root))
    if path in _held:
        _held[path] += 1
        try:
            yield None
        finally:
            _held[path] -= 1
        return
    fd, previous = _acquire(path, command)
    _held[path] = 1
    try:
        yield previous
    finally:
        del _held[path]
        # Unlink while still holding the lock; _acquire checks the inode, so a process that
        # opened the old file in between retries on a fresh one instead of sharing a lock.
        with suppress(OSError):
            path.unlink()
        os.close(fd)


def _lock_path(root: Path) -> Path:
    try:
        if root.exists() and not root.is_dir():
            raise WorkspaceError("not a folder, cannot be a workspace", file=str(root))
        root.mkdir(parents=True, exist_ok=True)
        return (root / LOCK_NAME).resolve()
    except OSError as e:
        raise WorkspaceError(f"cannot use as a workspace: {e.strerror or e}",
                             file=str(root)) from None


def _acquire(path: Path, command: str) -> tuple[int, dict | None]:
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        except OSError as e:
            raise WorkspaceError(f"cannot use as a workspace: {e.strerror or e}",
                                 file=str(path.parent)) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(fd)
            os.close(fd)
            raise WorkspaceError(f"in use by {describe_holder(holder)}; wait for it to end, or "
                                 "use another --workspace", file=str(path.parent)) from None
        try:
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if not same:  # the holder unlinked it as we opened it: try again on the new file
            os.close(fd)
            continue
        previous = _read_holder(fd)
        info = {"pid": os.getpid(), "command": command, "host": socket.gethostname(),
                "since": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())}
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(info) + "\n").encode(), 0)
        return fd, previous


def _read_holder(fd: int) -> dict | None:
    try:
        data = json.loads(os.pread(fd, 4096, 0).decode("utf-8", "replace") or "null")
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def describe_holder(holder: dict | None) -> str:
    """`pid 123 (persona run, since 2026-11-29 08:50:12 UTC on host)`."""
    if not holder:
        return "another command (it has not said who it is yet)"
    host = f" on {holder['host']}" if holder.get("host") else ""
    return (f"pid {holder.get('pid', '?')} ({holder.get('command', '?')}, since "
            f"{holder.get('since', '?')}{host})")
