"""Stage 3: a journalist's question for every answer, `generated/<persona>/dialogues/`.

Dialogue batch k is made from answers batch k, so both resume together. Every question is
normalised and checked (persona/checks/answer.py) and looked up in one run-wide index
(`QuestionIndex`): a question asked before in the run is asked again, on every path, so no
question is in the dataset twice and none leaks from test into train.
"""

from __future__ import annotations

import functools
from contextlib import contextmanager
from dataclasses import dataclass, field

from persona.checks.answer import (
    normalise_question,
    question_key,
    question_keys,
    question_problems,
)
from persona.errors import WorkspaceError
from persona.io import iter_jsonl, write_json, write_jsonl
from persona.providers.base import Failure, Provider, QuestionRequest
from persona.spec import PersonaSpec, per_spec
from persona.stages import (
    MAX_ATTEMPTS,
    Progress,
    StageReport,
    no_progress,
    usage_mark,
    usage_since,
)
from persona.stages.fill import answer_slot
from persona.workspace import Workspace

REPEATED = "question asked before"


class QuestionIndex:
    """Every question of the run so far: one per run, shared by all its batches.

    Two questions are the same when they differ only in case, spacing and punctuation. With
    `spec` (an LLM writes the questions) also when they differ only in the journalist's
    address ("Pane Babiši," / "Pane předsedo,") or a lead sentence before the same question
    (`question_keys`): a model that copies its example questions makes such twins. The
    offline grammar keeps the exact rule: its address alternatives are by design, and its
    dataset stays the same bytes (the report counts its address-aside leaks)."""

    def __init__(self, spec: PersonaSpec | None = None):
        self.spec = spec
        self._keys: set[str] = set()
        self._tails: set[str] = set()

    def _keys_of(self, question: str) -> tuple[str, str | None]:
        if self.spec is None:
            return question_key(question), None
        return question_keys(question, self.spec)

    def __contains__(self, question: str) -> bool:
        key, tail = self._keys_of(question)
        return key in self._keys or key in self._tails or (
            tail is not None and (tail in self._keys or tail in self._tails))

    def add(self, question: str) -> None:
        key, tail = self._keys_of(question)
        self._keys.add(key)
        if tail is not None:
            self._tails.add(tail)

    def __len__(self) -> int:
        return len(self._keys)


def run(spec: PersonaSpec, plan: QuestionsPlan, provider: Provider, *, seed: int,
        on_progress: Progress = no_progress) -> StageReport:
    """The stage in rounds, batch after batch (the offline provider, the Batch API); an LLM
    provider that streams is driven by persona/stages/run.py instead."""
    # every question of the run so far: no question is asked twice (an LLM's twins too)
    seen = QuestionIndex(spec if getattr(provider, "rephrases", False) else None)
    with _workers(spec, provider, seed) as ask_many:
        for b in range(plan.n_batches):
            plan.check_source(b)
            if plan.finished(b):
                for q in plan.questions(b):
                    seen.add(q)
                plan.keep(b)
            else:
                dialogues, invalid, stats = ask_batch(spec, provider, plan.answers(b),
                                                      plan.offset(b), seed, seen, ask_many)
                plan.write(b, dialogues, invalid, stats)
            on_progress(min(plan.count, (b + 1) * plan.batch_size), plan.count)
    return plan.report


def _workers(spec: PersonaSpec, provider: Provider, seed: int):
    """Forked workers for a provider that writes in this process (the offline grammar);
    a network provider asks on its own (None)."""
    from contextlib import nullcontext

    from persona import parallel

    if not getattr(provider, "forkable", False):
        return nullcontext(None)
    return _ahead_first(spec, provider, seed,
                        parallel.pool(functools.partial(ask_and_judge, spec, provider, seed)))


@contextmanager
def _ahead_first(spec: PersonaSpec, provider: Provider, seed: int, pool):
    """The pool's `run`, but a question fill's workers asked ahead is taken from the
    provider's store here; only the others go to the workers (none: no fork at all)."""
    ahead = getattr(provider, "ahead", None)
    with pool as many:
        if not ahead:
            yield many
            return

        def run(requests: list[QuestionRequest]):
            known = {}
            for i, req in enumerate(requests):
                if req.attempt == 0:
                    got = ahead.pop(_ahead_key(spec, seed, req.index, req.answer["values"]),
                                    None)
                    if got is not None:
                        known[i] = got
            rest = iter(many([r for i, r in enumerate(requests) if i not in known]))
            return (known[i] if i in known else next(rest) for i in range(len(requests)))

        yield run


