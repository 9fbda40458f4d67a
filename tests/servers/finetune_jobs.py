"""Fine-tuning jobs for the loopback server: /v1/fine_tuning/jobs (+ events, cancel), the file
list, and the faults an upload must survive.

Hooked into openai_compat.py by `handle(handler, method, parts, raw, query)`: it answers the
routes it owns and returns True, or returns False to let the main server answer (uploads are
stored there; this module may only delay the answer). Settings come from
`Config.finetune` (a dict), changeable while the server runs (tests flip them between runs):

- job_time (s, default 2): a job goes validating_files (first 10 %) -> queued (to 20 %) ->
  running (metrics events step 1..steps) -> succeeded with a fine_tuned_model;
- steps (default 10): training steps reported;
- training_available (default True): False answers job creation with HTTP 403
  `training_not_available`, as OpenAI does for organisations it no longer trains for
  (the file upload itself still succeeds);
- upload_delay / create_delay (s): the upload or job is stored at once and the answer comes
  this much later, so a client killed in between has done the work without knowing it.

`stats(state)` counts what a client did: files uploaded (by purpose), jobs created, cancels.
"""

from __future__ import annotations

import threading
import time
from urllib.parse import parse_qs

PHASES = (("validating_files", 0.1), ("queued", 0.2), ("running", 1.0))
FORBIDDEN = {"error": {
    "message": "Fine-tuning is not available for this organization. Existing fine-tuned "
               "models remain available for inference.",
    "type": "invalid_request_error", "param": None, "code": "training_not_available"}}


class Jobs:
    def __init__(self):
        self.lock = threading.Lock()
        self.jobs: dict[str, dict] = {}
        self.created = 0
        self.cancels = 0
        self.forbidden = 0


def _jobs(state) -> Jobs:
    with state.lock:
        if not hasattr(state, "ft_jobs"):
            state.ft_jobs = Jobs()
        return state.ft_jobs


def settings(state) -> dict:
    return {"job_time": 2.0, "steps": 10, "training_available": True, "upload_delay": 0.0,
            "create_delay": 0.0, **(state.config.finetune or {})}


def stats(state) -> dict:
    jobs = _jobs(state)
    purposes: dict[str, int] = {}
    for f in list(state.files.values()):
        purposes[f["purpose"]] = purposes.get(f["purpose"], 0) + 1
    return {"files_by_purpose": purposes, "jobs_created": jobs.created,
            "cancels": jobs.cancels, "forbidden": jobs.forbidden}


def handle(h, method: str, parts: list[str], raw: bytes, query: str) -> bool:
    state = h.server.state
    cfg = settings(state)
    if parts == ["files"] and method == "POST":
        if cfg["upload_delay"]:  # stored by the main handler; delay its answer
            _delayed(h, cfg["upload_delay"])
        return False
    if parts == ["files"] and method == "GET":
        q = parse_qs(query)
        files = [h_file for h_file in _file_views(state)
                 if not q.get("purpose") or h_file["purpose"] == q["purpose"][0]]
        h._send(200, {"object": "list", "data": files, "has_more": False})
        return True
    if parts[:1] != ["fine_tuning"] or parts[1:2] != ["jobs"]:
        return False
    rest = parts[2:]
    if method == "POST" and not rest:
        _create(h, state, cfg, raw)
    elif method == "GET" and not rest:
        _list(h, state, query)
    elif method == "GET" and len(rest) == 1:
        _answer(h, state, rest[0], lambda job: view(job, state))
    elif method == "GET" and rest[1:] == ["events"]:
        limit = int(parse_qs(query).get("limit", ["20"])[0])
        _answer(h, state, rest[0], lambda job: {"object": "list", "has_more": False,
                                                "data": events(job, state)[:limit]})
    elif method == "POST" and rest[1:] == ["cancel"]:
        _answer(h, state, rest[0], lambda job: _cancel(job, state))
    else:
        h._not_found()
    return True


def _delayed(h, seconds: float) -> None:
    """Make the next _send wait `seconds` first (the work is done, the answer is late).
    One-shot: a keep-alive connection reuses the handler for its next request."""
    send = h._send

    def late(*args, **kwargs):
        del h._send  # back to the class's method
        time.sleep(seconds)
        send(*args, **kwargs)

    h._send = late


def _file_views(state) -> list[dict]:
    from tests.servers.openai_compat import file_view

    return [file_view(fid, f) for fid, f in sorted(state.files.items(), reverse=True)]


