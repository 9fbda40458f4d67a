"""Exact OpenAI token counts, offline, with the real tiktoken.

tiktoken downloads its BPE files on first use, which fails offline. The `bpe-openai` wheel
ships the same files (gzipped); we write them, decompressed, into tiktoken's cache under the
name tiktoken looks for (sha1 of the official URL). tiktoken then loads them as if it had
downloaded them and still checks their sha256, so the counts are tiktoken's own.

A user-set TIKTOKEN_CACHE_DIR is respected: a valid file already there is used as is.
Models whose encoding we cannot serve get o200k_base counts marked `exact=False`.
"""

from __future__ import annotations

import gzip
import hashlib
import importlib.util
import logging
import os
import re
import tempfile
import threading
from contextlib import suppress
from pathlib import Path
from typing import TYPE_CHECKING, Any

from persona.errors import PersonaError
from persona.io import file_mode

if TYPE_CHECKING:  # tiktoken is imported lazily: `persona --help` should not pay for it.
    import tiktoken

log = logging.getLogger(__name__)

_BLOB_URL = "https://openaipublic.blob.core.windows.net/encodings/{name}.tiktoken"
# The sha256 tiktoken expects (tiktoken_ext/openai_public.py); it verifies them again on load.
_EXPECTED_SHA256 = {
    "cl100k_base": "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
    "o200k_base": "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
}
APPROXIMATE_ENCODING = "o200k_base"

# Model families (regexes) → encoding. A family matches itself and its dated snapshots or
# variants after "-" or ":" (gpt-4o-mini-2024-07-18); fine-tuned names (ft:gpt-4o-mini:org::id)
# match their base. gpt-4.7 matches nothing rather than gpt-4: no silent guess.
_FAMILIES = {
    r"gpt-4o": "o200k_base",
    r"chatgpt-4o": "o200k_base",
    r"gpt-4\.1": "o200k_base",
    r"gpt-4\.5": "o200k_base",
    r"gpt-5(?:\.\d+)?": "o200k_base",
    r"o1": "o200k_base",
    r"o3": "o200k_base",
    r"o4": "o200k_base",
    r"gpt-4": "cl100k_base",
    r"gpt-3\.5-turbo": "cl100k_base",
    r"gpt-35-turbo": "cl100k_base",
    r"text-embedding-3": "cl100k_base",
    r"text-embedding-ada-002": "cl100k_base",
}
_FAMILY_RES = [
    (re.compile(rf"^(?:ft:)?{family}(?:[-:]|$)"), name) for family, name in _FAMILIES.items()
]

# Chat-markup tokens OpenAI's models use internally; a training file must not contain their
# text either, though tiktoken's public encodings do not list them.
CHAT_MARKUP_TOKENS = frozenset({"<|im_start|>", "<|im_end|>", "<|im_sep|>"})

_lock = threading.Lock()
_provisioned: set[tuple[str, str]] = set()


def encoding_name_for_model(model: str) -> str | None:
    """The encoding OpenAI uses for `model`, or None when we do not know it."""
    model = model.strip().lower()
    return next((name for regex, name in _FAMILY_RES if regex.match(model)), None)


def encoding_for_model(model: str) -> tuple[tiktoken.Encoding | None, bool, str]:
    """(encoding, exact, encoding name). Unknown models get o200k_base counts, exact=False."""
    name = encoding_name_for_model(model)
    if name is None:
        log.info(
            "no known encoding for model %r; counting with %s (approximate)",
            model,
            APPROXIMATE_ENCODING,
        )
        return get_encoding(APPROXIMATE_ENCODING), False, APPROXIMATE_ENCODING
    return get_encoding(name), True, name


def get_encoding(name: str) -> tiktoken.Encoding:
    """tiktoken's own encoding `name`, provisioned from bpe-openai's files on first use."""
    import tiktoken

    if name not in _EXPECTED_SHA256:
        raise PersonaError(
            f"encoding {name!r} is not available offline; "
            f"use one of {', '.join(sorted(_EXPECTED_SHA256))}"
        )
    with _lock:
        cache_dir = _cache_dir()
        if (cache_dir, name) not in _provisioned:
            _provision(name, Path(cache_dir))
            _provisioned.add((cache_dir, name))
        _fast_ranks(Path(cache_dir))
    try:
        return tiktoken.get_encoding(name)
    except Exception as e:  # tiktoken raises requests/ValueError/OSError: one line for the user
        raise PersonaError(
            f"could not load tiktoken encoding {name!r} from {cache_dir}: {e}"
        ) from e


def _fast_ranks(cache_dir: Path) -> None:
    """Let tiktoken read its token ranks from a marshal dump next to the BPE file (~0.05 s)
    instead of parsing 200,000 base64 lines (~0.3 s, every process that counts). The dump is
    keyed by the file's expected sha256, which tiktoken checked when it was made; marshal
    data cannot run code. tiktoken_ext.openai_public calls `load_tiktoken_bpe` by its module
    name, so that name is wrapped (once)."""
    import tiktoken_ext.openai_public as public

    if getattr(public.load_tiktoken_bpe, "_persona", False):
        return
    original = public.load_tiktoken_bpe

    def load(blob: str, expected_hash: str | None = None) -> dict[bytes, int]:
        import marshal

        dump = cache_dir / f"{expected_hash}.ranks.marshal" if expected_hash else None
        if dump is not None and dump.is_file():
            try:
                ranks = marshal.loads(dump.read_bytes())
                if isinstance(ranks, dict) and ranks:
                    return ranks
            except (EOFError, ValueError, TypeError):
                pass  # a broken dump: parse the file again and write a new one
        ranks = original(blob, expected_hash=expected_hash)
        if dump is not None:
            with suppress(OSError):
                fd, tmp = tempfile.mkstemp(prefix=f".{dump.name}.", dir=cache_dir)
                with os.fdopen(fd, "wb") as fh:
                    fh.write(marshal.dumps(ranks))
                os.chmod(tmp, file_mode())
                os.replace(tmp, dump)
        return ranks

    load._persona = True
    public.load_tiktoken_bpe = load