def ask_and_judge(spec: PersonaSpec, provider: Provider, seed: int, req: QuestionRequest
                  ) -> tuple:
    """One question and its own verdict: (question or Failure, problems, raw, retryable)."""
    return _judge(spec, provider, req, provider.ask(spec, [req], seed)[0])


def ask_ahead(spec: PersonaSpec, provider: Provider, seed: int, slot: int, values: dict
              ) -> tuple:
    """(key, judged): the first question of the answer at `slot` with `values`, asked before
    the answer is written (in fill's worker), as ask_and_judge would ask it at that place."""
    req = QuestionRequest(slot, {"values": values})
    return (_ahead_key(spec, seed, slot, values),
            _judge(spec, provider, req, provider.ask(spec, [req], seed)[0]))


def _ahead_key(spec: PersonaSpec, seed: int, index: int, values: dict) -> tuple:
    """Everything a question of the offline grammar depends on (the spec by its content)."""
    return _spec_digest(spec), seed, index, tuple(sorted(values.items()))


@per_spec
def _spec_digest(spec: PersonaSpec) -> str:
    return spec.fingerprint()


def _judge(spec: PersonaSpec, provider: Provider, req: QuestionRequest, res) -> tuple:
    if isinstance(res, Failure):
        return res, [res.reason], res.raw, res.retry
    if not getattr(provider, "normalises", False):
        res = normalise_question(res, spec)
    problems = question_problems(res, spec, req.answer["values"],
                                 getattr(provider, "question_sentences", None))
    return res, problems, res, True


