"""The OpenAI-compatible provider: any chat-completions server through the official SDK.

Every request goes through one `RequestPool` (request_pool.py) for the provider's life: one
request per item, concurrent up to --concurrency, paced under --rpm/--tpm, cached, retried by
the pool (the SDK's own retries are off, so the limiter sees every attempt). A malformed answer
(one its parse turns into a Failure) is asked again at once as its own request, up to
MAX_REASKS times (each re-ask has its own cache key, so a rerun replays the same sequence);
the re-asks are counted (`stats["malformed_reasked"]`). What still fails comes back as a
Failure and the stage retries the item with its next attempt.

Two ways in: the blocking Provider protocol (`fill`, `ask`, `write_templates`: one round of
items, results in order), and `fill_item` / `ask_item`, which make the pool's Items for the
overlapped run (stages/run.py) that keeps the pool full across batches and stages. The API
key lives in the client only: it is never logged, cached or put in an error message. With
`batch_api`, each round goes through the Batch API instead (openai_batch.py), and a malformed
answer waits for the stage's next round (a new batch).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path

from persona.errors import BudgetExceeded, ProviderError
from persona.providers import llm_tasks as tasks
from persona.providers.base import Failure, FillRequest, FillResult, QuestionRequest
from persona.providers.llm_cache import RequestCache
from persona.providers.models import RequestShape
from persona.providers.request_pool import Group, Item, RequestPool
from persona.providers.request_pool import _prompt_tokens as _prompt_tokens
from persona.spec import PersonaSpec

log = logging.getLogger(__name__)

DEFAULT_MODEL = "gpt-5.4-mini"
PARAMS_FILE = "request_params.json"  # in the cache folder: what the run sent, for the report
TEMPLATE_ATTEMPTS = 4
# Extra asks per item for a malformed answer, before its Failure goes to the stage.
MAX_REASKS = 3


class OpenAICompatProvider:
    name = "openai"

    normalises = True  # its parse normalises every answer and question
    # The stage may send a FillRequest with `previous` (a rephrase with a slip trigger word).
    rephrases = True
    # A question has at most this many sentences (the prompt says so; the checks hold it).
    question_sentences = tasks.QUESTION_SENTENCES

    def __init__(self, *, base_url: str | None = None, model: str = DEFAULT_MODEL,
                 api_key_env: str = "OPENAI_API_KEY", concurrency: int = 16,
                 rpm: float | None = None, tpm: float | None = None,
                 max_cost: float | None = None, cache_dir=None, timeout: float = 60.0,
                 max_retries: int = 5, monitor: Callable[[dict], None] | None = None,
                 batch_api: bool = False, batch_dir=None, hedge: bool = True,
                 fill_mode: str = "write", reasoning_effort: str | None = None,
                 params: dict | None = None, per_request: int = tasks.PER_REQUEST):
        self.base_url = base_url or os.environ.get("OPENAI_BASE_URL") or None
        api_key = os.environ.get(api_key_env)
        if not api_key:
            if not self.base_url:
                raise ProviderError(f"no API key: set {api_key_env}, or pass --base-url for a "
                                    "local server that needs none")
            api_key = "not-needed"  # local servers ignore it; the SDK wants one
        self.model = model
        self.warnings = check_model(model, self.base_url)
        shape = RequestShape(model, reasoning_effort, params)
        if fill_mode not in tasks.FILL_MODES:
            raise ProviderError(f"unknown fill mode {fill_mode!r}; choose one of "
                                f"{', '.join(tasks.FILL_MODES)}")
        self.fill_mode = fill_mode
        self.max_cost = max_cost
        self.batch_api = batch_api
        self.batch_dir = Path(batch_dir) if batch_dir else Path(cache_dir or ".") / "batches"
        price = _price_of(model)
        if max_cost is not None and price is None:
            raise ProviderError(f"--max-cost needs the price of model {model!r}, which the "
                                "price table lacks")
        self.pool = RequestPool(base_url=self.base_url, api_key=api_key, model=model,
                                concurrency=concurrency, rpm=rpm, tpm=tpm, timeout=timeout,
                                max_retries=max_retries, cache=RequestCache(cache_dir),
                                price=price, batch_discount=_batch_discount(),
                                max_cost=max_cost, monitor=monitor, hedge=hedge, shape=shape,
                                per_request=per_request)
        self.per_request = per_request
        self._groups: dict[tuple, Group] = {}
        self.cache_dir = Path(cache_dir) if cache_dir else None
        self.streams = not batch_api  # the overlapped run (stages/run.py) applies
        # Request parameters of plain-text kinds (the bench's answers, its judge): sent as
        # they are, no response_format; their max_tokens books the --max-cost reservation.
        self.kind_params: dict[str, dict] = {}
        if self.base_url:  # last: the checks of our own arguments come first
            check_reachable(self.base_url)

    def __repr__(self) -> str:  # no key in reprs, tracebacks or logs
        return f"OpenAICompatProvider(model={self.model!r}, base_url={self.base_url!r})"

    # the pool's state, under the names the stages, the CLI and the Batch API mode use
    @property
    def stats(self) -> dict:
        return self.pool.stats

    @property
    def cache(self) -> RequestCache:
        return self.pool.cache

    @property
    def spent(self) -> float:
        return self.pool.spent

    @property
    def monitor(self):
        return self.pool.monitor

    @monitor.setter
    def monitor(self, value) -> None:
        self.pool.monitor = value

    @property
    def structured(self) -> bool:
        return self.pool.structured

    @structured.setter
    def structured(self, value: bool) -> None:
        self.pool.structured = value

    # -- items for the pool ------------------------------------------------------------------
    def fill_item(self, spec: PersonaSpec, req: FillRequest, seed: int) -> Item:
        """A slot's fill item: grouped with the slots of its style and block (write mode),
        or one request of its own (strict mode, a rephrase)."""
        briefs: list = []
        grouped = self.fill_mode == "write" and not req.previous

        def build(reask: int):
            if grouped:
                task, brief = tasks.fill_member(spec, req, seed, reask)
            else:
                task, brief = tasks.fill_request(spec, req, seed, reask, self.fill_mode)
            briefs[:] = [brief]
            return task

        def parse(content: str):
            return tasks.parse_fill(content, spec, req, briefs[0], seed, self.fill_mode)

        if not grouped:
            return self._item("fill", build, parse, req)
        key = tasks.fill_group_key(req)
        return self._member("fill", build, parse, req, self._group(
            key, lambda: (spec, "fill", tasks.fill_shared(spec, seed, req.style, key[2]))))

    def ask_item(self, spec: PersonaSpec, req: QuestionRequest, seed: int) -> Item:
        key = tasks.question_group_key(req)
        return self._member(
            "questions", lambda n: tasks.question_member(spec, req, seed, n),
            lambda c: tasks.parse_question(c, spec), req,
            self._group(key, lambda: (spec, "questions",
                                      tasks.question_shared(spec, seed, key[1]))))

    def _group(self, key: tuple, make) -> Group:
        """The Group of a key (made once: its shared part is rendered once)."""
        if key not in self._groups:
            spec, stage, shared = make()
            kind = shared["task"]
            self._groups[key] = Group(
                key, lambda items: tasks.group_messages(spec, stage, shared, items),
                lambda content, partial: tasks.read_group(kind, content, partial),
                tasks.GROUP_SCHEMAS[kind])
        return self._groups[key]

    def _member(self, kind: str, build, parse, tag, group: Group) -> Item:
        return Item(kind, build, parse, reasks=MAX_REASKS, max_tokens=tasks.MEMBER_TOKENS[kind],
                    schema=tasks.GROUP_SCHEMAS[kind], tag=tag, group=group)

    def _item(self, kind: str, build, parse, tag=None, reasks: int | None = None) -> Item:
        return Item(kind, build, parse, reasks=MAX_REASKS if reasks is None else reasks,
                    max_tokens=tasks.MAX_TOKENS[kind], schema=tasks.SCHEMAS[kind], tag=tag)

    # -- the Provider protocol ---------------------------------------------------------------
    def write_templates(self, spec: PersonaSpec, count: int, seed: int, round_no: int = 0
                        ) -> list[str | Failure]:
        """Template texts; a request still failing after the last attempt comes back as its
        Failure, so the stage files it under invalid/templates/ with its reason, and so does
        a near-copy of one of its request's examples."""
        out: list[str | Failure] = []
        pending = list(range(-(-count // tasks.TEMPLATES_PER_REQUEST)))
        last: dict[int, Failure] = {}
        for attempt in range(TEMPLATE_ATTEMPTS):
            requests = tasks.templates_requests(spec, count, seed, attempt, round_no)
            # No re-ask within the call: the next attempt is the re-ask (new examples).
            items = [self._item("templates", lambda n, m=requests[i]: list(m),
                                tasks.parse_templates, reasks=0) for i in pending]
            retry = []
            for i, got in zip(pending, self._run("templates", items), strict=True):
                if isinstance(got, Failure):
                    log.info("templates request %d: %s", i, got.reason)
                    retry.append(i)
                    last[i] = got
                else:
                    out.extend(_near_copies(got, tasks.template_examples(requests[i])))
            pending = retry
            if not pending:
                break
        return out + [last[i] for i in pending]

    def fill(self, spec: PersonaSpec, requests: list[FillRequest], seed: int
             ) -> list[FillResult | Failure]:
        return self._run("fill", [self.fill_item(spec, r, seed) for r in requests])

    def ask(self, spec: PersonaSpec, requests: list[QuestionRequest], seed: int
            ) -> list[str | Failure]:
        return self._run("questions", [self.ask_item(spec, r, seed) for r in requests])

    def _run(self, kind: str, items: list[Item]) -> list:
        if not self.batch_api:
            return self.pool.run(items)
        # Batch API: a round is a batch; malformed answers wait for the stage's next round.
        from persona.providers import openai_batch

        try:
            # one request per item (a group of one where items are grouped online)
            built = [_solo(item, item.build(0)) for item in items]
            sendable = [m for m in built if not isinstance(m, Failure)]
            answers = iter(openai_batch.run_round(
                self, kind, sendable, [item.group is not None for item, m in zip(
                    items, built, strict=True) if not isinstance(m, Failure)]))
            contents = [m if isinstance(m, Failure) else next(answers) for m in built]
            return [c if isinstance(c, Failure) else item.parse(_own_answer(item, c))
                    for c, item in zip(contents, items, strict=True)]
        finally:
            self.cache.close()

    def close(self) -> None:
        """Close the connections and the event loop kept between rounds; record the
        parameters the run sent (and what a server's refusal changed) for the report."""
        self.pool.close()
        self.record()

    def record(self) -> None:
        """Write what the run sent (and what a server's refusal changed) next to the cache,
        for the report; nothing when no request was sent."""
        if self.cache_dir is not None and self.pool.stats["requests"]:
            from persona.io import write_json

            write_json(self.cache_dir / PARAMS_FILE, self.describe())

    def describe(self) -> dict:
        """Model, server host (never the key) and parameters: the report's provenance."""
        from urllib.parse import urlsplit

        from persona import prompts

        host = urlsplit(self.base_url).netloc if self.base_url else "api.openai.com"
        fill = "fill" if self.fill_mode == "write" else "fill_strict"
        used = ("templates", fill, "fill_rephrase", "questions")
        return {"model": self.model, "host": host, "fill": self.fill_mode,
                "per_request": self.per_request,
                **{k: v for k, v in self.pool.shape.describe().items() if k != "model"},
                "prompts": {stage: prompts.digest(stage) for stage in used},
                "batch_api": self.batch_api}

    def complete(self, kind: str, messages: list[list[dict]], parse=None) -> list:
        """Plain chat completions of `kind` (its parameters in `kind_params`): the content,
        or `parse(content)` (a Failure with retry=True re-asks), or the Failure of sending."""
        params = self.kind_params.get(kind, {"temperature": 0.9, "max_tokens": 512})
        items = [Item(kind, lambda n, m=m: list(m), parse or _content,
                      reasks=MAX_REASKS if parse is not None else 0,
                      max_tokens=params.get("max_tokens", 512), params=params)
                 for m in messages]
        return self._run(kind, items)

    # -- money -------------------------------------------------------------------------------
    def cost(self, usage: dict, batch: bool = False) -> float:
        return self.pool.cost(usage, batch)

    def reserve_batch(self, kind: str, messages: list[list[dict]]) -> None:
        """Refuse a batch whose worst case (prompts + max_tokens each) passes --max-cost."""
        if self.max_cost is None:
            return
        worst = self.cost({"prompt_tokens": sum(_prompt_tokens(m, self.model) for m in messages),
                           "completion_tokens": tasks.MAX_TOKENS[kind] * len(messages)},
                          batch=True)
        if self.spent + worst > self.max_cost:
            raise BudgetExceeded(
                f"stopped before --max-cost {self.max_cost:g} USD would be exceeded: the next "
                f"batch may cost up to {worst:.4f} USD (spent {self.spent:.4f} USD); finished "
                "batches are kept, rerun with a higher --max-cost to go on")

    # -- the Batch API's side ----------------------------------------------------------------
    @property
    def _api_key(self) -> str:
        return self.pool._api_key

    @property
    def max_retries(self) -> int:
        return self.pool.max_retries

    @property
    def timeout(self) -> float:
        return self.pool.timeout

    def _params(self, kind: str, grouped: bool = False) -> dict:
        if grouped:
            return self.pool.params(kind, tasks.MEMBER_TOKENS[kind], tasks.GROUP_SCHEMAS[kind])
        return self.pool.params(kind, tasks.MAX_TOKENS[kind], tasks.SCHEMAS[kind])

    def answered_batch(self, kind: str, key: str, body: dict) -> None:
        """Cache one answer of a Batch API output file (a chat-completion body)."""
        content = body["choices"][0].get("message", {}).get("content") or ""
        u = body.get("usage") or {}
        usage = {"prompt_tokens": u.get("prompt_tokens", 0) or 0,
                 "completion_tokens": u.get("completion_tokens", 0) or 0}
        self.cache.put(key, kind, self.model, content, usage, batch=True)
        self.pool.spent += self.cost(usage, batch=True)
        self.stats["requests"] += 1
        self.stats["prompt_tokens"] += usage["prompt_tokens"]
        self.stats["completion_tokens"] += usage["completion_tokens"]

    def notify(self, kind: str, **extra) -> None:
        self.pool.notify(kind, **extra)


def _solo(item: Item, built):
    """The messages of an item sent alone: a grouped item's task as a group of one."""
    if item.group is None or isinstance(built, Failure):
        return built
    return item.group.render([built])


def _own_answer(item: Item, content: str) -> str:
    """An item's own answer out of the answer to its request (a group of one's)."""
    if item.group is None or isinstance(content, Failure):
        return content
    from persona.providers.request_pool import MISSING

    got = item.group.read(content, False)
    return next(iter(got.values()), MISSING) if len(got) == 1 else MISSING


def _near_copies(texts: list[str], examples: list[str]) -> list[str | Failure]:
    """A template that shares half or more of its word 4-grams with one of the examples it
    was shown is a near-copy, not a new template."""
    from persona.checks.answer import COPY_LIMIT, overlap

    out: list[str | Failure] = []
    for text in texts:
        close = max((overlap(text, e) for e in examples), default=0.0)
        out.append(Failure(f"a near-copy of an example ({close:.0%} of its word 4-grams)",
                           text) if close >= COPY_LIMIT else text)
    return out


def _price_of(model: str) -> tuple[float, float, float | None] | None:
    from persona.checks.cost import load_prices

    found = load_prices().lookup(model)
    if found is None or found[1].input is None or found[1].output is None:
        return None
    return found[1].input, found[1].output, found[1].cached_input


def check_model(model: str, base_url: str | None) -> list[str]:
    """Refuse a model OpenAI has shut down (naming the substitute); the warnings to show for
    one that goes soon. A custom server's models are its own business."""
    from persona.checks.prices import lifecycle

    if base_url and "api.openai.com" not in base_url:
        return []
    error, warning = lifecycle(model)
    if error:
        raise ProviderError(error)
    return [warning] if warning else []


def _batch_discount() -> float:
    from persona.checks.cost import load_prices

    return load_prices().batch_discount


def check_reachable(base_url: str, timeout: float = 3.0) -> None:
    """Fail at once when a server on this machine is not listening, instead of after the
    SDK's retries with backoff. Only loopback hosts are probed: a remote one may be reached
    through a proxy that a direct connection would not use."""
    import socket
    from urllib.parse import urlsplit

    url = urlsplit(base_url)
    if url.hostname not in ("localhost", "127.0.0.1", "::1"):
        return
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        socket.create_connection((url.hostname, port), timeout=timeout).close()
    except OSError as e:
        raise ProviderError(f"cannot connect to {base_url} ({e.strerror or e}); is the "
                            "server running and the URL right?") from None


def _content(content: str) -> str:
    return content
