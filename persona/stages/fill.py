"""Stage 2: answers, in batches of `batch_size`, under `generated/<persona>/answers/`.

The stage decides per slot which template, which style and whether to slip; the provider only
writes. Styles are apportioned exactly to the mix over the whole run, slips are placed on
exactly round(rate * count) slots. Each answer is checked (rules.check_answer) and compared
with every answer kept so far (dedup); a rejected slot is retried with a new attempt number,
what still fails goes to `invalid/fill/` with its reason.
"""

from __future__ import annotations

import random
from collections.abc import Iterator

from persona import rules
from persona.dedup import DedupIndex
from persona.errors import WorkspaceError
from persona.io import iter_jsonl, write_json, write_jsonl
from persona.providers.base import Failure, FillRequest, Provider, TemplateRecord
from persona.spec import PersonaSpec
from persona.stages import Progress, StageReport, no_progress
from persona.stages import templates as templates_stage
from persona.workspace import Workspace

MAX_ATTEMPTS = 8


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


def run(spec: PersonaSpec, ws: Workspace, provider: Provider, *, count: int, seed: int,
        batch_size: int = 300, force: bool = False, on_progress: Progress = no_progress
        ) -> StageReport:
    if not ws.templates_file.exists():
        raise WorkspaceError("no template bank: run `persona templates` first",
                             file=str(ws.templates_file))
    bank = templates_stage.load(ws.templates_file, spec)
    params = {"persona": spec.fingerprint(), "templates": templates_stage.digest(
        ws.templates_file), "count": count, "seed": seed, "batch_size": batch_size,
        "provider": provider.name}
    ws.prepare(ws.answers, "fill", params, force)
    styles = style_schedule(spec.style.mix, count, seed)
    slips = slip_schedule(spec.style.slip_rate, count, seed)
    index = DedupIndex(spec.persona.signature)
    report = StageReport("fill")
    n_batches = -(-count // batch_size)
    done = 0
    for b in range(n_batches):
        path = Workspace.batch(ws.answers, b)
        start, stop = b * batch_size, min(count, (b + 1) * batch_size)
        if path.exists():
            kept = [obj for _, obj in iter_jsonl(path)]
            for obj in kept:
                index.offer(obj["text"])
            report.add_stats(Workspace.stats(ws.answers, b))
            report.kept += len(kept)
            report.batches_skipped += 1
        else:
            slots = [FillRequest(i, f"{spec.id}-a{i + 1:06d}", bank[t], styles[i], i in slips)
                     for i, t in zip(range(start, stop),
                                     template_schedule(len(bank), start, stop, seed), strict=True)]
            answers, invalid, stats = fill_batch(spec, provider, slots, bank, index, seed)
            if invalid:
                write_jsonl(Workspace.batch(ws.invalid("fill"), b), invalid)
            write_json(Workspace.stats(ws.answers, b), stats)
            write_jsonl(path, answers)  # last: its existence marks the batch done
            report.add_stats(Workspace.stats(ws.answers, b))
            report.made += len(answers)
            report.batches_written += 1
        done += stop - start
        on_progress(done, count)
    return report


def fill_batch(spec: PersonaSpec, provider: Provider, slots: list[FillRequest],
               bank: list[TemplateRecord], index: DedupIndex, seed: int
               ) -> tuple[list[dict], list[dict], dict]:
    """Fill, check and dedup one batch; retry rejected slots with a fresh attempt (and,
    from the second retry on, another template, since some templates fit no slip)."""
    accepted: dict[int, dict] = {}
    last_reason: dict[int, tuple[str, str]] = {}
    stats = {"retried": 0, "rejected": 0, "reasons": {}, "usage": {}}
    mark = usage_mark(provider)
    pending, failed = slots, []
    for attempt in range(MAX_ATTEMPTS):
        if not pending:
            break
        results = provider.fill(spec, pending, seed)
        retry = []
        for req, res in zip(pending, results, strict=True):
            reason, raw = _judge(spec, req, res, index)
            if reason is None:
                accepted[req.index] = _record(req, res)
                continue
            stats["reasons"][reason] = stats["reasons"].get(reason, 0) + 1
            last_reason[req.index] = (reason, raw)
            if attempt + 1 == MAX_ATTEMPTS or (isinstance(res, Failure) and not res.retry):
                failed.append(req)
            else:
                stats["retried"] += 1
                template = req.template
                if attempt >= 1:
                    rng = random.Random(f"{seed}:retry-template:{req.index}:{attempt}")
                    template = rng.choice(bank)
                retry.append(FillRequest(req.index, req.id, template, req.style, req.slip,
                                         attempt + 1))
        pending = retry
    invalid = []
    for req in sorted(failed, key=lambda r: r.index):
        reason, raw = last_reason[req.index]
        invalid.append({"id": req.id, "template_id": req.template.id, "style": req.style,
                        "slip": req.slip, "reason": reason, "output": raw})
    stats["rejected"] = len(invalid)
    stats["usage"] = usage_since(provider, mark)
    return [accepted[i] for i in sorted(accepted)], invalid, stats


def usage_mark(provider: Provider) -> dict | None:
    """The LLM provider's running totals (None for a provider without usage, e.g. offline)."""
    stats = getattr(provider, "stats", None)
    if stats is None:
        return None
    return {"requests": stats["requests"], "cached": stats["cached"],
            "malformed_reasked": stats.get("malformed_reasked", 0),
            "prompt_tokens": stats["prompt_tokens"],
            "completion_tokens": stats["completion_tokens"], "cost_usd": provider.spent}


def usage_since(provider: Provider, mark: dict | None) -> dict:
    """What one batch used: requests answered by the server and from the cache, tokens, USD."""
    if mark is None:
        return {}
    now = usage_mark(provider)
    out = {k: now[k] - mark[k] for k in mark}
    out["cost_usd"] = round(out["cost_usd"], 6)
    return out


def _judge(spec: PersonaSpec, req: FillRequest, res, index: DedupIndex):
    if isinstance(res, Failure):
        return res.reason, res.raw
    problems = rules.check_answer(res.text, spec, req.style)
    if req.slip and not res.slip:
        problems.append("a slip was asked for and none was made")
    if problems:
        return problems[0], res.text
    verdict, token = index.check(res.text)
    if verdict.kind is not None:
        return f"{verdict.kind} duplicate", res.text
    index.add(token)
    return None, ""


def _record(req: FillRequest, res) -> dict:
    return {"id": req.id, "template_id": req.template.id, "style": req.style,
            "values": res.values, "slip": res.slip, "text": res.text}

