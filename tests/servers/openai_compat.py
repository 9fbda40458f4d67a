"""A loopback OpenAI-compatible chat server that answers our prompts like a model would.

It speaks POST /v1/chat/completions, and the files and batches protocol of the Batch API
(POST /v1/files, GET /v1/files/{id}[/content], POST /v1/batches, GET /v1/batches/{id}), well
enough for the real `openai` SDK (strict response fields, `usage`, `response_format`). It reads
the machine-readable task block our prompts carry (a ```json fenced block in the last user
message) and builds a plausible JSON answer from it: a write-mode fill task is answered by
composing from the style's material and the values (writer.py: it writes, not copies), a
strict one by filling the template word for word between the style phrases. With
`deviate` a share of answers deviates as real models' do (decorated signatures, labels,
markdown, refusals, lowercase, unreported slips, wrong language; repeated, generic and
labelled questions): writer.py. `usage` counts tokens as OpenAI does (tiktoken, o200k_base
chat format), so a dry run's estimate can be held against it.
Faults are injected on demand: latency, HTTP errors (429 with Retry-After, 500, or a hang past
the client's timeout), malformed answers, and rate limits (a share of 429s, or 429 beyond a
capacity of requests at once).

    python -m tests.servers.openai_compat --port 8089 --latency 0.25 --error-rate 0.1 \
        --malformed-rate 0.2

A batch goes validating -> in_progress -> finalizing -> completed over `batch_time` seconds;
its output lines are the chat-completion bodies the online endpoint gives (malformed share
included), its error lines the injected faults (error rate).

Fine-tuning jobs (/v1/fine_tuning/jobs, events, cancel, a 403 mode) and the file list are
answered by finetune_jobs.py, set with `serve(finetune={...})`.

GET /stats gives request counts: total, by status, by kind (templates / fill / questions),
batches created and the lines they held; `?full=1` adds every request's arrival time.
In tests: `with serve(error_rate=0.1) as srv: ... srv.url ... srv.stats()`.
"""

from __future__ import annotations

import argparse
import email.policy
import hashlib
import json
import random
import re
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from email.parser import BytesParser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from tests.servers import finetune_jobs, moderation, rules, writer

_TASK_RE = re.compile(r"```json\s*\n(.*?)\n```", re.S)
_SLOT_RE = re.compile(r"\{([a-z][a-z0-9_]*)(?:\.([a-z][a-z0-9_]*))?\}")


@dataclass
class Config:
    latency: float = 0.0  # seconds before every answer
    error_rate: float = 0.0  # share of requests answered 429 / 500 / a hang
    malformed_rate: float = 0.0  # share of 200 answers whose content is broken
    hang: float = 5.0  # how long a "timeout" error sleeps (set it above the client timeout)
    json_schema: bool = True  # False: reject response_format json_schema with a 400
    batch_time: float = 1.0  # seconds a batch takes from creation to completed
    seed: int = 0
    finetune: dict | None = None  # fine-tuning job settings: see finetune_jobs.py
    rate_limit_rate: float = 0.0  # share of requests answered 429 (Retry-After), on their own
    capacity: int = 0  # >0: answer 429 to a request arriving while this many are handled
    judge: str = "fair"  # the bench's judge: "fair" (deterministic) or "biased" (judge.py)
    slow_rate: float = 0.0  # share of bodies whose first arrival is answered `slow` s late
    slow: float = 5.0
    deviate: float = 0.0  # share of answers that deviate as a real model's do (writer.py)
    writer_flaws: float = 0.0  # share of written answers that copy the idea or run on
    openai_rules: bool = False  # enforce OpenAI's parameter rules, reasoning, prompt cache
    # tokens per minute (0: none): a token bucket `tpm_depth` seconds deep; a request is
    # charged its prompt tokens + its max_tokens when it arrives (as the API counts them),
    # and answered 429 with x-ratelimit-* headers when the bucket holds less
    tpm: float = 0.0
    tpm_depth: float = 60.0


