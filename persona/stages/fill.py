"""Stage 2: answers, in batches of `batch_size`, under `generated/<persona>/answers/`.

The stage decides per slot which template, which style and whether to slip; the provider only
writes. Styles are apportioned exactly to the mix over the whole run, slips are placed on
exactly round(rate * count) slots. Each answer is normalised and checked (persona/checks/
answer.py: the same checks whoever wrote it) and compared
with every answer kept so far (dedup); a rejected slot is retried with a new attempt number,
what still fails goes to `invalid/fill/` with its reason.
"""

from __future__ import annotations

import functools
import itertools
import random
from collections.abc import Iterator
from dataclasses import dataclass

from persona.checks.answer import answer_problems, normalise_answer
from persona.dedup import DedupIndex
from persona.errors import WorkspaceError
from persona.io import iter_jsonl, write_json, write_jsonl
from persona.providers.base import Failure, FillRequest, Provider, TemplateRecord
from persona.spec import PersonaSpec
from persona.stages import (
    MAX_ATTEMPTS,
    Progress,
    StageReport,
    no_progress,
    usage_mark,
    usage_since,
)
from persona.stages import templates as templates_stage
from persona.workspace import Workspace

NO_SLIP = "a slip was asked for and none was made"


def apportion(mix: dict[str, float], count: int) -> dict[str, int]:
    """Largest-remainder apportionment: shares that sum to `count` and are within 1 of exact."""
    exact = {k: v * count for k, v in mix.items()}
    out = {k: int(v) for k, v in exact.items()}
    by_remainder = sorted(mix, key=lambda k: (-(exact[k] - out[k]), list(mix).index(k)))
    for k in by_remainder[: count - sum(out.values())]:
        out[k] += 1
    return out


def style_schedule(mix: dict[str, float], count: int, seed: int) -> list[str]:
    styles = [k for k, n in apportion(mix, count).items() for _ in range(n)]
    random.Random(f"{seed}:styles").shuffle(styles)
    return styles


def slip_schedule(rate: float, count: int, seed: int) -> set[int]:
    return set(random.Random(f"{seed}:slips").sample(range(count), round(rate * count)))


def template_schedule(n_templates: int, start: int, stop: int, seed: int) -> Iterator[int]:
    """Template index per slot: each template once per round, rounds shuffled anew."""
    round_no, order = -1, []
    for slot in range(start, stop):
        if slot // n_templates != round_no:
            round_no = slot // n_templates
            order = random.Random(f"{seed}:template-round:{round_no}").sample(
                range(n_templates), n_templates)
        yield order[slot % n_templates]


def answer_id(persona_id: str, slot: int) -> str:
    """The id of slot `slot`'s answer (its dialogue's id swaps "-a" for "-d")."""
    return f"{persona_id}-a{slot + 1:06d}"


def answer_slot(answer: dict) -> int:
    """The slot an answer record was written for (the inverse of answer_id)."""
    return int(answer["id"].rsplit("-a", 1)[1]) - 1


def run(plan: FillPlan, provider: Provider, on_progress: Progress = no_progress
        ) -> StageReport:
    """The stage in rounds, batch after batch (the offline provider, the Batch API); an LLM
    provider that streams is driven by persona/stages/run.py instead."""
    spec, seed, count = plan.spec, plan.seed, plan.count
    done = 0
    with _workers(spec, provider, seed) as fill_many:
        # Every batch's first asks are known now: the workers start on all of them, and the
        # parent's in-order work on batch b (dedup, retries, the write) overlaps with theirs
        # on the batches after it.
        todo = [b for b in range(plan.n_batches) if not plan.finished(b)]
        first = (iter(fill_many([s for b in todo for s in plan.slots(b)]))
                 if fill_many is not None else None)
        for b in range(plan.n_batches):
            if plan.finished(b):
                plan.keep(b)
            else:
                slots = plan.slots(b)
                answers, invalid, stats = fill_batch(
                    spec, provider, slots, plan.bank, plan.index, seed,
                    getattr(provider, "rephrases", False), _keeping_ahead(fill_many, provider),
                    _kept_ahead(itertools.islice(first, len(slots)), provider)
                    if first is not None else None)
                plan.write(b, answers, invalid, stats)
            done += len(plan.range(b))
            on_progress(done, count)
    return plan.report


def _kept_ahead(results: Iterator[tuple], provider: Provider) -> Iterator[tuple]:
    """Pass fill_and_judge's results on, keeping the questions asked ahead in the
    provider's store (`ahead`) for the questions stage."""
    for res, own in results:
        if getattr(res, "question", None) is not None:
            provider.ahead[res.question[0]] = res.question[1]
            res.question = None
        yield res, own


