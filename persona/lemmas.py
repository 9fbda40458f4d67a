"""simplemma, with its dictionaries read from a marshal cache.

simplemma ships each language's dictionary lzma-compressed and front-coded; decoding the
Czech one takes ~0.6 s of pure Python in every process that lemmatizes (an offline run, a
moderation pass, a bench). The decoded dictionary (bytes -> bytes) is dumped once with
marshal under the user's cache folder, keyed by simplemma's version and the sha256 of the
shipped file, and read back in ~0.14 s. marshal data cannot run code; a broken or foreign
dump is decoded again and rewritten. If simplemma's internals change, the cache is simply
not used.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import threading
from contextlib import suppress
from pathlib import Path

_installed = False
_lock = threading.Lock()


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


def _install() -> None:
    import simplemma
    from simplemma.strategies.dictionaries import dictionary_factory as factory

    from persona.io import file_mode

    original = factory._load_dictionary_from_disk
    folder = factory.DATA_FOLDER
    version = getattr(simplemma, "__version__", "0")

    def load_dictionary(langcode: str) -> dict[bytes, bytes]:
        import marshal

        shipped = folder / f"{langcode}.plzma"
        try:
            digest = hashlib.sha256(shipped.read_bytes()).hexdigest()[:16]
        except OSError:
            return original(langcode)  # an unsupported language: simplemma says so
        dump = cache_dir() / f"{langcode}-{version}-{digest}.marshal"
        with suppress(OSError, EOFError, ValueError, TypeError):
            data = marshal.loads(dump.read_bytes())
            if isinstance(data, dict) and data:
                return data
        data = original(langcode)
        with suppress(OSError):
            dump.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{dump.name}.", dir=dump.parent)
            try:
                with os.fdopen(fd, "wb") as fh:
                    fh.write(marshal.dumps(data))
                os.chmod(tmp, file_mode())
                os.replace(tmp, dump)
            finally:
                with suppress(OSError):
                    os.unlink(tmp)
        return data

    factory._load_dictionary_from_disk = load_dictionary
