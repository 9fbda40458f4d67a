"""simplemma, with its dictionaries read from a sorted index mapped into memory.

simplemma ships each language's dictionary lzma-compressed and front-coded; decoding the
Czech one takes ~0.6 s of pure Python in every process that lemmatizes (an offline run, a
moderation pass, a bench), and even a marshal dump of the decoded dictionary (362,000
entries) takes ~0.2 s to read back, for the few hundred words an offline run looks up.
So the decoded dictionary is written once, sorted, to an index file under the user's cache
folder (keyed by simplemma's version and the sha256 of the shipped file) and looked up in
place by binary search over the mapped file: opening it costs nothing, a lookup ~10 µs,
and forked workers share its pages. A broken or foreign index is built again; where none can
be written (a read-only home), the decoded dictionary is used in memory. If simplemma's
internals change, the cache is simply not used.

The index file: MAGIC, the entry count (4 bytes), count + 1 offsets (4 bytes each), then
the entries `key NUL value` in key order; integers in this machine's byte order, which the
magic names (a file from the other order is rebuilt).
"""

from __future__ import annotations

import hashlib
import mmap
import os
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import suppress
from pathlib import Path

_installed = False
_lock = threading.Lock()

MAGIC = b"PERSONA-LEMMAS-1" + (b"L" if sys.byteorder == "little" else b"B")
_HEAD = len(MAGIC) + 4


def load():
    """The simplemma module, its dictionary loader wrapped with the cache (once)."""
    import simplemma

    global _installed
    with _lock:
        if not _installed:
            _installed = True
            with suppress(ImportError, AttributeError):
                _install()
    return simplemma


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "persona" / "simplemma"


class SortedIndex:
    """A read-only bytes -> bytes mapping over an index file (see the module's docstring),
    with the methods simplemma calls on its decoded dictionary (`get`, `[]`, `in`, `len`,
    iteration). Raises ValueError on a file that is not a whole index."""

    def __init__(self, path: Path):
        with open(path, "rb") as fh:
            self._mm = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
        mm = self._mm
        if len(mm) < _HEAD or mm[: len(MAGIC)] != MAGIC:
            raise ValueError(f"{path}: not a lemma index")
        self._n = int.from_bytes(mm[len(MAGIC):_HEAD], sys.byteorder)
        end = _HEAD + 4 * (self._n + 1)
        if end > len(mm):
            raise ValueError(f"{path}: truncated")
        self._offsets = memoryview(mm)[_HEAD:end].cast("I")
        if self._offsets[0] != end or self._offsets[self._n] != len(mm):
            raise ValueError(f"{path}: truncated")

    def _find(self, key: bytes) -> int:
        """The entry holding `key`, or -1."""
        mm, off = self._mm, self._offsets
        lo, hi = 0, self._n
        while lo < hi:
            mid = (lo + hi) // 2
            start = off[mid]
            k = mm[start:mm.find(b"\0", start, off[mid + 1])]
            if k < key:
                lo = mid + 1
            elif k > key:
                hi = mid
            else:
                return mid
        return -1

    def get(self, key: bytes, default=None):
        i = self._find(key)
        if i < 0:
            return default
        start, end = self._offsets[i], self._offsets[i + 1]
        return self._mm[self._mm.find(b"\0", start, end) + 1:end]

    def __getitem__(self, key: bytes) -> bytes:
        value = self.get(key)
        if value is None:
            raise KeyError(key)
        return value

    def __contains__(self, key: object) -> bool:
        return isinstance(key, bytes) and self._find(key) >= 0

    def __len__(self) -> int:
        return self._n

    def __iter__(self) -> Iterator[bytes]:
        mm, off = self._mm, self._offsets
        for i in range(self._n):
            yield mm[off[i]:mm.find(b"\0", off[i], off[i + 1])]

    def items(self) -> Iterator[tuple[bytes, bytes]]:
        mm, off = self._mm, self._offsets
        for i in range(self._n):
            key, _, value = mm[off[i]:off[i + 1]].partition(b"\0")
            yield key, value


def write_index(path: Path, data: dict[bytes, bytes]) -> None:
    """Write `data` as an index file, atomically, with the user's umask. ValueError when a
    key holds a NUL byte (it could not be told from the value) or the file would pass 4 GiB."""
    from persona.io import file_mode

    keys = sorted(data)
    if any(b"\0" in k for k in keys):
        raise ValueError("a key holds a NUL byte")
    entries = [k + b"\0" + data[k] for k in keys]
    offsets = [0] * (len(entries) + 1)
    pos = offsets[0] = _HEAD + 4 * (len(entries) + 1)
    for i, entry in enumerate(entries, 1):
        pos += len(entry)
        offsets[i] = pos
    if pos >= 2**32:
        raise ValueError("too large for 4-byte offsets")
    from array import array

    table = array("I", offsets)
    if table.itemsize != 4:
        raise ValueError("no 4-byte unsigned integers here")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(MAGIC + len(entries).to_bytes(4, sys.byteorder))
            fh.write(table.tobytes())
            fh.write(b"".join(entries))
        os.chmod(tmp, file_mode())
        os.replace(tmp, path)
    finally:
        with suppress(OSError):
            os.unlink(tmp)


def _install() -> None:
    import simplemma
    from simplemma.strategies.dictionaries import dictionary_factory as factory

    original = factory._load_dictionary_from_disk
    folder = factory.DATA_FOLDER
    version = getattr(simplemma, "__version__", "0")

    def load_dictionary(langcode: str):
        shipped = folder / f"{langcode}.plzma"
        try:
            digest = hashlib.sha256(shipped.read_bytes()).hexdigest()[:16]
        except OSError:
            return original(langcode)  # an unsupported language: simplemma says so
        path = cache_dir() / f"{langcode}-{version}-{digest}.index"
        with suppress(OSError, ValueError):
            return SortedIndex(path)
        data = original(langcode)
        with suppress(OSError, ValueError):
            write_index(path, data)
            for old in path.parent.glob(f"{langcode}-*.marshal"):  # the cache's old format
                old.unlink(missing_ok=True)
            return SortedIndex(path)
        return data

    factory._load_dictionary_from_disk = load_dictionary