def _keeping_ahead(fill_many, provider: Provider):
    if fill_many is None:
        return None
    return lambda requests: _kept_ahead(iter(fill_many(requests)), provider)


def _workers(spec: PersonaSpec, provider: Provider, seed: int):
    """Forked workers for a provider that writes in this process (the offline grammar);
    a network provider asks on its own (None). The lemma dictionary is loaded first, so
    every worker has it."""
    from contextlib import nullcontext

    from persona import parallel
    from persona.text import _lemmas_ready

    if not getattr(provider, "forkable", False):
        return nullcontext(None)
    _lemmas_ready(spec.persona.language)
    return parallel.pool(functools.partial(fill_and_judge, spec, provider, seed))


def fill_and_judge(spec: PersonaSpec, provider: Provider, seed: int, req: FillRequest
                   ) -> tuple:
    """One answer and its own verdict (everything but dedup): (result, verdict or None); a
    candidate carries its dedup fingerprint, so the parent only looks it up, and, from a
    provider that `asks_ahead`, its question (asked as if the answer kept its slot's place;
    the questions stage checks that it did)."""
    res = provider.fill(spec, [req], seed)[0]
    own = _own_verdict(spec, req, res)
    if own is None:
        res.fingerprint = DedupIndex(spec.persona.signature).fingerprint(res.text)
        if getattr(provider, "asks_ahead", False):
            from persona.stages.questions import ask_ahead

            res.question = ask_ahead(spec, provider, seed, req.index, res.values)
    return res, own


