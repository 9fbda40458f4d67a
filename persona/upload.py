"""Upload a dataset to OpenAI (or a compatible service) and run a fine-tuning job, safely.

Order of work: validate (refuse on errors), moderate (warn, or refuse when strict), upload
the training and validation files, create the job, and only then wait. The record
(`final/<persona>/upload.json`, or `<file>.upload.json` beside a single file) is written after
every step, keyed by the content hashes of the files + the job parameters + the server, so a
rerun continues where the last one stopped, and a changed file or parameter is a new upload.

The record alone cannot close one gap: a process killed after the server did the work
(stored the file, created the job) but before the answer arrived. Both are closed on the
server's side too: an uploaded file is named by its hash (`<persona>-train-<sha12>.jsonl`) and
a rerun lists the fine-tune files for that name and size before uploading; a job carries
`metadata.persona_key` and a rerun lists jobs with that metadata before creating one. So a
file is never uploaded twice and a second job is never created, wherever the kill landed.
A job that ended failed or cancelled is created anew by a rerun (the files are reused).
The client, and the SDK's errors as one-line errors, live in openai_client.py.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from persona.errors import InputError, PersonaError
from persona.fmt import plural
from persona.io import check_readable, write_json

log = logging.getLogger(__name__)

RECORD = "upload.json"
TERMINAL = ("succeeded", "failed", "cancelled")
RETRY_JOB = ("failed", "cancelled")  # a rerun creates such a job anew


class UploadRefused(PersonaError):
    """A check before upload found problems: nothing was uploaded."""

    exit_code = 1


class JobFailed(PersonaError):
    """The fine-tuning job ended failed or cancelled."""

    exit_code = 1


@dataclass(frozen=True)
class JobParams:
    model: str
    epochs: int | None = None
    batch_size: int | None = None
    learning_rate_multiplier: float | None = None
    suffix: str | None = None
    seed: int | None = None

    def hyperparameters(self) -> dict[str, Any]:
        """Only what was set: the rest stays "auto", OpenAI's choice for the dataset."""
        hp = {"n_epochs": self.epochs, "batch_size": self.batch_size,
              "learning_rate_multiplier": self.learning_rate_multiplier}
        return {k: v for k, v in hp.items() if v is not None}


@dataclass(frozen=True)
class Plan:
    train: Path
    validation: Path | None
    record: Path
    label: str  # names the uploaded files: the persona, or the file's stem

    @property
    def files(self) -> dict[str, Path]:
        return {"train": self.train, **({"validation": self.validation}
                                         if self.validation else {})}


def plan(target: Path) -> Plan:
    """A dataset folder (train.jsonl + val.jsonl, record inside) or one training file."""
    target = Path(target)
    if target.is_dir():
        train = target / "train.jsonl"
        if not train.is_file():
            raise InputError("no train.jsonl here; give a dataset folder (final/<persona>) or "
                             "a chat JSONL file", file=str(target))
        val = target / "val.jsonl"
        return Plan(train, val if val.is_file() else None, target / RECORD, target.name)
    check_readable(target)
    return Plan(target, None, target.with_name(target.name + "." + RECORD), target.stem)


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def record_key(hashes: dict[str, str], params: JobParams, base_url: str) -> str:
    """Same files, same parameters, same server: the same upload (and job)."""
    blob = json.dumps({"files": hashes, "params": asdict(params), "server": base_url},
                      sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:32]


# -- the checks before upload --------------------------------------------------------------

def validate(p: Plan, model: str) -> None:
    """Refuse (UploadRefused, exit 1) if validate finds anything in either file."""
    from persona.checks.validate import validate_file

    for path in p.files.values():
        report = validate_file(path, model=model, max_findings=1)
        if not report.ok:
            f = report.findings[0]
            more = f" (+{report.n_findings - 1} more)" if report.n_findings > 1 else ""
            raise UploadRefused(f"{f.message}{more}; run `persona validate {path}`; nothing "
                                "uploaded", file=str(path), line=f.line, field=f.field)


def count_examples(path: Path) -> int:
    """Examples (non-blank lines) of a chat JSONL file that validate has passed."""
    with open(path, "rb") as fh:
        return sum(1 for line in fh if line.strip())


def moderate(p: Plan, *, strict: bool, provider: str | None, base_url: str | None,
             warn: Callable[[str], None]) -> list:
    """Screen what will be uploaded with issue 11's moderation (which writes moderation/
    beside it). Flagged examples or PII: a warning, or UploadRefused if `strict`. A dataset
    folder is screened as its all.jsonl (every split at once, `screen`); without one, each
    file into its own moderation/<stem>/ (one shared folder would keep only the last)."""
    from persona.checks import moderation

    folder = p.train.parent
    if p.validation and (folder / "all.jsonl").is_file():
        outcomes = [moderation.screen(folder, provider=provider, base_url=base_url)]
    else:
        outcomes = []
        judge = moderation.open_moderator(provider, base_url=base_url,
                                          cache_dir=folder / "moderation" / "cache")
        try:
            for path in p.files.values():
                outcomes.append(moderation.moderate_file(
                    path, judge, folder / "moderation" / path.stem, threshold=None))
        finally:
            moderation.close(judge)
    for o in outcomes:
        if o.ok:
            continue
        who = "word-list screen" if o.heuristic else o.provider
        cats = ", ".join(f"{c} {n}" for c, n in sorted(o.by_category.items()))
        what = (f"{o.flagged} of {plural(o.total, 'example')} flagged by {who}"
                + (f" ({cats})" if cats else "") + (f", {o.pii} PII value(s)" if o.pii else ""))
        if strict:
            raise UploadRefused(f"moderation: {what}; see {o.out_dir}; nothing uploaded "
                                "(without --strict this is a warning)", file=o.path)
        warn(f"moderation: {what}; see {o.out_dir} (--strict refuses to upload)")
    return outcomes