class State:
    def __init__(self, config: Config):
        self.config = config
        self.lock = threading.Lock()
        self.rng = random.Random(config.seed)  # fault draws, in arrival order
        self.status: Counter = Counter()
        self.kinds: Counter = Counter()
        self.answered: Counter = Counter()  # 200 answers by kind
        self.total = 0
        self.times: list[float] = []  # arrival time of every chat request
        self.bodies: Counter = Counter()  # sha256 of each request body -> times received
        self.answered_bodies: set[str] = set()  # bodies that got a 200
        # items of grouped requests: sha256 of an item's task (with the shared part) -> times
        # sent, and those answered well-formed in a 200
        self.items: Counter = Counter()
        self.answered_items: set[str] = set()
        self.files: dict[str, dict] = {}  # file id -> {"data": bytes, "filename", "purpose"}
        self.batches: dict[str, dict] = {}  # batch id -> the batch object and its outputs
        self.batch_lines: Counter = Counter()  # requests received through batches, by kind
        self.next_id = 0
        self.handling = 0  # chat requests being answered now (for `capacity`)
        self.prompt_cache = rules.PromptCache()  # what `openai_rules` reports as cached
        self.bucket = config.tpm * config.tpm_depth / 60  # tokens the TPM bucket holds now
        self.bucket_at = time.monotonic()
        self.charged = 0  # tokens charged to the TPM limit (answered requests)
        self.refused_tokens = 0  # tokens of requests refused by it

    def charge(self, tokens: int) -> tuple[bool, dict]:
        """Take `tokens` from the TPM bucket; (allowed, x-ratelimit-* headers)."""
        cfg = self.config
        with self.lock:
            now = time.monotonic()
            depth = cfg.tpm * cfg.tpm_depth / 60
            self.bucket = min(depth, self.bucket + (now - self.bucket_at) * cfg.tpm / 60)
            self.bucket_at = now
            ok = self.bucket >= tokens or (self.bucket >= depth and tokens > depth)
            if ok:
                self.bucket -= tokens
                self.charged += tokens
            else:
                self.refused_tokens += tokens
            reset = max(0.0, (tokens - self.bucket) * 60 / cfg.tpm) if not ok else \
                max(0.0, -self.bucket * 60 / cfg.tpm)
            headers = {"x-ratelimit-limit-tokens": str(int(cfg.tpm)),
                       "x-ratelimit-remaining-tokens": str(max(0, int(self.bucket))),
                       "x-ratelimit-reset-tokens": f"{reset:.3f}s"}
            return ok, headers

    def new_id(self, prefix: str) -> str:
        with self.lock:
            self.next_id += 1
            return f"{prefix}-{self.next_id:06d}"

    def draw(self) -> float:
        with self.lock:
            return self.rng.random()

    def count(self, status: int, kind: str, digest: str) -> None:
        with self.lock:
            self.status[str(status)] += 1
            if status == 200:
                self.answered[kind] += 1
                self.answered_bodies.add(digest)

    def count_items(self, body: dict, answer: dict) -> None:
        """Count the items of a grouped request, and those its answer gave well-formed."""
        task = task_of(body)
        if not isinstance(task.get("tasks"), list):
            return
        field, value = GROUP_FIELDS.get(task.get("task"), ("answers", "text"))
        try:
            got = json.loads(answer["choices"][0]["message"]["content"]).get(field) or []
        except (json.JSONDecodeError, AttributeError, KeyError, IndexError):
            got = []
        good = {g.get("id") for g in got if isinstance(g, dict) and isinstance(g.get(value), str)}
        with self.lock:
            for digest, member in item_digests(task):
                self.items[digest] += 1
                if member.get("id") in good:
                    self.answered_items.add(digest)

    def snapshot(self) -> dict:
        with self.lock:
            return {"total": self.total, "by_status": dict(self.status),
                    "by_kind": dict(self.kinds), "answered_by_kind": dict(self.answered),
                    "batches": len(self.batches), "batch_lines": dict(self.batch_lines),
                    "tpm_charged": self.charged, "tpm_refused": self.refused_tokens,
                    "batch_inputs": [b["input_digest"] for b in self.batches.values()],
                    "items_total": sum(self.items.values()),
                    "times": list(self.times), "bodies": dict(self.bodies),
                    "answered_bodies": sorted(self.answered_bodies),
                    "items": dict(self.items), "answered_items": sorted(self.answered_items)}


# -- answers -------------------------------------------------------------------------------

def task_of(body: dict) -> dict:
    users = [m for m in body.get("messages", []) if m.get("role") == "user"]
    content = users[-1].get("content", "") if users else ""
    if isinstance(content, list):  # content parts
        content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
    m = _TASK_RE.search(content)
    if not m:
        return {"task": "unknown"}
    try:
        return json.loads(m.group(1))
    except json.JSONDecodeError:
        return {"task": "unknown"}