def cache_file(name: str, cache_dir: Path) -> Path:
    """Where tiktoken looks for `name`: sha1 hex of the official blob URL."""
    return cache_dir / hashlib.sha1(_BLOB_URL.format(name=name).encode()).hexdigest()


def _cache_dir() -> str:
    """TIKTOKEN_CACHE_DIR if the user set it, else a persona cache dir (exported for tiktoken)."""
    user = os.environ.get("TIKTOKEN_CACHE_DIR")
    if user:
        return user
    if user == "":
        # Empty means "no cache" to tiktoken, which then always downloads; we cannot help.
        raise PersonaError(
            "TIKTOKEN_CACHE_DIR is set to '' (tiktoken caching disabled), so "
            "tiktoken must download encodings; unset it to count offline"
        )
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    path = os.path.join(base, "persona", "tiktoken")
    # tiktoken reads the variable at load time; setting it is the only hook it offers.
    os.environ["TIKTOKEN_CACHE_DIR"] = path
    return path


def _provision(name: str, cache_dir: Path) -> None:
    target = cache_file(name, cache_dir)
    expected = _EXPECTED_SHA256[name]
    if target.is_file() and _sha256(target.read_bytes()) == expected:
        return
    data = _tiktoken_bytes(_bundled_file(name))
    if _sha256(data) != expected:
        raise PersonaError(
            f"bundled {name} from bpe-openai does not match tiktoken's "
            f"expected sha256 {expected}; reinstall bpe-openai"
        )
    cache_dir.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=cache_dir)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, file_mode())  # mkstemp makes 0600; a shared cache must stay readable
        os.replace(tmp, target)  # atomic: a concurrent process sees no file or the whole file
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    log.debug("provisioned %s into %s", name, target)


def _bundled_file(name: str) -> Path:
    # find_spec locates the package without importing it (its native extension is not needed).
    spec = importlib.util.find_spec("bpe_openai")
    if spec is None or not spec.submodule_search_locations:
        raise PersonaError(
            "package bpe-openai is not installed; it ships the encoding files "
            "for offline counting: pip install bpe-openai"
        )
    data_dir = Path(next(iter(spec.submodule_search_locations))) / "data"
    for candidate in (data_dir / f"{name}.tiktoken.gz", data_dir / f"{name}.tiktoken"):
        if candidate.is_file():
            return candidate
    raise PersonaError(f"bpe-openai has no {name} file under {data_dir}")


def _tiktoken_bytes(path: Path) -> bytes:
    """The file's bytes in tiktoken's format: gunzipped, and re-serialised if need be."""
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    return raw if raw.endswith(b"\n") and b"\r" not in raw else to_tiktoken_format(raw)


def to_tiktoken_format(raw: bytes) -> bytes:
    """Canonical tiktoken BPE text from base64-token/rank lines in any order or spacing."""
    ranks = []
    for line in raw.splitlines():
        if line.strip():
            token, rank = line.split()
            ranks.append((int(rank), token))
    ranks.sort()
    return b"".join(token + b" " + str(rank).encode() + b"\n" for rank, token in ranks)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def count_text(text: str, encoding: tiktoken.Encoding) -> int:
    """Tokens in `text`; special-token text (<|endoftext|>) counts as ordinary text."""
    return len(encoding.encode(text, disallowed_special=()))


def _string_tokens(value: Any, encoding: tiktoken.Encoding) -> int:
    # Strings nested in tool_calls/function_call are counted too (OpenAI's formula only
    # covers flat string fields; this is the closest reading for structured messages).
    if isinstance(value, str):
        return count_text(value, encoding)
    if isinstance(value, dict):
        return sum(_string_tokens(v, encoding) for v in value.values())
    if isinstance(value, list):
        return sum(_string_tokens(v, encoding) for v in value)
    return 0


def chat_tokens(messages: list[dict], encoding: tiktoken.Encoding) -> int:
    """Tokens OpenAI bills for a chat: 3 per message + every string value + 1 per name + 3."""
    total = 3  # every reply is primed with <|start|>assistant<|message|>
    for message in messages:
        total += 3
        for key, value in message.items():
            total += _string_tokens(value, encoding)
            if key == "name":
                total += 1
    return total


def example_tokens(obj: Any, encoding: tiktoken.Encoding) -> int | None:
    """Billed tokens of one chat example, or None if it has no list of message objects."""
    messages = obj.get("messages") if isinstance(obj, dict) else None
    if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
        return None
    return chat_tokens(messages, encoding)


def estimate_request_tokens(messages: list[dict], model: str) -> tuple[int, bool]:
    """Prompt tokens of one chat request to `model`, and whether the count is exact."""
    encoding, exact, _ = encoding_for_model(model)
    return chat_tokens(messages, encoding), exact


def special_token_texts(encoding: tiktoken.Encoding) -> frozenset[str]:
    """Texts a training file must not contain: the encoding's special tokens + chat markup."""
    return frozenset(encoding.special_tokens_set) | CHAT_MARKUP_TOKENS