@dataclass
class FillPlan:
    """What the stage will do and what it did: the schedules, the dedup index over every
    answer kept so far, the report; `write` puts a batch on disk (its answers file last)."""

    spec: PersonaSpec
    ws: Workspace
    bank: list[TemplateRecord]
    count: int
    seed: int
    batch_size: int
    styles: list[str]
    slips: set[int]
    index: DedupIndex
    report: StageReport

    @classmethod
    def prepare(cls, spec: PersonaSpec, ws: Workspace, provider: Provider, *, count: int,
                seed: int, batch_size: int, force: bool) -> FillPlan:
        if not ws.templates_file.exists():
            raise WorkspaceError("no template bank: run `persona templates` first",
                                 file=str(ws.templates_file))
        bank = templates_stage.load(ws.templates_file, spec)
        params = {"persona": spec.fingerprint(), "templates": templates_stage.digest(
            ws.templates_file), "count": count, "seed": seed, "batch_size": batch_size,
            "provider": provider.name}
        if getattr(provider, "fill_mode", None):  # an LLM: how it was asked to write
            params["fill"] = provider.fill_mode
        ws.prepare(ws.answers, "fill", params, force)
        return cls(spec, ws, bank, count, seed, batch_size,
                   style_schedule(spec.style.mix, count, seed),
                   slip_schedule(spec.style.slip_rate, count, seed),
                   DedupIndex(spec.persona.signature), StageReport("fill"))

    @property
    def n_batches(self) -> int:
        return -(-self.count // self.batch_size)

    def range(self, b: int) -> range:
        return range(b * self.batch_size, min(self.count, (b + 1) * self.batch_size))

    def finished(self, b: int) -> bool:
        return Workspace.batch(self.ws.answers, b).exists()

    def slots(self, b: int) -> list[FillRequest]:
        r = self.range(b)
        return [FillRequest(i, answer_id(self.spec.id, i), self.bank[t], self.styles[i],
                            i in self.slips)
                for i, t in zip(r, template_schedule(len(self.bank), r.start, r.stop, self.seed),
                                strict=True)]

    def keep(self, b: int) -> None:
        """A batch an earlier run finished: its answers join the dedup index."""
        kept = [obj for _, obj in iter_jsonl(Workspace.batch(self.ws.answers, b))]
        for obj in kept:
            self.index.offer(obj["text"])
        self.report.add_stats(Workspace.stats(self.ws.answers, b))
        self.report.kept += len(kept)
        self.report.batches_skipped += 1

    def write(self, b: int, answers: list[dict], invalid: list[dict], stats: dict) -> None:
        if invalid:
            write_jsonl(Workspace.batch(self.ws.invalid("fill"), b), invalid)
        write_json(Workspace.stats(self.ws.answers, b), stats)
        write_jsonl(Workspace.batch(self.ws.answers, b), answers)  # last: marks it done
        self.report.add_stats(Workspace.stats(self.ws.answers, b))
        self.report.made += len(answers)
        self.report.batches_written += 1


def fill_batch(spec: PersonaSpec, provider: Provider, slots: list[FillRequest],
               bank: list[TemplateRecord], index: DedupIndex, seed: int,
               rephrase: bool = False, fill_many=None, first=None
               ) -> tuple[list[dict], list[dict], dict]:
    """Fill, check and dedup one batch in rounds (one provider.fill call per round).
    `fill_many(requests)`: each request's `fill_and_judge`, in order (on forked workers);
    `first`: those of the batch's first round, asked for already."""
    job = FillBatch(spec, slots, bank, index, seed, rephrase)
    mark = usage_mark(provider)
    pending = job.start()
    job.activate()
    while pending:
        new: list[FillRequest] = []
        if fill_many is not None:
            results, first = (first if first is not None else fill_many(pending)), None
            for req, (res, own) in zip(pending, results, strict=True):
                new += job.take(req, res, own)
        else:
            for req, res in zip(pending, provider.fill(spec, pending, seed), strict=True):
                new += job.take(req, res)
        pending = sorted(new, key=lambda r: r.index)
    return job.result(usage_since(provider, mark))


class FillBatch:
    """One batch's slots through fill, check and dedup, fed answers in any order.

    It decides exactly as rounds would: round a judges, in slot order, the answers of the slots
    rejected in round a - 1 (round 0: every slot), against the dedup index of every answer
    accepted before. A rejected slot is retried with a fresh attempt (and, from the second
    retry on, another template, since some templates fit no slip); after MAX_ATTEMPTS it goes
    to invalid/. Only the dedup check depends on other answers, so an answer that fails its own
    checks (rules, slip, a malformed or failed request) has its retry sent at once, before its
    round's turn; the in-order judging then finds it already on its way. The decisions, and so
    the bytes written, are the same whatever order answers arrive in. With `rephrase` (an LLM
    provider), a slot whose answer no slip rule fitted is next asked to rephrase that answer
    with a trigger word (once), instead of writing a new one. `activate()` starts the
    in-order judging (the overlapped run holds it until the previous batch is done, since
    that batch's answers join the index first); `take` returns the requests to send now.

    `news()` tells the overlapped run, as they happen, which answers passed their own checks
    (candidates: only dedup can still reject them, which is rare) and which of those dedup then
    rejected, each keyed (answer id, attempt); `keys()` gives the accepted ones' keys in the
    answers file's order. So a candidate's question can be asked before its place is known.
    """

    def __init__(self, spec: PersonaSpec, slots: list[FillRequest],
                 bank: list[TemplateRecord], index: DedupIndex, seed: int,
                 rephrase: bool = False):
        self.spec, self.bank, self.index, self.seed = spec, bank, index, seed
        self.rephrase = rephrase
        self.slots = slots
        self.rounds: list[list[int]] = [[s.index for s in slots]]
        self.cursor = (0, 0)
        self.answers: dict[tuple[int, int], tuple] = {}  # (attempt, index) -> judged alone
        self.sent: set[tuple[int, int]] = set()
        self.active = False
        self.done = not slots
        self.accepted: dict[int, dict] = {}
        self.attempt: dict[int, int] = {}  # slot -> the attempt accepted
        self.last_reason: dict[int, tuple[str, str]] = {}
        self.failed: list[FillRequest] = []
        self.stats = {"retried": 0, "rejected": 0, "reasons": {}, "usage": {}}
        self._candidates: list[tuple[tuple[str, int], dict]] = []
        self._dropped: list[tuple[str, int]] = []

    def start(self) -> list[FillRequest]:
        self.sent.update((0, s.index) for s in self.slots)
        return list(self.slots)

    def activate(self) -> list[FillRequest]:
        self.active = True
        return self._advance()

    def take(self, req: FillRequest, res, own=()) -> list[FillRequest]:
        """An answer to one request (`own`: its own verdict when judged already)."""
        if own == ():
            own = _own_verdict(self.spec, req, res)
        self.answers[(req.attempt, req.index)] = (req, res, own)
        if own is None:
            self._candidates.append(((req.id, req.attempt), _record(req, res)))
        out = []
        if own is not None and req.attempt + 1 < MAX_ATTEMPTS and not (
                isinstance(res, Failure) and not res.retry):
            out.append(self._send_next(req, res, own[0]))  # rejected whatever the others say
        if self.active:
            out += self._advance()
        return out

    def _send_next(self, req: FillRequest, res=None, reason: str | None = None
                   ) -> FillRequest:
        self.sent.add((req.attempt + 1, req.index))
        if (self.rephrase and reason == NO_SLIP and req.previous is None
                and not isinstance(res, Failure)):
            body = res.text[: len(res.text) - len(self.spec.persona.signature)].rstrip()
            return FillRequest(req.index, req.id, req.template, req.style, req.slip,
                               req.attempt + 1, previous={"text": body,
                                                          "attempt": req.attempt})
        template = req.template
        if req.attempt >= 1:
            rng = random.Random(f"{self.seed}:retry-template:{req.index}:{req.attempt}")
            template = rng.choice(self.bank)
        return FillRequest(req.index, req.id, template, req.style, req.slip, req.attempt + 1)

    def _advance(self) -> list[FillRequest]:
        """Judge, in round order, every answer that is in; return the retries to send."""
        out: list[FillRequest] = []
        while not self.done:
            a, p = self.cursor
            if p == len(self.rounds[a]):
                if len(self.rounds) > a + 1:
                    self.cursor = (a + 1, 0)
                    continue
                self.done = True
                break
            got = self.answers.pop((a, self.rounds[a][p]), None)
            if got is None:
                break
            req, res, own = got
            reason, raw = own if own is not None else _dedup_verdict(req, res, self.index)
            self.cursor = (a, p + 1)
            if reason is None:
                self.accepted[req.index] = _record(req, res)
                self.attempt[req.index] = req.attempt
                continue
            if own is None:  # a candidate that dedup rejected
                self._dropped.append((req.id, req.attempt))
            reasons = self.stats["reasons"]
            reasons[reason] = reasons.get(reason, 0) + 1
            self.last_reason[req.index] = (reason, raw)
            if a + 1 == MAX_ATTEMPTS or (isinstance(res, Failure) and not res.retry):
                self.failed.append(req)
                continue
            self.stats["retried"] += 1
            if len(self.rounds) == a + 1:
                self.rounds.append([])
            self.rounds[a + 1].append(req.index)
            if (a + 1, req.index) not in self.sent:
                out.append(self._send_next(req))
        return out

    def news(self) -> tuple[list[tuple[tuple[str, int], dict]], list[tuple[str, int]]]:
        """Candidates (key, answer record) and dropped candidates' keys since the last call."""
        out = self._candidates, self._dropped
        self._candidates, self._dropped = [], []
        return out

    def keys(self) -> list[tuple[str, int]]:
        """The accepted answers' keys (answer id, attempt), in the answers file's order."""
        return [(self.accepted[i]["id"], self.attempt[i]) for i in sorted(self.accepted)]

    def result(self, usage: dict) -> tuple[list[dict], list[dict], dict]:
        invalid = []
        for req in sorted(self.failed, key=lambda r: r.index):
            reason, raw = self.last_reason[req.index]
            invalid.append({"id": req.id, "template_id": req.template.id, "style": req.style,
                            "slip": req.slip, "reason": reason, "output": raw})
        stats = {**self.stats, "rejected": len(invalid), "usage": usage}
        return [self.accepted[i] for i in sorted(self.accepted)], invalid, stats


def _own_verdict(spec: PersonaSpec, req: FillRequest, res) -> tuple[str, str] | None:
    """(reason, raw) when the answer fails on its own (the checks of every provider's
    answer, its slip, a Failure), else None. The answer is normalised first, in place (a
    no-op on the offline grammar's answers)."""
    if isinstance(res, Failure):
        return res.reason, res.raw
    if not res.normalised:  # the offline grammar's (a no-op) or another provider's
        res.text = normalise_answer(res.text, spec)
    problems = answer_problems(res.text, spec, req.style, slip=res.slip, brief=res.brief)
    if req.slip and not res.slip:
        problems.append(NO_SLIP)
    if res.slip and not req.slip:
        problems.append("a slip was made where none was asked for")
    if res.slip and res.slip["to"] not in res.text:
        problems.append("the reported slip is not in the text")
    if problems:
        return problems[0], res.text
    return None


def _dedup_verdict(req: FillRequest, res, index: DedupIndex) -> tuple[str | None, str]:
    verdict, token = index.check(res.text, getattr(res, "fingerprint", None))
    if verdict.kind is not None:
        return f"{verdict.kind} duplicate", res.text
    index.add(token)
    return None, ""


def _record(req: FillRequest, res) -> dict:
    return {"id": req.id, "template_id": req.template.id, "style": req.style,
            "values": res.values, "slip": res.slip, "text": res.text}