# -- upload and job ------------------------------------------------------------------------

def upload(p: Plan, params: JobParams, client, base_url: str,
           on_step: Callable[[str], None] = lambda s: None) -> dict:
    """Upload what is not uploaded, create the job if there is none; the record entry. The
    folder's workspace lock keeps a second upload of it out (and is gone afterwards)."""
    from persona.workspace import workspace_lock

    with workspace_lock(p.record.parent, "persona upload"):
        return _upload(p, params, client, base_url, on_step)


def _upload(p: Plan, params: JobParams, client, base_url: str, on_step) -> dict:
    hashes = {role: sha256_file(path) for role, path in p.files.items()}
    key = record_key(hashes, params, base_url)
    record = load_record(p.record)
    entry = record["uploads"].setdefault(key, {
        "key": key, "server": base_url, "params": asdict(params),
        "files": {role: {"path": str(path), "sha256": hashes[role],
                         "bytes": path.stat().st_size} for role, path in p.files.items()},
        "job": None})
    record["last"] = key
    for role, path in p.files.items():
        f = entry["files"][role]
        if not f.get("id"):
            f["id"] = _ensure_file(client, path, f, f"{p.label}-{role}-{f['sha256'][:12]}.jsonl",
                                   on_step)
            save_record(p.record, record)
    job = entry.get("job") or {}
    if job.get("id") and job.get("status") not in TERMINAL:  # it may have ended since
        job = entry["job"] = _job_view(client.fine_tuning.jobs.retrieve(job["id"]))
        save_record(p.record, record)
    if not job.get("id") or job.get("status") in RETRY_JOB:
        if job.get("id"):
            entry.setdefault("earlier_jobs", []).append(job)
        entry["job"] = _ensure_job(client, entry, params, on_step)
        save_record(p.record, record)  # before anyone waits: a rerun follows this job
    return entry


def _ensure_file(client, path: Path, f: dict, name: str, on_step) -> str:
    for existing in client.files.list(purpose="fine-tune"):
        if existing.filename == name and existing.bytes == f["bytes"]:
            on_step(f"{path.name}: already on the server as {existing.id} (not uploaded again)")
            return existing.id
    on_step(f"uploading {path.name} ({f['bytes']:,} bytes) as {name}")
    with open(path, "rb") as fh:
        return client.files.create(file=(name, fh), purpose="fine-tune").id


def _ensure_job(client, entry: dict, params: JobParams, on_step) -> dict:
    key, files = entry["key"], entry["files"]
    done = {j["id"] for j in entry.get("earlier_jobs", [])}
    for job in client.fine_tuning.jobs.list(metadata={"persona_key": key}, limit=100):
        if ((job.metadata or {}).get("persona_key") == key and job.id not in done
                and job.status not in RETRY_JOB):
            on_step(f"job {job.id} for these files and parameters exists (not created again)")
            return _job_view(job)
    hp = params.hyperparameters()
    method: dict = {"type": "supervised"}
    if hp:
        method["supervised"] = {"hyperparameters": hp}
    optional = {"validation_file": files.get("validation", {}).get("id"),
                "suffix": params.suffix, "seed": params.seed}
    job = client.fine_tuning.jobs.create(
        model=params.model, training_file=files["train"]["id"], method=method,
        metadata={"persona_key": key}, **{k: v for k, v in optional.items() if v is not None})
    on_step(f"created job {job.id} ({job.status})")
    return _job_view(job)


def _job_view(job) -> dict:
    return {"id": job.id, "status": job.status, "fine_tuned_model": job.fine_tuned_model}


def follow(client, job_id: str, *, poll: float = 15.0,
           on_event: Callable[[Any], None] = lambda e: None,
           on_job: Callable[[Any], None] = lambda j: None):
    """Poll the job and its events until it ends; events reach `on_event` oldest first."""
    seen: set[str] = set()
    while True:
        job = client.fine_tuning.jobs.retrieve(job_id)
        events = client.fine_tuning.jobs.list_events(job_id, limit=100).data
        for event in sorted((e for e in events if e.id not in seen),
                            key=lambda e: (e.created_at, e.id)):
            seen.add(event.id)
            on_event(event)
        on_job(job)
        if job.status in TERMINAL:
            return job
        time.sleep(poll)


def finished(job) -> str:
    """The fine-tuned model's id, or JobFailed naming why the job ended without one."""
    if job.status == "succeeded" and job.fine_tuned_model:
        return job.fine_tuned_model
    why = f": {job.error.message}" if getattr(job, "error", None) and job.error.message else ""
    raise JobFailed(f"job {job.id} ended {job.status}{why}")


# -- the record ----------------------------------------------------------------------------

def load_record(path: Path) -> dict:
    if not path.exists():
        return {"last": None, "uploads": {}}
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise InputError("the upload record is not valid JSON; move it away to start over "
                         "(its file and job ids are lost to persona then)",
                         file=str(path)) from None
    if not isinstance(record, dict) or not isinstance(record.get("uploads"), dict):
        raise InputError("not an upload record (no 'uploads' object)", file=str(path))
    return record


def save_record(path: Path, record: dict) -> None:
    write_json(path, record)


def update_job(path: Path, key: str, job) -> None:
    record = load_record(path)
    if key in record["uploads"]:
        record["uploads"][key]["job"] = _job_view(job)
        save_record(path, record)
