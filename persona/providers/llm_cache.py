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
from pathlib import Path

FSYNC_EVERY_S = 1.0


def request_key(model: str, messages: list[dict], params: dict) -> str:
    blob = json.dumps({"model": model, "messages": messages, "params": params},
                      ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()


class RequestCache:
    def __init__(self, folder: Path | None):
        self.path = Path(folder) / "requests.jsonl" if folder else None
        self.entries: dict[str, dict] = {}
        self._fh = None
        self._synced = 0.0
        self._syncer: threading.Thread | None = None
        if self.path and self.path.exists():
            with open(self.path, encoding="utf-8") as fh:
                for line in fh:
                    try:
                        entry = json.loads(line)
                    except json.JSONDecodeError:
                        continue  # the line a kill cut short; its request is sent again
                    self.entries[entry["key"]] = entry

    def get(self, key: str) -> dict | None:
        return self.entries.get(key)

    def put(self, key: str, kind: str, model: str, content: str, usage: dict,
            batch: bool = False, reask: int = 0) -> None:
        entry = {"key": key, "kind": kind, "model": model, "content": content, "usage": usage}
        if batch:  # answered through the Batch API: priced at its discount
            entry["batch"] = True
        if reask:  # the n-th re-ask of a malformed answer, within one provider call
            entry["reask"] = reask
        self.entries[key] = entry
        if self.path is None:
            return
        if self._fh is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fh = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - kept open
            # A cut-short last line would glue onto ours: start on a fresh line.
            if self._fh.tell() and not self.path.read_bytes().endswith(b"\n"):
                self._fh.write("\n")
        self._fh.write(json.dumps(entry, ensure_ascii=False) + "\n")
        self._fh.flush()
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


def usage_by_kind(folder: Path) -> dict[str, dict]:
    """Requests answered, tokens used and their cost (USD, None when the model is not
    priced) per stage kind, over every run of this workspace (for the report).
    `malformed_reasked`: how many of those requests re-asked a malformed answer."""
    from persona.checks.cost import generation_cost, load_prices

    prices = load_prices()
    out: dict[str, dict] = {}
    for entry in RequestCache(folder).entries.values():
        u = out.setdefault(entry["kind"], {"requests": 0, "malformed_reasked": 0,
                                           "prompt_tokens": 0, "completion_tokens": 0,
                                           "cost_usd": 0.0})
        pt, ct = entry["usage"].get("prompt_tokens", 0), entry["usage"].get("completion_tokens", 0)
        u["requests"] += 1
        u["malformed_reasked"] += 1 if entry.get("reask") else 0
        u["prompt_tokens"] += pt
        u["completion_tokens"] += ct
        cost = generation_cost(entry.get("model", ""), pt, ct, prices=prices,
                               batch_api=entry.get("batch", False))
        u["cost_usd"] = None if cost is None or u["cost_usd"] is None else u["cost_usd"] + cost
    for u in out.values():
        if u["cost_usd"] is not None:
            u["cost_usd"] = round(u["cost_usd"], 6)
    return out