@dataclass
class QuestionsPlan:
    ws: Workspace
    count: int
    batch_size: int
    report: StageReport

    @classmethod
    def prepare(cls, ws: Workspace, provider: Provider, *, seed: int, force: bool
                ) -> QuestionsPlan:
        fill_params = Workspace.fingerprint(ws.answers)
        if not fill_params:
            raise WorkspaceError("no answers yet: run `persona fill` first",
                                 file=str(ws.answers))
        params = {"answers": fill_params, "seed": seed, "provider": provider.name}
        ws.prepare(ws.dialogues, "questions", params, force)
        return cls(ws, fill_params["count"], fill_params["batch_size"], StageReport("questions"))

    @property
    def n_batches(self) -> int:
        return -(-self.count // self.batch_size)

    def offset(self, b: int) -> int:
        return b * self.batch_size

    def size(self, b: int) -> int:
        return min(self.count, (b + 1) * self.batch_size) - self.offset(b)

    def has_source(self, b: int) -> bool:
        return Workspace.batch(self.ws.answers, b).exists()

    def check_source(self, b: int) -> None:
        if not self.has_source(b):
            raise WorkspaceError("answers batch missing: run `persona fill` to finish the stage",
                                 file=str(Workspace.batch(self.ws.answers, b)))

    def finished(self, b: int) -> bool:
        return Workspace.batch(self.ws.dialogues, b).exists()

    def answers(self, b: int) -> list[dict]:
        return [obj for _, obj in iter_jsonl(Workspace.batch(self.ws.answers, b))]

    def questions(self, b: int) -> list[str]:
        """The questions of a finished dialogues batch."""
        return [d.get("question", "") for _, d in iter_jsonl(Workspace.batch(self.ws.dialogues,
                                                                               b))]

    def keep(self, b: int) -> None:
        self.report.kept += sum(1 for _ in iter_jsonl(Workspace.batch(self.ws.dialogues, b)))
        self.report.batches_skipped += 1
        self.report.add_stats(Workspace.stats(self.ws.dialogues, b))

    def write(self, b: int, dialogues: list[dict], invalid: list[dict], stats: dict) -> None:
        if invalid:
            write_jsonl(Workspace.batch(self.ws.invalid("questions"), b), invalid)
        write_json(Workspace.stats(self.ws.dialogues, b), stats)
        write_jsonl(Workspace.batch(self.ws.dialogues, b), dialogues)  # last: marks it done
        self.report.made += len(dialogues)
        self.report.batches_written += 1
        self.report.add_stats(Workspace.stats(self.ws.dialogues, b))


def ask_batch(spec: PersonaSpec, provider: Provider, answers: list[dict], offset: int,
              seed: int, seen: QuestionIndex | None = None, ask_many=None
              ) -> tuple[list[dict], list[dict], dict]:
    """Questions for one batch; a question already asked in the run (`seen`, updated) is
    re-asked, so the dataset never holds one question twice (and none leaks across splits).
    `ask_many(requests)`: each request's `ask_and_judge`, in order (on forked workers)."""
    seen = QuestionIndex() if seen is None else seen
    done: dict[int, str] = {}
    last: dict[int, tuple[str, str]] = {}
    stats = {"retried": 0, "rejected": 0, "reasons": {}, "usage": {}}
    mark = usage_mark(provider)
    pending = [QuestionRequest(offset + i, a) for i, a in enumerate(answers)]
    failed: list[QuestionRequest] = []
    for attempt in range(MAX_ATTEMPTS):
        if not pending:
            break
        retry = []
        if ask_many is not None:
            judged = ask_many(pending)
        else:
            judged = [_judge(spec, provider, req, res) for req, res in
                      zip(pending, provider.ask(spec, pending, seed), strict=True)]
        for req, (res, problems, raw, retryable) in zip(pending, judged, strict=True):
            if not problems and res in seen:
                problems = [REPEATED]
            if not problems:
                seen.add(res)
                done[req.index] = res
                continue
            stats["reasons"][problems[0]] = stats["reasons"].get(problems[0], 0) + 1
            last[req.index] = (problems[0], raw)
            if attempt + 1 == MAX_ATTEMPTS or not retryable:
                failed.append(req)
            else:
                stats["retried"] += 1
                retry.append(QuestionRequest(req.index, req.answer, attempt + 1))
        pending = retry
    invalid = [{"answer_id": r.answer["id"], "reason": last[r.index][0],
                "output": last[r.index][1]}
               for r in sorted(failed, key=lambda r: r.index)]
    stats["rejected"] = len(invalid)
    stats["usage"] = usage_since(provider, mark)
    dialogues = [{"id": "-d".join(a["id"].rsplit("-a", 1)), "answer_id": a["id"],
                  "question": done[offset + i], "answer": a["text"]}
                 for i, a in enumerate(answers) if offset + i in done]
    return dialogues, invalid, stats


class AskBatch:
    """One batch's questions for the overlapped run, fed answers in any order and before
    their places are known.

    Each answer (keyed by its caller: the answer id and fill attempt) gets its own chain of
    asks, seeded by the answer's slot (not its place in the batch), so a question does not
    wait for the answers before it. A question that fails its own checks is asked again at
    once, up to MAX_ATTEMPTS. Whether a question was asked before depends on the others, so
    that is judged in order (`judge`), as the stage's rounds would: once every batch before
    this one is judged, the sealed chains in file order (round 0), then the chains re-asked
    for a repeat (round 1), and so on, each against the run's `QuestionIndex`. So the result
    is the same whatever order answers and questions arrive in.

    `add` starts a chain, `drop` cancels one (its answer was rejected after all: what is in
    flight is ignored), `seal(keys)` names the batch's answers in file order. Made with
    `answers`, it holds a finished answers batch, sealed."""

    def __init__(self, spec: PersonaSpec, index: QuestionIndex,
                 answers: list[dict] | None = None, max_sentences: int | None = None):
        self.spec, self.index, self.max_sentences = spec, index, max_sentences
        self.chains: dict = {}  # key -> _Chain
        self.order: list | None = None  # the sealed keys, in the answers file's order
        self.rounds: list[list] = []
        self.cursor = (0, 0)
        self.judged = False  # every sealed chain has its question judged, or failed
        self.first: list[QuestionRequest] = []
        self.finished = False  # its dialogues were handed to the writer
        if answers is not None:
            keys = [(a["id"], None) for a in answers]
            for key, answer in zip(keys, answers, strict=True):
                self.first += self.add(key, answer)
            self.seal(keys)

    @property
    def complete(self) -> bool:
        return self.judged

    def add(self, key, answer: dict) -> list[QuestionRequest]:
        """Start asking for a candidate answer; returns its first request."""
        chain = self.chains[key] = _Chain(answer)
        return [QuestionRequest(answer_slot(answer), answer, tag=chain)]

    def drop(self, key) -> None:
        self.chains.pop(key).cancelled = True

    def seal(self, keys: list) -> None:
        missing = [k for k in keys if k not in self.chains]
        assert not missing, missing
        self.order = keys
        self.rounds = [list(keys)]
        for key in set(self.chains) - set(keys):  # candidates never accepted nor dropped
            self.chains.pop(key).cancelled = True

    def start(self) -> list[QuestionRequest]:
        """The first requests of a batch made from `answers`."""
        out, self.first = self.first, []
        return out

    def take(self, req: QuestionRequest, res) -> list[QuestionRequest]:
        """An answer to one ask: its own checks; a failed one is asked again at once."""
        chain: _Chain = req.tag
        if chain.cancelled:
            return []
        retryable = True
        if isinstance(res, Failure):
            problems, raw, retryable = [res.reason], res.raw, res.retry
        else:  # an LLM's question, normalised by its parse already
            problems, raw = question_problems(res, self.spec, chain.answer["values"],
                                              self.max_sentences), res
        if not problems:
            chain.question = res
            return []
        return self._again(chain, req.attempt, problems[0], raw, retryable)

    def _again(self, chain: _Chain, attempt: int, reason: str, raw: str,
               retryable: bool = True) -> list[QuestionRequest]:
        chain.reasons.append(reason)
        chain.last = (reason, raw)
        if attempt + 1 == MAX_ATTEMPTS or not retryable:
            chain.failed = True
            return []
        return [QuestionRequest(answer_slot(chain.answer), chain.answer, attempt + 1,
                                tag=chain)]

    def judge(self) -> list[QuestionRequest]:
        """Judge, in order, the chains whose question is in against the run's index (call it
        only when every batch before this one is judged); returns the re-asks of repeats."""
        out: list[QuestionRequest] = []
        while self.order is not None and not self.judged:
            a, p = self.cursor
            if p == len(self.rounds[a]):
                if len(self.rounds) > a + 1:
                    self.cursor = (a + 1, 0)
                    continue
                self.judged = True
                break
            chain = self.chains[self.rounds[a][p]]
            if not chain.settled:
                break
            self.cursor = (a, p + 1)
            if chain.failed:
                continue
            if chain.question in self.index:
                question, chain.question = chain.question, None
                again = self._again(chain, chain.attempts - 1, REPEATED, question)
                if again:
                    if len(self.rounds) == a + 1:
                        self.rounds.append([])
                    self.rounds[a + 1].append(self.rounds[a][p])
                out += again
                continue
            self.index.add(chain.question)
        return out

    def result(self, usage: dict) -> tuple[list[dict], list[dict], dict]:
        chains = [self.chains[k] for k in self.order]
        reasons: dict[str, int] = {}
        for chain in chains:
            for r in chain.reasons:
                reasons[r] = reasons.get(r, 0) + 1
        invalid = [{"answer_id": c.answer["id"], "reason": c.last[0], "output": c.last[1]}
                   for c in chains if c.failed]
        stats = {"retried": sum(len(c.reasons) - c.failed for c in chains),
                 "rejected": len(invalid), "reasons": reasons, "usage": usage}
        dialogues = [{"id": "-d".join(c.answer["id"].rsplit("-a", 1)),
                      "answer_id": c.answer["id"], "question": c.question,
                      "answer": c.answer["text"]}
                     for c in chains if c.question is not None]
        return dialogues, invalid, stats


@dataclass(eq=False)
class _Chain:
    """The asks for one answer: its question, or why it failed."""

    answer: dict
    question: str | None = None
    failed: bool = False
    cancelled: bool = False
    reasons: list[str] = field(default_factory=list)
    last: tuple[str, str] = ("", "")

    @property
    def attempts(self) -> int:
        """Asks made so far (each rejection made one more)."""
        return len(self.reasons) + 1

    @property
    def settled(self) -> bool:
        return self.question is not None or self.failed