def _rng_for(body: dict, seed: int) -> random.Random:
    digest = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
    return random.Random(f"{seed}:{digest}")


def _fill(template: str, values: dict[str, dict[str, str]]) -> str:
    def sub(m: re.Match) -> str:
        forms = values.get(m.group(1))
        if not forms:
            return m.group(0)  # a model that ignores a value leaves it unresolved
        return forms.get(m.group(2) or "", next(iter(forms.values())))

    return _SLOT_RE.sub(sub, template)


def answer_fill(task: dict, rng: random.Random) -> dict:
    """A strict fill task: the template filled word for word between the style phrases."""
    values = task.get("values", {})
    phrases = [_fill(p, values) for p in task.get("style_phrases", [])]
    body = _fill(task.get("template", ""), values)
    parts = [phrases[0], body, *phrases[1:]] if phrases else [body]
    text = " ".join(p.strip() for p in parts if p.strip())
    return {"text": text[:1].upper() + text[1:]}


def answer(task: dict, rng: random.Random, body: dict | None = None,
           cfg: Config | None = None) -> dict:
    kind = task.get("task")
    cfg = cfg or Config()
    written = writer.answer(task, body or {}, rng, cfg)
    if written is not None:
        return written
    if kind == "fill":
        return answer_fill(task, rng)
    if kind == "questions":
        examples = task.get("examples") or ["?"]
        topics = task.get("topics") or {}
        fits = [e for e in examples if e.count("___") >= len(topics)] or examples
        question = writer.journalist(rng.choice(fits), task, rng)
        return writer.question_deviation({"question": question}, task, body or {}, rng, cfg)
    if kind == "rewrite":
        return moderation.rewrite(task)
    return {"text": "I do not know what you are asking for."}


