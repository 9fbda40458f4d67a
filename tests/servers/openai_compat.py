"""A loopback OpenAI-compatible chat server that answers our prompts like a model would.

It speaks POST /v1/chat/completions well enough for the real `openai` SDK (strict response
fields, `usage`, `response_format`), reads the machine-readable task block our prompts carry
(a ```json fenced block in the last user message) and builds a plausible JSON answer from it:
the template filled with the listed values, framed with the style phrases, a slip made when
asked, the signature appended. Faults are injected on demand: latency, HTTP errors (429 with
Retry-After, 500, or a hang past the client's timeout) and malformed answers.

    python -m tests.servers.openai_compat --port 8089 --latency 0.25 --error-rate 0.1 \
        --malformed-rate 0.2

GET /stats gives request counts: total, by status, by kind (templates / fill / questions).
In tests: `with serve(error_rate=0.1) as srv: ... srv.url ... srv.stats()`.
"""

from __future__ import annotations

import argparse
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
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

_TASK_RE = re.compile(r"```json\s*\n(.*?)\n```", re.S)
_SLOT_RE = re.compile(r"\{([a-z][a-z0-9_]*)(?:\.([a-z][a-z0-9_]*))?\}")


@dataclass
class Config:
    latency: float = 0.0  # seconds before every answer
    error_rate: float = 0.0  # share of requests answered 429 / 500 / a hang
    malformed_rate: float = 0.0  # share of 200 answers whose content is broken
    hang: float = 5.0  # how long a "timeout" error sleeps (set it above the client timeout)
    json_schema: bool = True  # False: reject response_format json_schema with a 400
    seed: int = 0


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

    def draw(self) -> float:
        with self.lock:
            return self.rng.random()

    def count(self, status: int, kind: str, digest: str) -> None:
        with self.lock:
            self.status[str(status)] += 1
            if status == 200:
                self.answered[kind] += 1
                self.answered_bodies.add(digest)

    def snapshot(self) -> dict:
        with self.lock:
            return {"total": self.total, "by_status": dict(self.status),
                    "by_kind": dict(self.kinds), "answered_by_kind": dict(self.answered),
                    "times": list(self.times), "bodies": dict(self.bodies),
                    "answered_bodies": sorted(self.answered_bodies)}


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
    values = task.get("values", {})
    phrases = [_fill(p, values) for p in task.get("style_phrases", [])]
    body = _fill(task.get("template", ""), values)
    parts = [phrases[0], body, *phrases[1:]] if phrases else [body]
    text = " ".join(p.strip() for p in parts if p.strip())
    text = text[:1].upper() + text[1:]
    slip = None
    if task.get("slip"):
        rules = list(task.get("slip_rules", []))
        rng.shuffle(rules)
        for rule in rules:
            m = re.search(rule["pattern"], text)
            if m:
                after = m.expand(rule["replacement"])
                text = text[:m.start()] + after + text[m.end():]
                slip = {"kind": rule["kind"], "from": m.group(0), "to": after}
                break
    return {"text": f"{text}\n\n{task.get('signature', '')}", "slip": slip}


def answer(task: dict, rng: random.Random) -> dict:
    kind = task.get("task")
    if kind == "fill":
        return answer_fill(task, rng)
    if kind == "questions":
        examples = task.get("examples") or ["?"]
        return {"question": rng.choice(examples)}
    if kind == "templates":
        examples = list(task.get("examples", []))
        rng.shuffle(examples)
        return {"templates": examples[: task.get("count", len(examples))]}
    return {"text": "I do not know what you are asking for."}


def malformed(content: str, rng: random.Random) -> str:
    if rng.random() < 0.5:
        return content[: max(1, len(content) // 2)]  # cut off: invalid JSON
    return json.dumps({"answer_text": "??"})  # valid JSON, wrong fields


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

    def do_GET(self):  # noqa: N802 - stdlib name
        path, _, query = self.path.partition("?")
        if path.rstrip("/") != "/stats":
            self._send(404, {"error": {"message": "not found", "type": "invalid_request_error"}})
            return
        snap = self.server.state.snapshot()
        if "full=1" not in query:  # per-request detail only on request: it grows with the run
            for key in ("times", "bodies", "answered_bodies"):
                snap.pop(key)
        self._send(200, snap)

    def do_POST(self):  # noqa: N802 - stdlib name
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length)
        if self.path.rstrip("/") not in ("/v1/chat/completions", "/chat/completions"):
            self._send(404, {"error": {"message": "not found", "type": "invalid_request_error"}})
            return
        state, cfg = self.server.state, self.server.state.config
        try:
            body = json.loads(raw)
        except json.JSONDecodeError:
            self._send(400, {"error": {"message": "invalid JSON body",
                                       "type": "invalid_request_error"}})
            return
        task = task_of(body)
        kind = task.get("task", "unknown")
        digest = hashlib.sha256(raw).hexdigest()
        with state.lock:
            state.bodies[digest] += 1
            state.total += 1
            state.kinds[kind] += 1
            state.times.append(time.time())
        if cfg.latency:
            time.sleep(cfg.latency)
        status = self._fault(cfg, state, body)
        if status:
            state.count(status, kind, digest)
            return
        rng = _rng_for(body, cfg.seed)
        content = json.dumps(answer(task, rng), ensure_ascii=False)
        if cfg.malformed_rate and rng.random() < cfg.malformed_rate:
            content = malformed(content, rng)
        prompt_chars = sum(len(str(m.get("content", ""))) for m in body.get("messages", []))
        usage = {"prompt_tokens": prompt_chars // 4 + 1, "completion_tokens": len(content) // 4 + 1}
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        self._send(200, {
            "id": f"chatcmpl-{rng.getrandbits(64):016x}", "object": "chat.completion",
            "created": int(time.time()), "model": body.get("model", "test-model"),
            "choices": [{"index": 0, "finish_reason": "stop", "logprobs": None,
                         "message": {"role": "assistant", "content": content}}],
            "usage": usage})
        state.count(200, kind, digest)

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
            self._send(429, {"error": {"message": "rate limited", "type": "rate_limit_error"}},
                       {"retry-after-ms": "50", "Retry-After": "1"})
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
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    srv = make_server(a.port, latency=a.latency, error_rate=a.error_rate,
                      malformed_rate=a.malformed_rate, hang=a.hang,
                      json_schema=not a.no_json_schema, seed=a.seed)
    print(f"listening on http://127.0.0.1:{srv.server_address[1]}/v1", flush=True)  # noqa: T201
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        srv.server_close()


if __name__ == "__main__":
    main()
