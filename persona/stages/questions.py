"""Stage 3: a journalist's question for every answer, `generated/<persona>/dialogues/`.

Dialogue batch k is made from answers batch k, so both resume together.
"""

from __future__ import annotations

from persona import rules
from persona.errors import WorkspaceError
from persona.io import iter_jsonl, write_json, write_jsonl
from persona.providers.base import Failure, Provider, QuestionRequest
from persona.spec import PersonaSpec
from persona.stages import Progress, StageReport, no_progress
from persona.stages.fill import MAX_ATTEMPTS, usage_mark, usage_since
from persona.workspace import Workspace


def run(spec: PersonaSpec, ws: Workspace, provider: Provider, *, seed: int,
        force: bool = False, on_progress: Progress = no_progress) -> StageReport:
    fill_params = Workspace.fingerprint(ws.answers)
    if not fill_params:
        raise WorkspaceError("no answers yet: run `persona fill` first", file=str(ws.answers))
    params = {"answers": fill_params, "seed": seed, "provider": provider.name}
    ws.prepare(ws.dialogues, "questions", params, force)
    count, batch_size = fill_params["count"], fill_params["batch_size"]
    n_batches = -(-count // batch_size)
    report = StageReport("questions")
    seen: set[str] = set()  # every question of the run so far: no question is asked twice
    for b in range(n_batches):
        src = Workspace.batch(ws.answers, b)
        if not src.exists():
            raise WorkspaceError("answers batch missing: run `persona fill` to finish the stage",
                                 file=str(src))
        path = Workspace.batch(ws.dialogues, b)
        if path.exists():
            for _, d in iter_jsonl(path):
                seen.add(d.get("question", ""))
                report.kept += 1
            report.batches_skipped += 1
        else:
            answers = [obj for _, obj in iter_jsonl(src)]
            dialogues, invalid, stats = ask_batch(spec, provider, answers, b * batch_size, seed,
                                                  seen)
            if invalid:
                write_jsonl(Workspace.batch(ws.invalid("questions"), b), invalid)
            write_json(Workspace.stats(ws.dialogues, b), stats)
            write_jsonl(path, dialogues)
            report.made += len(dialogues)
            report.batches_written += 1
        report.add_stats(Workspace.stats(ws.dialogues, b))
        on_progress(min(count, (b + 1) * batch_size), count)
    return report


def ask_batch(spec: PersonaSpec, provider: Provider, answers: list[dict], offset: int,
              seed: int, seen: set[str] | None = None) -> tuple[list[dict], list[dict], dict]:
    """Questions for one batch; a question already asked in the run (`seen`, updated) is
    re-asked, so the dataset never holds one question twice (and none leaks across splits)."""
    seen = set() if seen is None else seen
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
        for req, res in zip(pending, provider.ask(spec, pending, seed), strict=True):
            retryable = True
            if isinstance(res, Failure):
                problems, raw, retryable = [res.reason], res.raw, res.retry
            else:
                problems, raw = rules.check_question(res, spec), res
                if not problems and res in seen:
                    problems = ["question asked before"]
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
