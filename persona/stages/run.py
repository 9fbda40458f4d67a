"""The orchestrator above the stages it drives: fill and questions, in rounds or overlapped.

`fill_stage` / `questions_stage` run one stage (the CLI's `persona fill`, `persona questions`);
`overlapped` runs both at once (`persona run` with an LLM). The round drivers live in the stage
modules (`fill.run`, `questions.run`: the offline grammar, the Batch API); this module picks
one, so the stages never import their driver.

The overlapped run: fill and questions batches through one request pool, never idle.

With an LLM provider (`provider.streams`), fill batch b + 1 is sent while batch b's last
answers and retries are still out, and an answer's question is asked as soon as the answer
passes its own checks: only dedup (judged in order, rare) can still reject it, and then its
question is dropped unused. Questions are seeded by the answer's slot, not its place in the
batch, so none waits for the answers before it. The pool (providers/request_pool.py) keeps
--concurrency requests in flight across all of them, older batches first. Nothing about
*what* is decided changes: each batch is a FillBatch / AskBatch, which decides exactly as
the stage's rounds would whatever order answers arrive in. Fill batch b + 1 judges its
answers (dedup) only once batch b is written, since b's answers join the dedup index first;
its requests, the retries of answers that fail on their own and the questions of its
candidates go out before that. Questions are judged against the run's question index in
order too: batch b's once every batch before it is judged (a repeat is asked again). Files are
written as before, each batch's main file last
(dialogues b after answers b), so a batch file still means done and a killed run resumes
from the request cache without re-sending an answered request.

Memory stays flat: at most AHEAD fill batches are open beyond the one being judged, and a
new one opens only while fewer than two slots' worth of requests (of --per-request items each)
wait in the queue.
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor

from persona.errors import WorkspaceError
from persona.providers.base import Failure, Provider
from persona.spec import PersonaSpec
from persona.stages import Progress, StageReport, fill, no_progress, questions
from persona.stages.fill import FillBatch, FillPlan
from persona.stages.questions import AskBatch, QuestionIndex, QuestionsPlan
from persona.workspace import Workspace

AHEAD = 3
# Priority within a batch number: fill retries first (they hold back the batch and the
# questions of every answer after them), then questions, then fill's first asks.
FILL_RETRY, QUESTIONS, FILL = 0, 1, 2


def streams(provider: Provider) -> bool:
    """Whether the provider runs through one request pool (an LLM, not the Batch API)."""
    return bool(getattr(provider, "streams", False))


def fill_stage(spec: PersonaSpec, ws: Workspace, provider: Provider, *, count: int, seed: int,
               batch_size: int, force: bool = False, on_progress: Progress = no_progress
               ) -> StageReport:
    """Stage 2 alone."""
    plan = FillPlan.prepare(spec, ws, provider, count=count, seed=seed, batch_size=batch_size,
                            force=force)
    if streams(provider):
        return overlapped(spec, provider, seed, fill_plan=plan, on_fill=on_progress)[0]
    return fill.run(plan, provider, on_progress)


def questions_stage(spec: PersonaSpec, ws: Workspace, provider: Provider, *, seed: int,
                    force: bool = False, on_progress: Progress = no_progress) -> StageReport:
    """Stage 3 alone."""
    plan = QuestionsPlan.prepare(ws, provider, seed=seed, force=force)
    if streams(provider):
        return overlapped(spec, provider, seed, questions_plan=plan,
                          on_questions=on_progress)[1]
    return questions.run(spec, plan, provider, seed=seed, on_progress=on_progress)


def overlapped(spec, provider, seed: int, *, fill_plan: FillPlan | None = None,
               questions_plan: QuestionsPlan | None = None, on_fill: Progress = no_progress,
               on_questions: Progress = no_progress
               ) -> tuple[StageReport | None, StageReport | None]:
    """Run the given stages' batches overlapped; return their reports (None for a stage not
    asked for). Without `fill_plan`, the questions of every answers batch on disk are asked."""
    from persona.text import warm_lemmas

    warm_lemmas(spec.persona.language)  # slips and lemma checks of the answers to come
    run = _Stream(spec, provider, seed, fill_plan, questions_plan, on_fill, on_questions)
    pool = provider.pool
    try:
        pool.loop_run(run.go())
    finally:
        run.writer.shutdown(wait=True)  # what was handed to the writer is on disk
        pool.cache.close()
        provider.record()  # the parameters sent, for the report
    if questions_plan is not None and fill_plan is None:
        for b in range(questions_plan.n_batches):  # as the stage alone: a missing batch errs
            questions_plan.check_source(b)
    return ((fill_plan.report if fill_plan else None),
            (questions_plan.report if questions_plan else None))


class _Stream:
    def __init__(self, spec, provider, seed, fill, questions, on_fill, on_questions):
        self.spec, self.provider, self.seed = spec, provider, seed
        self.pool = provider.pool
        self.fill, self.questions = fill, questions
        self.on_fill, self.on_questions = on_fill, on_questions
        self.jobs: dict[int, FillBatch] = {}  # open fill batches
        self.usage: dict[tuple[str, int], dict] = {}
        self.judging = 0  # the fill batch whose answers are judged now
        self.opened = 0  # fill batches opened (or kept) so far
        self.filled = self.asked = 0  # items of finished batches, for the progress bars
        # questions of open fill batches, asked for candidates (absent: already on disk)
        self.early: dict[int, AskBatch] = {}
        # every question of the run; batches are judged against it in order (q_turn first)
        self.q_index = QuestionIndex(spec)  # an LLM writes: address and lead aside too
        self.q_sentences = getattr(provider, "question_sentences", None)
        self.q_jobs: dict[int, AskBatch | None] = {}  # batches to judge (None: kept on disk)
        self.q_turn = 0
        # Batch files are written (and fsynced) by one thread, in order: an fsync blocks for
        # ~10 ms, which the event loop must not. FIFO keeps "answers b before dialogues b".
        self.writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="persona-writer")
        self.writes: list[Future] = []

    async def go(self) -> None:
        if self.fill is None:
            for b in range(self.questions.n_batches):
                if self.questions.has_source(b):
                    self._ask(b)
        else:
            self._advance()
        import asyncio  # here: an offline run never needs it (~30 ms of every start)

        await self.pool.drain()
        for f in self.writes:
            await asyncio.wrap_future(f)  # re-raises a failed write
        if self.fill is not None and self.judging < self.fill.n_batches:
            raise RuntimeError("fill stalled with nothing in flight")  # a bug, not input

    def _write(self, fn, *args) -> None:
        for f in [f for f in self.writes if f.done()]:
            self.writes.remove(f)
            f.result()  # a write that failed stops the run now
        self.writes.append(self.writer.submit(fn, *args))

    # -- fill ----------------------------------------------------------------------------
    def _advance(self) -> None:
        """Keep the fill chain moving: finish, activate and open batches as far as allowed."""
        plan = self.fill
        while self.judging < plan.n_batches:
            b = self.judging
            if b not in self.jobs and b == self.opened:
                self._open(b)
            job = self.jobs.get(b)
            if job is None:  # kept from an earlier run: its answers join the index in order
                plan.keep(b)
                self.judging += 1
                self._fill_done(b)
                continue
            if not job.active:
                self._send(b, job.activate())
                self._ask_early(b, job)
            if not job.done:
                break
            answers, invalid, stats = job.result(self._usage("fill", b))
            self._write(plan.write, b, answers, invalid, stats)
            del self.jobs[b]
            self.judging += 1
            self._fill_done(b, answers, job.keys())
        while (self.opened < plan.n_batches and self.opened <= self.judging + AHEAD
               and self.pool.queued < 2 * self.pool.adaptive.limit * self.pool.per_request):
            self._open(self.opened)

    def _open(self, b: int) -> None:
        self.opened = b + 1
        if self.fill.finished(b):
            if b == self.judging:  # kept batches join the index in order, handled above
                return
            raise WorkspaceError("answers batches out of order: rerun with --force",
                                 file=str(self.fill.ws.answers))
        job = FillBatch(self.spec, self.fill.slots(b), self.fill.bank, self.fill.index,
                        self.seed, getattr(self.provider, "rephrases", False))
        self.jobs[b] = job
        if self.questions is not None and not self.questions.finished(b):
            self.early[b] = AskBatch(self.spec, self.q_index, None, self.q_sentences)
        self._send(b, job.start())

    def _fill_done(self, b: int, answers: list[dict] | None = None,
                   keys: list | None = None) -> None:
        self.filled += len(self.fill.range(b))
        self.on_fill(self.filled, self.fill.count)
        if self.questions is not None:
            self._ask(b, answers, keys)

    def _send(self, b: int, requests) -> None:
        for req in requests:
            item = self.provider.fill_item(self.spec, req, self.seed)
            item.priority = (b, FILL_RETRY if req.attempt else FILL, req.attempt, req.index)
            item.tag = (b, req)
            self.pool.submit(item, self._filled)

    def _filled(self, item, result) -> None:
        b, req = item.tag
        self._add_usage("fill", b, item.usage)
        job = self.jobs[b]
        self._send(b, job.take(req, result))
        self._ask_early(b, job)
        self._advance()

    # -- questions ---------------------------------------------------------------------------
    def _ask_early(self, b: int, job: FillBatch) -> None:
        """Ask the questions of batch b's new candidates; drop those dedup rejected."""
        candidates, dropped = job.news()
        ask = self.early.get(b)
        if ask is None:  # no questions asked in this run, or batch b's are on disk
            return
        for key, answer in candidates:
            self._send_questions(b, ask, ask.add(key, answer))
        for key in dropped:
            ask.drop(key)

    def _ask(self, b: int, answers: list[dict] | None = None, keys: list | None = None) -> None:
        """Ask batch b's questions (`answers`: the batch just handed to the writer, `keys`:
        their keys in the overlapped run), then judge what is in."""
        plan = self.questions
        ask = self.early.pop(b, None)
        if ask is not None:  # asked early: now the batch's answers are known
            ask.seal(keys)
            self.q_jobs[b] = ask
        elif plan.finished(b):
            self.q_jobs[b] = None
        else:
            job = AskBatch(self.spec, self.q_index,
                           plan.answers(b) if answers is None else answers, self.q_sentences)
            self.q_jobs[b] = job
            self._send_questions(b, job, job.start())
        self._judge_questions()

    def _judge_questions(self) -> None:
        """Judge the questions of batch q_turn, and of the next ones as each completes."""
        plan = self.questions
        while self.q_turn in self.q_jobs:
            b = self.q_turn
            job = self.q_jobs[b]
            if job is None:  # kept from an earlier run: its questions join the index in order
                for q in plan.questions(b):
                    self.q_index.add(q)
                self._write(plan.keep, b)
            else:
                self._send_questions(b, job, job.judge())
                if not job.complete:
                    return
                job.finished = True
                self._write(plan.write, b, *job.result(self._usage("questions", b)))
            del self.q_jobs[b]
            self.q_turn += 1
            self._asked(b)

    def _send_questions(self, b: int, job: AskBatch, requests) -> None:
        for req in requests:
            item = self.provider.ask_item(self.spec, req, self.seed)
            build, chain = item.build, req.tag
            # a dropped answer's asks still queued are not sent
            item.build = lambda n, build=build, chain=chain: (
                Failure("answer rejected", retry=False) if chain.cancelled else build(n))
            item.priority = (b, QUESTIONS, req.attempt, req.index)
            item.tag = (b, job, req)
            self.pool.submit(item, self._answered)

    def _answered(self, item, result) -> None:
        b, job, req = item.tag
        self._add_usage("questions", b, item.usage)
        self._send_questions(b, job, job.take(req, result))
        if b == self.q_turn:
            self._judge_questions()
        if self.fill is not None:
            self._advance()  # a freed queue may let the next fill batch open

    def _asked(self, b: int) -> None:
        self.asked += self.questions.size(b)
        self.on_questions(self.asked, self.questions.count)

    # -- usage per batch ---------------------------------------------------------------------
    def _add_usage(self, kind: str, b: int, usage: dict) -> None:
        total = self.usage.setdefault((kind, b), {})
        for k, v in usage.items():
            total[k] = total.get(k, 0) + v

    def _usage(self, kind: str, b: int) -> dict:
        """The batch's requests, cache hits, re-asks, tokens and USD (empty offline)."""
        u = self.usage.pop((kind, b), {})
        if not u:
            return {}
        return {"requests": u["requests"], "cached": u["cached"],
                "malformed_reasked": u["malformed_reasked"], "prompt_tokens": u["prompt_tokens"],
                "completion_tokens": u["completion_tokens"], "cost_usd": round(u["cost_usd"], 6)}