def _create(h, state, cfg: dict, raw: bytes) -> None:
    import json

    body = json.loads(raw or b"{}")
    jobs = _jobs(state)
    if not cfg["training_available"]:
        with jobs.lock:
            jobs.forbidden += 1
        h._send(403, FORBIDDEN)
        return
    for key in ("training_file", "validation_file"):
        fid = body.get(key)
        if key == "training_file" or fid:
            f = state.files.get(fid or "")
            if f is None or f["purpose"] != "fine-tune":
                h._send(400, {"error": {"message": f"{key}: no such file with purpose "
                                        "'fine-tune'", "param": key, "code": None,
                                        "type": "invalid_request_error"}})
                return
    hp = ((body.get("method") or {}).get("supervised") or {}).get("hyperparameters") \
        or body.get("hyperparameters") or {}
    jid = state.new_id("ftjob")
    job = {"id": jid, "object": "fine_tuning.job", "created_at": int(time.time()),
           "model": body.get("model"), "training_file": body["training_file"],
           "validation_file": body.get("validation_file"), "suffix": body.get("suffix"),
           "seed": body.get("seed") if body.get("seed") is not None else 42,
           "metadata": body.get("metadata"), "organization_id": "org-test",
           "hyperparameters": {"n_epochs": hp.get("n_epochs", "auto"),
                               "batch_size": hp.get("batch_size", "auto"),
                               "learning_rate_multiplier":
                                   hp.get("learning_rate_multiplier", "auto")},
           "_t0": time.monotonic(), "_time": float(cfg["job_time"]),
           "_steps": int(cfg["steps"]), "_cancelled": None}
    with jobs.lock:
        jobs.jobs[jid] = job
        jobs.created += 1
    if cfg["create_delay"]:
        _delayed(h, cfg["create_delay"])
    h._send(200, view(job, state))


def _list(h, state, query: str) -> None:
    q = parse_qs(query)
    wanted = {k[len("metadata["):-1]: v[0] for k, v in q.items() if k.startswith("metadata[")}
    jobs = sorted(_jobs(state).jobs.values(), key=lambda j: j["id"], reverse=True)
    jobs = [j for j in jobs if all((j["metadata"] or {}).get(k) == v for k, v in wanted.items())]
    if q.get("after"):
        ids = [j["id"] for j in jobs]
        jobs = jobs[ids.index(q["after"][0]) + 1:] if q["after"][0] in ids else []
    limit = int(q.get("limit", ["20"])[0])
    h._send(200, {"object": "list", "data": [view(j, state) for j in jobs[:limit]],
                  "has_more": len(jobs) > limit})


def _answer(h, state, jid: str, make) -> None:
    job = _jobs(state).jobs.get(jid)
    if job is None:
        h._send(404, {"error": {"message": f"Could not find fine-tune: {jid}",
                                "type": "invalid_request_error", "param": "id",
                                "code": "fine_tune_not_found"}})
    else:
        h._send(200, make(job))


def _cancel(job: dict, state) -> dict:
    jobs = _jobs(state)
    with jobs.lock:
        if _status(job)[0] not in ("succeeded", "failed", "cancelled"):
            job["_cancelled"] = time.monotonic()
            jobs.cancels += 1
    return view(job, state)


def _progress(job: dict) -> float:
    end = job["_cancelled"] or time.monotonic()
    return (end - job["_t0"]) / job["_time"] if job["_time"] else 1.0


def _status(job: dict) -> tuple[str, float]:
    frac = _progress(job)
    if job["_cancelled"] is not None:
        return "cancelled", frac
    for status, until in PHASES:
        if frac < until:
            return status, frac
    return "succeeded", frac


def fine_tuned_model(job: dict) -> str:
    suffix = f":{job['suffix']}" if job.get("suffix") else ""
    return f"ft:{job['model']}:org-test{suffix}:{job['id'][-6:]}"


def view(job: dict, state) -> dict:
    status, _ = _status(job)
    out = {k: v for k, v in job.items() if not k.startswith("_") and k != "suffix"}
    done = status in ("succeeded", "cancelled")
    out.update(status=status, error=None, result_files=[], estimated_finish=None,
               fine_tuned_model=fine_tuned_model(job) if status == "succeeded" else None,
               finished_at=int(time.time()) if done else None,
               trained_tokens=1000 * job["_steps"] if status == "succeeded" else None,
               method={"type": "supervised", "supervised": {
                   "hyperparameters": job["hyperparameters"]}})
    return out


def events(job: dict, state) -> list[dict]:
    """The events so far, newest first (as OpenAI lists them)."""
    status, frac = _status(job)
    steps = job["_steps"]
    made: list[tuple[str, dict | None]] = [("Validating training file: " + job["training_file"],
                                           None)]
    if frac >= 0.1:
        made.append(("Files validated, moving job to queued state", None))
    if frac >= 0.2:
        made.append(("Fine-tuning job started", None))
        done = steps if status == "succeeded" else min(steps, int((frac - 0.2) / 0.8 * steps))
        made += [(f"Step {i}/{steps}: training loss={2.0 / i:.3f}",
                  {"step": i, "total_steps": steps, "train_loss": round(2.0 / i, 3)})
                 for i in range(1, done + 1)]
    if status == "succeeded":
        made += [(f"New fine-tuned model created: {fine_tuned_model(job)}", None),
                 ("The job has successfully completed", None)]
    if status == "cancelled":
        made.append(("Fine-tuning job cancelled", None))
    out = [{"id": f"ftevent-{job['id'][-6:]}-{i:04d}", "object": "fine_tuning.job.event",
            "created_at": job["created_at"] + i, "level": "info", "message": message,
            "type": "metrics" if data else "message", "data": data or {}}
           for i, (message, data) in enumerate(made)]
    return out[::-1]