def malformed(content: str, rng: random.Random) -> str:
    if rng.random() < 0.5:
        return content[: max(1, len(content) // 2)]  # cut off: invalid JSON
    return json.dumps({"answer_text": "??"})  # valid JSON, wrong fields


GROUP_FIELDS = {"fill": ("answers", "text"), "questions": ("questions", "question")}


def item_digests(task: dict) -> list[tuple[str, dict]]:
    """(sha256, task) of each item of a grouped request: the item's task with its shared
    part, so the same item has the same digest whatever else shares its request."""
    shared = {k: v for k, v in task.items() if k != "tasks"}
    return [(hashlib.sha256(json.dumps({**shared, **m}, sort_keys=True, ensure_ascii=False)
                            .encode()).hexdigest(), m)
            for m in task.get("tasks") or [] if isinstance(m, dict)]


def answer_group(task: dict, body: dict, cfg: Config) -> str:
    """A grouped request (`tasks` beside a shared part): each item answered as if asked
    alone, with its own seeded draws (so an item's answer does not depend on which items
    share its request), its own malformed share (a missing item, a wrong field)."""
    field, value = GROUP_FIELDS.get(task.get("task"), ("answers", "text"))
    shared = {k: v for k, v in task.items() if k != "tasks"}
    out = []
    for member in task.get("tasks") or []:
        if not isinstance(member, dict):
            continue
        one = {**shared, **member}
        rng = _rng_for({"item": one, "model": body.get("model"),
                        "system": body.get("messages", [{}])[0].get("content")}, cfg.seed)
        got = answer(one, rng, body, cfg)
        if cfg.malformed_rate and rng.random() < cfg.malformed_rate:
            if rng.random() < 0.5:
                continue  # the item left out
            out.append({"id": member.get("id"), "answer_text": "??"})  # a wrong field
            continue
        out.append({"id": member.get("id"), value: got.get(value, "")})
    return json.dumps({field: out}, ensure_ascii=False)


def completion(body: dict, cfg: Config) -> dict:
    """The chat-completion body answering `body` (a malformed share included: per item in
    a grouped request, else the whole answer)."""
    rng = _rng_for(body, cfg.seed)
    from tests.servers import judge  # the bench's judge and plain questions

    task = task_of(body)
    if isinstance(task.get("tasks"), list):
        content = answer_group(task, body, cfg)
    else:
        content = judge.content(task, body, cfg.judge)  # "" is an answer (an empty one)
        if content is None:
            content = json.dumps(answer(task, rng, body, cfg), ensure_ascii=False)
        if cfg.malformed_rate and rng.random() < cfg.malformed_rate:
            content = malformed(content, rng)
    usage = count_usage(body, content)
    return {"id": f"chatcmpl-{rng.getrandbits(64):016x}", "object": "chat.completion",
            "created": int(time.time()), "model": body.get("model", "test-model"),
            "choices": [{"index": 0, "finish_reason": "stop", "logprobs": None,
                         "message": {"role": "assistant", "content": content}}],
            "usage": usage}


def count_usage(body: dict, content: str) -> dict:
    """Tokens as OpenAI counts them: the chat format's prompt tokens and the answer's."""
    from persona.checks.tokens import count_text, encoding_for_model, estimate_request_tokens

    model = str(body.get("model") or "gpt-4o-mini")
    messages = [m for m in body.get("messages", []) if isinstance(m, dict)]
    prompt = estimate_request_tokens(messages, model)[0] if messages else 1
    enc = encoding_for_model(model)[0]
    completion = count_text(content, enc) if enc is not None else len(content) // 4 + 1
    return {"prompt_tokens": prompt, "completion_tokens": completion,
            "total_tokens": prompt + completion}


def tpm_tokens(body: dict) -> int:
    """What a tokens-per-minute limit charges a request on arrival: its prompt tokens (the
    chat format's count) and the most it may write (max_completion_tokens / max_tokens)."""
    from persona.checks.tokens import estimate_request_tokens

    model = str(body.get("model") or "gpt-4o-mini")
    messages = [m for m in body.get("messages", []) if isinstance(m, dict)]
    prompt = estimate_request_tokens(messages, model)[0] if messages else 1
    return prompt + int(body.get("max_completion_tokens") or body.get("max_tokens") or 0)


def parse_multipart(content_type: str, raw: bytes) -> dict[str, tuple[bytes, str | None]]:
    """{field name: (bytes, filename)} of a multipart/form-data body."""
    msg = BytesParser(policy=email.policy.HTTP).parsebytes(
        b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + raw)
    out = {}
    for part in msg.iter_parts() if msg.is_multipart() else []:
        name = part.get_param("name", header="content-disposition")
        if name:
            out[name] = (part.get_payload(decode=True) or b"", part.get_filename())
    return out


def file_view(fid: str, f: dict) -> dict:
    return {"id": fid, "object": "file", "bytes": len(f["data"]), "created_at": f["created_at"],
            "filename": f["filename"], "purpose": f["purpose"], "status": "processed"}


def make_batch(state: State, body: dict, data: bytes) -> dict:
    """Answer every line now; `batch_view` reveals the answers as the batch's time passes."""
    cfg = state.config
    out, errors, ids = [], [], []
    for line in data.decode().splitlines():
        if not line.strip():
            continue
        req = json.loads(line)
        ids.append(req["custom_id"])
        state.batch_lines[task_of(req["body"]).get("task", "unknown")] += 1
        rid = f"batch_req_{len(ids):06d}"
        fmt = (req["body"].get("response_format") or {}).get("type")
        if fmt == "json_schema" and not cfg.json_schema:
            errors.append({"id": rid, "custom_id": req["custom_id"], "response": {
                "status_code": 400, "request_id": rid, "body": {"error": {
                    "message": "response_format json_schema is not supported by this server",
                    "type": "invalid_request_error", "param": "response_format"}}},
                "error": None})
        elif cfg.error_rate and state.draw() < cfg.error_rate:
            errors.append({"id": rid, "custom_id": req["custom_id"], "response": None,
                           "error": {"code": "server_error", "message": "internal error"}})
        else:
            out.append({"id": rid, "custom_id": req["custom_id"], "response": {
                "status_code": 200, "request_id": rid, "body": completion(req["body"], cfg)},
                "error": None})
    bid = state.new_id("batch")
    batch = {"id": bid, "object": "batch", "endpoint": body.get("endpoint"),
             "input_file_id": body.get("input_file_id"),
             "completion_window": body.get("completion_window", "24h"),
             "created_at": int(time.time()), "metadata": body.get("metadata"),
             "_t0": time.monotonic(), "_duration": cfg.batch_time, "_out": out,
             "_errors": errors, "_files": None,
             "input_digest": hashlib.sha256("\n".join(sorted(ids)).encode()).hexdigest()}
    with state.lock:
        state.batches[bid] = batch
    return batch


def batch_view(batch: dict, state: State) -> dict:
    """The batch object as of now: 10 % validating, in_progress to 80 %, then finalizing."""
    frac = (time.monotonic() - batch["_t0"]) / batch["_duration"] if batch["_duration"] else 1
    total = len(batch["_out"]) + len(batch["_errors"])
    view = {k: v for k, v in batch.items() if not k.startswith("_") and k != "input_digest"}
    counts = {"total": total, "completed": 0, "failed": 0}
    if frac < 0.1:
        status = "validating"
        counts["total"] = 0
    elif frac < 0.8:
        status = "in_progress"
        done = int(total * (frac - 0.1) / 0.7)
        counts["failed"] = min(len(batch["_errors"]), done * len(batch["_errors"]) // total)
        counts["completed"] = done - counts["failed"]
    else:
        status = "finalizing" if frac < 1 else "completed"
        counts["completed"], counts["failed"] = len(batch["_out"]), len(batch["_errors"])
    if status == "completed":
        with state.lock:
            if batch["_files"] is None:  # written once, on first sight of completion
                batch["_files"] = [_store(state, batch["_out"]), _store(state, batch["_errors"])]
        out_id, err_id = batch["_files"]
        view.update(output_file_id=out_id, error_file_id=err_id,
                    completed_at=int(time.time()))
    view.update(status=status, request_counts=counts)
    return view


def _store(state: State, lines: list[dict]) -> str | None:
    if not lines:
        return None
    fid = f"file-{len(state.files) + 1:06d}-out"
    state.files[fid] = {"data": "".join(json.dumps(x, ensure_ascii=False) + "\n"
                                        for x in lines).encode(),
                        "filename": "batch_output.jsonl", "purpose": "batch_output",
                        "created_at": int(time.time())}
    return fid


def _route(path: str) -> list[str]:
    """URL path -> its parts after an optional /v1: '/v1/files/x/content' -> [files, x, content]."""
    parts = [p for p in path.split("?")[0].split("/") if p]
    return parts[1:] if parts[:1] == ["v1"] else parts


# -- HTTP ----------------------------------------------------------------------------------

class Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes; with Nagle on, the body waits for the client's
    # delayed ACK (~40 ms per request on Linux), which no real server adds.
    disable_nagle_algorithm = True

    def log_message(self, format, *args):  # noqa: A002 - stdlib signature; keep tests quiet
        return

    def _send(self, status: int, obj: dict, headers: dict | None = None) -> None:
        data = json.dumps(obj, ensure_ascii=False).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        try:
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (a hang past its timeout): that was the point

    def _not_found(self) -> None:
        self._send(404, {"error": {"message": "not found", "type": "invalid_request_error"}})

    def do_GET(self):  # noqa: N802 - stdlib name
        path, _, query = self.path.partition("?")
        parts = _route(path)
        if finetune_jobs.handle(self, "GET", parts, b"", query):
            return
        if parts == ["stats"]:
            snap = self.server.state.snapshot()
            if "full=1" not in query:  # per-request detail only on request: grows with the run
                for key in ("times", "bodies", "answered_bodies", "batch_inputs", "items",
                            "answered_items"):
                    snap.pop(key)
            self._send(200, snap)
        elif len(parts) in (2, 3) and parts[0] == "files":
            self._get_file(parts[1], content=parts[2:] == ["content"])
        elif len(parts) == 2 and parts[0] == "batches":
            batch = self.server.state.batches.get(parts[1])
            if batch is None:
                self._not_found()
            else:
                self._send(200, batch_view(batch, self.server.state))
        else:
            self._not_found()

    def do_POST(self):  # noqa: N802 - stdlib name
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length)
        parts = _route(self.path)
        if finetune_jobs.handle(self, "POST", parts, raw, ""):
            return
        if parts == ["files"]:
            self._post_file(raw)
            return
        if parts not in (["chat", "completions"], ["batches"], ["moderations"]):
            self._not_found()
            return
        try:
            body = json.loads(raw)
        except json.JSONDecodeError:
            self._send(400, {"error": {"message": "invalid JSON body",
                                       "type": "invalid_request_error"}})
            return
        if parts == ["moderations"]:
            moderation.handle_moderations(self, body)
        elif parts == ["batches"]:
            self._post_batch(body)
        else:
            self._chat(body, raw)

    def _chat(self, body: dict, raw: bytes) -> None:
        state, cfg = self.server.state, self.server.state.config
        kind = task_of(body).get("task", "unknown")
        digest = hashlib.sha256(raw).hexdigest()
        with state.lock:
            state.bodies[digest] += 1
            state.total += 1
            state.kinds[kind] += 1
            state.times.append(time.time())
            full = bool(cfg.capacity) and state.handling >= cfg.capacity
            state.handling += 0 if full else 1
        if full or (cfg.rate_limit_rate and state.draw() < cfg.rate_limit_rate):
            if not full:
                with state.lock:
                    state.handling -= 1
            self._rate_limited()
            state.count(429, kind, digest)
            return
        limits = None
        if cfg.tpm:
            ok, limits = state.charge(tpm_tokens(body))
            if not ok:
                with state.lock:
                    state.handling -= 1
                self._send(429, {"error": {
                    "message": "Rate limit reached for tokens per min (TPM): Limit "
                    f"{int(cfg.tpm)}, Remaining {limits['x-ratelimit-remaining-tokens']}. "
                    f"Please try again in {limits['x-ratelimit-reset-tokens']}.",
                    "type": "tokens", "code": "rate_limit_exceeded"}}, limits)
                state.count(429, kind, digest)
                return
        try:
            if cfg.latency:
                time.sleep(cfg.latency)
            if (cfg.slow_rate and state.bodies[digest] == 1
                    and int(digest[:8], 16) / 16 ** 8 < cfg.slow_rate):
                time.sleep(cfg.slow)  # a straggler: a fine answer, late (picked by body)
            refused = rules.check(body) if cfg.openai_rules else None
            if refused:  # OpenAI refuses the parameters before anything else
                self._send(400, refused)
                state.count(400, kind, digest)
                return
            status = self._fault(cfg, state, body)
            if status:
                state.count(status, kind, digest)
                return
            answer = moderation.guard_completion(body, state) or completion(body, cfg)
            if cfg.openai_rules:
                answer = rules.apply(body, answer, state.prompt_cache)
            self._send(200, answer, limits)
            state.count(200, kind, digest)
            state.count_items(body, answer)
        finally:
            with state.lock:
                state.handling -= 1

    def _rate_limited(self) -> None:
        self._send(429, {"error": {"message": "rate limited", "type": "rate_limit_error"}},
                   {"retry-after-ms": "50", "Retry-After": "1"})

    # -- files and batches (the Batch API) ---------------------------------------------------
    def _post_file(self, raw: bytes) -> None:
        fields = parse_multipart(self.headers.get("Content-Type", ""), raw)
        if "file" not in fields:
            self._send(400, {"error": {"message": "no 'file' part", "param": "file",
                                       "type": "invalid_request_error"}})
            return
        state = self.server.state
        fid = state.new_id("file")
        data, filename = fields["file"]
        state.files[fid] = {"data": data, "filename": filename or "upload.jsonl",
                            "purpose": fields.get("purpose", (b"", None))[0].decode(),
                            "created_at": int(time.time())}
        self._send(200, file_view(fid, state.files[fid]))

    def _get_file(self, fid: str, content: bool) -> None:
        f = self.server.state.files.get(fid)
        if f is None:
            self._not_found()
        elif not content:
            self._send(200, file_view(fid, f))
        else:
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(len(f["data"])))
            self.end_headers()
            self.wfile.write(f["data"])

    def _post_batch(self, body: dict) -> None:
        state = self.server.state
        f = state.files.get(body.get("input_file_id", ""))
        if f is None or f["purpose"] != "batch":
            self._send(400, {"error": {"message": "input_file_id: no such file with purpose "
                                       "'batch'", "param": "input_file_id",
                                       "type": "invalid_request_error"}})
            return
        batch = make_batch(state, body, f["data"])
        self._send(200, batch_view(batch, state))

    def _fault(self, cfg: Config, state: State, body: dict) -> int | None:
        """Answer with an injected fault and return its status, or None to answer normally."""
        fmt = (body.get("response_format") or {}).get("type")
        if fmt == "json_schema" and not cfg.json_schema:
            self._send(400, {"error": {"message": "response_format json_schema is not "
                                       "supported by this server", "param": "response_format",
                                       "type": "invalid_request_error"}})
            return 400
        if not cfg.error_rate or state.draw() >= cfg.error_rate:
            return None
        pick = state.draw()
        if pick < 0.5:
            self._rate_limited()
            return 429
        if pick < 0.85:
            self._send(500, {"error": {"message": "internal error", "type": "server_error"}})
            return 500
        time.sleep(cfg.hang)  # the client gives up first and retries
        self._send(504, {"error": {"message": "timed out", "type": "server_error"}})
        return 504


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):  # a client that hung up is not news
        return
    request_queue_size = 512
    state: State


