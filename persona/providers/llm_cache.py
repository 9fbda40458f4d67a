"""The request cache: every answered request, keyed by a hash of model, messages and params.

One append-only JSONL file per workspace persona (`generated/<persona>/cache/requests.jsonl`);
a line is written (flushed to the OS) as soon as its answer arrives, so a run killed at any
moment re-sends only requests that had no answer. fsync runs at most once a second, in a
thread (it blocks for ~10 ms, which the event loop sending requests must not), and at close:
an fsync per answer cost ~30 % of the throughput at concurrency 64, and only a power loss, not
a killed process, can lose flushed lines. A half-written last line (killed mid-write) is
skipped on load. Only the answer and its usage are stored: never headers, never the key.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

FSYNC_EVERY_S = 1.0


def request_key(model: str, messages: list[dict], params: dict) -> str:
    blob = json.dumps({"model": model, "messages": messages, "params": params},
                      ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()


class RequestCache:
    """In memory only each key's place in the file (~170 bytes an entry, not the answer: a
    run's memory stays flat in its count); `get` reads the line back. Without a folder
    (tests, benchmarks) the entries live in memory."""

    def __init__(self, folder: Path | None):
        self.path = Path(folder) / "requests.jsonl" if folder else None
        self._memory: dict[str, dict] = {}
        self._offsets: dict[bytes, int] = {}  # key digest -> offset of its (last) line
        self._size = 0
        self._fh = None
        self._reader = None
        self._synced = 0.0
        self._syncer: threading.Thread | None = None
        if self.path and self.path.exists():
            for offset, entry in self._lines():
                self._offsets[_digest(entry["key"])] = offset
            self._size = self.path.stat().st_size

    def __len__(self) -> int:
        return len(self._offsets) if self.path else len(self._memory)

    def _lines(self) -> Iterator[tuple[int, dict]]:
        return self._lines_of(self.path)

    @staticmethod
    def _lines_of(path: Path) -> Iterator[tuple[int, dict]]:
        """(offset, entry) of every readable line of the file."""
        offset = 0
        with open(path, "rb") as fh:
            for line in fh:
                try:
                    entry = json.loads(line)
                except (json.JSONDecodeError, UnicodeDecodeError):
                    entry = None  # the line a kill cut short; its request is sent again
                if isinstance(entry, dict) and isinstance(entry.get("key"), str):
                    yield offset, entry
                offset += len(line)

    def entries(self) -> Iterator[dict]:
        """Every cached answer (the last one of a key answered twice), read from the file."""
        if self.path is None:
            yield from self._memory.values()
            return
        if self._fh is not None:
            self._fh.flush()
        if self.path.exists():
            for offset, entry in self._lines():
                if self._offsets.get(_digest(entry["key"])) == offset:
                    yield entry

    def get(self, key: str) -> dict | None:
        if self.path is None:
            return self._memory.get(key)
        offset = self._offsets.get(_digest(key))
        if offset is None:
            return None
        if self._reader is None:
            self._reader = open(self.path, "rb")  # noqa: SIM115 - kept open for the run
        self._reader.seek(offset)
        return json.loads(self._reader.readline())

    def put(self, key: str, kind: str, model: str, content: str, usage: dict,
            batch: bool = False, reask: int = 0, cut: bool = False,
            group: tuple[int, int] | None = None) -> None:
        entry = {"key": key, "kind": kind, "model": model, "content": content, "usage": usage}
        if group is not None:  # item i of n in one grouped request: its share of the usage
            entry["group"] = list(group)
        if batch:  # answered through the Batch API: priced at its discount
            entry["batch"] = True
        if reask:  # the n-th re-ask of a malformed answer
            entry["reask"] = reask
        if cut:  # the token limit ended it (finish_reason "length"): its tokens were paid
            entry["cut"] = True
        if self.path is None:
            self._memory[key] = entry
            return
        if self._fh is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fh = open(self.path, "ab")  # noqa: SIM115 - kept open
            self._size = self._fh.tell()
            # A cut-short last line would glue onto ours: start on a fresh line.
            if self._size and not _ends_with_newline(self.path):
                self._fh.write(b"\n")
                self._size += 1
        line = (json.dumps(entry, ensure_ascii=False) + "\n").encode()
        self._fh.write(line)
        self._fh.flush()
        self._offsets[_digest(key)] = self._size
        self._size += len(line)
        if time.monotonic() - self._synced >= FSYNC_EVERY_S and not (
                self._syncer and self._syncer.is_alive()):
            self._syncer = threading.Thread(target=os.fsync, args=(self._fh.fileno(),),
                                            daemon=True)
            self._syncer.start()
            self._synced = time.monotonic()

    def close(self) -> None:
        if self._syncer is not None:
            self._syncer.join()
            self._syncer = None
        if self._fh is not None:
            self._fh.flush()
            os.fsync(self._fh.fileno())
            self._fh.close()
            self._fh = None
        if self._reader is not None:
            self._reader.close()
            self._reader = None


def _digest(key: str) -> bytes:
    try:
        return bytes.fromhex(key)
    except ValueError:  # not one of our sha256 keys
        return key.encode()


def _ends_with_newline(path: Path) -> bool:
    with open(path, "rb") as fh:
        fh.seek(-1, os.SEEK_END)
        return fh.read(1) == b"\n"


def usage_by_kind(folder: Path) -> dict[str, dict]:
    """Requests answered, tokens used and their cost (USD, None when the model is not
    priced) per stage kind, over every run of this workspace (for the report).
    `items`: the items those requests answered (more than requests where several shared
    one); `malformed_reasked`: how many of those re-asked a malformed answer;
    `reasoning_tokens` (billed within completion_tokens) and `cached_tokens` (within
    prompt_tokens, priced as cached input); `cut`: answers the token limit ended."""
    from persona.checks.cost import generation_cost, load_prices

    prices = load_prices()
    out: dict[str, dict] = {}
    last: dict[bytes, dict] = {}  # one pass over the file: a key answered twice counts once
    path = Path(folder) / "requests.jsonl"
    if path.exists():
        for _, e in RequestCache._lines_of(path):
            last[_digest(e["key"])] = {k: e.get(k) for k in ("kind", "usage", "reask", "model",
                                                              "batch", "cut", "group")}
    for entry in last.values():
        u = out.setdefault(entry["kind"], {"requests": 0, "items": 0, "malformed_reasked": 0,
                                           "prompt_tokens": 0, "completion_tokens": 0,
                                           "reasoning_tokens": 0, "cached_tokens": 0,
                                           "cut": 0, "cost_usd": 0.0})
        usage = entry["usage"] or {}
        pt, ct = usage.get("prompt_tokens", 0), usage.get("completion_tokens", 0)
        cached = usage.get("cached_tokens", 0)
        group = entry.get("group")
        u["requests"] += 1 if not group or group[0] == 0 else 0  # a grouped request once
        u["items"] += 1
        u["malformed_reasked"] += 1 if entry.get("reask") else 0
        u["prompt_tokens"] += pt
        u["completion_tokens"] += ct
        u["reasoning_tokens"] += usage.get("reasoning_tokens", 0)
        u["cached_tokens"] += cached
        u["cut"] += 1 if entry.get("cut") else 0
        cost = generation_cost(entry["model"] or "", pt, ct, prices=prices,
                               batch_api=bool(entry["batch"]), cached_tokens=cached)
        u["cost_usd"] = None if cost is None or u["cost_usd"] is None else u["cost_usd"] + cost
    for u in out.values():
        if u["cost_usd"] is not None:
            u["cost_usd"] = round(u["cost_usd"], 6)
    return out
