"""File I/O at the edges: atomic writes and streaming JSONL reads with line-precise errors."""

from __future__ import annotations

import json
import os
import tempfile
import tomllib
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from persona.errors import InputError, PersonaError


@contextmanager
def atomic_writer(path: Path, mode: str = "w") -> Iterator[IO[Any]]:
    """Write to a temp file beside `path`, fsync, then rename: readers never see half a file."""
    path = Path(path)
    if path.exists() and not path.is_file():
        # The rename would put a regular file in place of a folder, a device (/dev/null!)
        # or a pipe: refuse instead.
        raise InputError("not a regular file, will not write over it", file=str(path))
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as e:  # name what the user asked for, not our temp file
        raise OSError(e.errno, f"cannot write there: {e.strerror or e}", str(path)) from None
    try:
        # mkstemp makes 0600 and the mode survives the rename: give the file the mode any
        # other tool's new file gets (0644 under umask 022), so a dataset stays shareable.
        os.fchmod(fd, file_mode())
        with os.fdopen(fd, mode, encoding=None if "b" in mode else "utf-8",
                       newline=None if "b" in mode else "\n") as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def file_mode() -> int:
    """The mode `open()` gives a new file: 0o666 minus the process umask."""
    return 0o666 & ~current_umask()


def current_umask() -> int:
    """The process umask, read without changing it where Linux allows (thread-safe there)."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)  # elsewhere: the only portable way is to set it and put it back
    os.umask(mask)
    return mask


def dumps(obj: Any) -> str:
    """One canonical JSON line: UTF-8 text (Czech stays readable), stable key order as given."""
    return json.dumps(obj, ensure_ascii=False, separators=(", ", ": "))


def write_jsonl(path: Path, rows: Iterable[dict]) -> int:
    n = 0
    with atomic_writer(path) as fh:
        for row in rows:
            fh.write(dumps(row) + "\n")
            n += 1
    return n


def write_json(path: Path, obj: Any) -> None:
    with atomic_writer(path) as fh:
        fh.write(json.dumps(obj, ensure_ascii=False, indent=2) + "\n")


def write_text(path: Path, text: str) -> None:
    with atomic_writer(path) as fh:
        fh.write(text)


def check_readable(path: Path) -> None:
    """Raise InputError (exit 2) for a path that is missing, not a file, or not UTF-8 text."""
    path = Path(path)
    if not path.exists():
        raise InputError("no such file", file=str(path))
    if not path.is_file():
        raise InputError("not a file", file=str(path))
    with open(path, "rb") as fh:
        head = fh.read(8192)
    if b"\x00" in head:
        raise InputError("binary file, expected UTF-8 text", file=str(path))
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as e:
        # A multi-byte character cut at the 8 KiB boundary is fine; anything earlier is not.
        if e.start < len(head) - 4:
            raise InputError("not UTF-8 text", file=str(path)) from None


def iter_jsonl(path: Path) -> Iterator[tuple[int, dict]]:
    """Yield (line number, object) for every non-blank line; a broken line raises InputError."""
    check_readable(path)
    with open(path, encoding="utf-8") as fh:
        lines = _decoded_lines(fh, path)
        for lineno, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise InputError(f"invalid JSON: {e.msg}", file=str(path), line=lineno) from None
            if not isinstance(obj, dict):
                raise InputError("expected a JSON object", file=str(path), line=lineno)
            yield lineno, obj


def _decoded_lines(fh: IO[str], path: Path) -> Iterator[str]:
    lineno = 0
    while True:
        try:
            line = fh.readline()
        except UnicodeDecodeError:
            raise InputError("not UTF-8 text", file=str(path), line=lineno + 1) from None
        if not line:
            return
        lineno += 1
        yield line


def read_toml(path: Path, error: type[PersonaError] = InputError) -> dict:
    """Parse a TOML file; a missing, unreadable or malformed one raises `error` (one line)."""
    path = Path(path)
    if not path.is_file():
        raise error("no such file" if not path.exists() else "not a file", file=str(path))
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise error("not UTF-8 text", file=str(path)) from None
    except tomllib.TOMLDecodeError as e:
        raise error(f"invalid TOML: {e}", file=str(path)) from None