@dataclass
class Running:
    url: str  # base URL for the SDK, ending in /v1
    port: int
    state: State

    def stats(self) -> dict:
        return self.state.snapshot()


def make_server(port: int = 0, **config) -> _Server:
    srv = _Server(("127.0.0.1", port), Handler)
    srv.state = State(Config(**config))
    return srv


@contextmanager
def serve(**config) -> Iterator[Running]:
    """Start the server on a free port in a thread; stop it on exit."""
    srv = make_server(0, **config)
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    port = srv.server_address[1]
    try:
        yield Running(f"http://127.0.0.1:{port}/v1", port, srv.state)
    finally:
        srv.shutdown()
        srv.server_close()


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--port", type=int, default=8089)
    ap.add_argument("--latency", type=float, default=0.0, help="seconds per answer")
    ap.add_argument("--error-rate", type=float, default=0.0, help="share of 429/500/hangs")
    ap.add_argument("--malformed-rate", type=float, default=0.0, help="share of broken answers")
    ap.add_argument("--hang", type=float, default=5.0, help="seconds a hang lasts")
    ap.add_argument("--no-json-schema", action="store_true",
                    help="reject response_format json_schema (tests the fallback)")
    ap.add_argument("--batch-time", type=float, default=1.0,
                    help="seconds a Batch API batch takes to complete")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--rate-limit-rate", type=float, default=0.0,
                    help="share of requests answered 429, besides --error-rate")
    ap.add_argument("--capacity", type=int, default=0,
                    help="answer 429 beyond this many requests at once (0: no limit)")
    ap.add_argument("--slow-rate", type=float, default=0.0,
                    help="share of request bodies whose first arrival is answered --slow "
                    "seconds late (a straggler; asking again is answered at once)")
    ap.add_argument("--slow", type=float, default=5.0, help="seconds a slow answer takes")
    ap.add_argument("--judge", choices=["fair", "biased"], default="fair",
                    help="the bench judge: deterministic, or always preferring answer A")
    ap.add_argument("--deviate", type=float, default=0.0,
                    help="share of answers and questions that deviate as a real model's do "
                    "(decorations, labels, markdown, refusals, lowercase, unreported slips, "
                    "wrong language; repeated, generic, labelled questions)")
    ap.add_argument("--writer-flaws", type=float, default=0.0,
                    help="share of written answers that copy their idea or run on")
    ap.add_argument("--openai-rules", action="store_true",
                    help="enforce OpenAI's rules: reasoning models refuse max_tokens and a "
                    "custom temperature, reasoning tokens are spent and can cut an answer, "
                    "long prompts hit a prompt cache (rules.py)")
    ap.add_argument("--tpm", type=float, default=0.0,
                    help="tokens per minute (prompt + max_tokens, charged on arrival) beyond "
                    "which requests are answered 429 with x-ratelimit-* headers")
    ap.add_argument("--tpm-depth", type=float, default=60.0,
                    help="seconds of --tpm the bucket holds (the burst allowed)")
    a = ap.parse_args(argv)
    srv = make_server(a.port, latency=a.latency, error_rate=a.error_rate,
                      malformed_rate=a.malformed_rate, hang=a.hang,
                      json_schema=not a.no_json_schema, batch_time=a.batch_time,
                      seed=a.seed, rate_limit_rate=a.rate_limit_rate, capacity=a.capacity,
                      judge=a.judge, slow_rate=a.slow_rate, slow=a.slow, deviate=a.deviate,
                      writer_flaws=a.writer_flaws, openai_rules=a.openai_rules, tpm=a.tpm,
                      tpm_depth=a.tpm_depth)
    print(f"listening on http://127.0.0.1:{srv.server_address[1]}/v1", flush=True)  # noqa: T201
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        srv.server_close()


if __name__ == "__main__":
    main()
