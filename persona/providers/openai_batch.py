"""OpenAI Batch API mode (`--batch-api`): one batch per stage round, half the price, slower.

A round (the requests a stage sends at once: a fill batch, or its retries) becomes one batch:
the requests the cache cannot answer are written as batch input JSONL (custom_id = the request
cache key), uploaded, and a batch is created. Its id is written to
`generated/<persona>/batches/<kind>-<digest>.json` BEFORE polling, where the digest hashes the
round's request keys: the same round in a rerun has the same keys, so a run killed while it
waited finds the record and polls that batch again instead of paying for a second one. The
answers go into the request cache as they are downloaded; from there the stage reads and
validates them as usual, and what is malformed is retried in the next round (another batch).
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from pathlib import Path

from persona.errors import ProviderError
from persona.io import write_json
from persona.providers.base import Failure
from persona.providers.llm_cache import request_key

log = logging.getLogger(__name__)

ENDPOINT = "/v1/chat/completions"
POLL_FIRST_S, POLL_GROWTH, POLL_MAX_S = 0.25, 1.5, 30.0
RETRYABLE_END = ("failed", "expired", "cancelled")  # a rerun submits such a round anew


def run_round(prov, kind: str, messages: list[list[dict]], grouped: list[bool] | None = None
              ) -> list[str | Failure]:
    """The answers of one round, in order: from the cache, else from one batch. `grouped`:
    which requests are an item as a group of one (their answer format is the group's)."""
    grouped = grouped or [False] * len(messages)
    params = [prov._params(kind, g) for g in grouped]
    keys = [request_key(prov.model, m, p) for m, p in zip(messages, params, strict=True)]
    todo = {k: (m, p) for k, m, p in zip(keys, messages, params, strict=True)
            if prov.cache.get(k) is None}
    prov.stats["cached"] += len(keys) - len(todo)
    errors: dict[str, str] = {}
    if todo:
        digest = hashlib.sha256("\n".join(sorted(todo)).encode()).hexdigest()[:16]
        errors = _batch(prov, kind, todo, prov.batch_dir / f"{kind}-{digest}.json")
    out: list[str | Failure] = []
    for k in keys:
        hit = prov.cache.get(k)
        out.append(hit["content"] if hit else Failure(errors.get(k, "no answer in the batch")))
    return out


def _batch(prov, kind: str, todo: dict[str, tuple[list[dict], dict]], record: Path
           ) -> dict[str, str]:
    from openai import OpenAI  # heavy: imported only when a request is sent

    client = OpenAI(base_url=prov.base_url, api_key=prov._api_key,
                    max_retries=prov.max_retries, timeout=prov.timeout)
    rec = json.loads(record.read_text(encoding="utf-8")) if record.exists() else {}
    if rec.get("batch_id") and rec.get("status") not in RETRYABLE_END:
        log.info("resuming batch %s (%s)", rec["batch_id"], record.name)
    else:
        rec = _submit(prov, client, kind, todo, record)
    batch = _poll(prov, client, kind, rec["batch_id"])
    errors = _collect(prov, client, kind, batch)
    write_json(record, {**rec, "status": batch.status})
    if batch.status == "failed":
        why = "; ".join(e.message or "" for e in (batch.errors.data or [])) if batch.errors else ""
        raise ProviderError(f"batch {batch.id} failed{': ' + why if why else ''}")
    return errors


def _submit(prov, client, kind: str, todo: dict[str, tuple[list[dict], dict]], record: Path
            ) -> dict:
    prov.reserve_batch(kind, [m for m, _ in todo.values()])
    lines = [{"custom_id": k, "method": "POST", "url": ENDPOINT,
              "body": {"model": prov.model, "messages": m, **prov.pool.shape.wire(p)}}
             for k, (m, p) in todo.items()]
    data = "".join(json.dumps(x, ensure_ascii=False) + "\n" for x in lines).encode()
    upload = client.files.create(file=(f"{record.stem}.jsonl", data), purpose="batch")
    batch = client.batches.create(input_file_id=upload.id, endpoint=ENDPOINT,
                                  completion_window="24h",
                                  metadata={"persona_round": record.stem})
    rec = {"batch_id": batch.id, "input_file_id": upload.id, "kind": kind,
           "model": prov.model, "requests": len(lines), "status": batch.status}
    write_json(record, rec)  # before polling: a rerun resumes this batch
    return rec


def _poll(prov, client, kind: str, batch_id: str):
    wait = POLL_FIRST_S
    while True:
        batch = client.batches.retrieve(batch_id)
        counts = batch.request_counts
        prov.notify(kind, batch={"id": batch.id, "status": batch.status,
                                 "completed": (counts.completed + counts.failed) if counts else 0,
                                 "total": counts.total if counts else 0})
        if batch.status in ("completed", *RETRYABLE_END):
            return batch
        time.sleep(wait)
        wait = min(POLL_MAX_S, wait * POLL_GROWTH)


def _collect(prov, client, kind: str, batch) -> dict[str, str]:
    """Put each answer into the cache; return {custom_id: reason} of the requests that failed."""
    errors: dict[str, str] = {}
    for file_id in (batch.output_file_id, batch.error_file_id):
        if not file_id:
            continue
        for line in client.files.content(file_id).text.splitlines():
            if not line.strip():
                continue
            item = json.loads(line)
            resp = item.get("response") or {}
            body = resp.get("body") or {}
            if resp.get("status_code") == 200 and body.get("choices"):
                prov.answered_batch(kind, item["custom_id"], body)
            else:
                errors[item["custom_id"]] = _reason(prov, item, resp, body)
    return errors


def _reason(prov, item: dict, resp: dict, body: dict) -> str:
    err = body.get("error") or item.get("error") or {}
    message = str(err.get("message") or err.get("code") or "no answer")
    if "response_format" in message and prov.structured:
        log.info("server refuses json_schema output; parsing plain JSON from now on")
        prov.structured = False
    return f"batch request failed: {resp.get('status_code') or err.get('code')}: {message[:200]}"

