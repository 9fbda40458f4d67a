"""Moderation before upload: which examples a moderator flags, in which categories, how badly.

`moderate_file` reads any chat JSONL through the shared reader, sends every distinct message
text once (PII masked first: no personal data leaves the machine), maps the verdicts back to
lines and fields, and writes `moderation/` beside the input: `clean.jsonl` (examples nothing
flagged, PII masked), `flagged.jsonl` (each flagged example with its categories, scores,
provider and fields; the example itself, PII masked) and `report.json`. `screen` is the
library entry for other commands (upload): a file or a final/ folder in, a summary out.

Which messages: every message with text (system, user, assistant). OpenAI's upload check
judges the training file, not only the answers; the system prompt is identical across a
dataset, so being checked once (identical texts are sent once) costs nothing.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from persona.checks.chatjsonl import read_examples
from persona.checks.pii import find_pii, mask_text
from persona.errors import InputError
from persona.fmt import plural
from persona.io import atomic_writer, dumps, write_json

WORST_SHOWN = 3
SNIPPET = 160
# Our own bands for the plain verdict. OpenAI publishes no threshold for blocking a training
# file; its error only says "too many examples that violate OpenAI's usage policies".
HIGH_SHARE = 0.01


@dataclass
class LineResult:
    line: int
    categories: list[str]  # flagged categories (over the threshold)
    scores: dict[str, float]  # highest score per category over the example's messages
    fields: dict[str, list[str]]  # field -> its flagged categories
    evidence: dict[str, list[str]] = field(default_factory=dict)


@dataclass
class PiiFinding:
    line: int
    field: str
    kind: str
    masked: str


@dataclass
class ModerationOutcome:
    path: str
    total: int  # examples checked
    flagged: int  # examples with at least one flagged category
    by_category: dict[str, int]
    provider: str
    model: str
    heuristic: bool  # True: a word-list screen, not a moderation verdict
    threshold: float | None  # None: the moderator's own flags
    verdict: str  # one line
    advice: list[str] = field(default_factory=list)
    texts_checked: int = 0  # distinct message texts sent to the moderator
    pii: int = 0  # PII values found
    pii_by_kind: dict[str, int] = field(default_factory=dict)
    worst: dict[str, list[dict]] = field(default_factory=dict)  # category -> top examples
    out_dir: str = ""
    flagged_lines: list[int] = field(default_factory=list)
    fix: dict | None = None  # what --fix did, when it ran

    @property
    def ok(self) -> bool:
        return self.flagged == 0 and self.pii == 0

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["ok"] = self.ok
        return d


def screen(path: Path, *, provider: str | None = None, base_url: str | None = None,
           model: str | None = None, threshold: float | None = None) -> ModerationOutcome:
    """Moderate a chat JSONL file or a final/<persona>/ folder and write its moderation/
    outputs; the summary comes back. `provider` None: OpenAI's endpoint when a key or base
    URL is set, else the offline screen."""
    src, out_dir = input_and_outputs(Path(path))
    moderator = open_moderator(provider, base_url=base_url, model=model,
                               cache_dir=out_dir / "cache")
    try:
        return moderate_file(src, moderator, out_dir, threshold=threshold)
    finally:
        close(moderator)


def open_moderator(provider: str | None, *, base_url: str | None = None,
                   model: str | None = None, cache_dir: Path | None = None, **options):
    """The moderator `provider` names (None: auto), set up with the LLM options it takes."""
    from persona.moderators import make_moderator, resolve

    name, _ = resolve(provider, base_url, options.get("api_key_env") or "OPENAI_API_KEY")
    if name == "offline":
        return make_moderator(name)
    options = {k: v for k, v in options.items() if v is not None}
    return make_moderator(name, base_url=base_url, model=model, cache_dir=cache_dir, **options)


def close(moderator) -> None:
    if hasattr(moderator, "close"):
        moderator.close()


def input_and_outputs(path: Path) -> tuple[Path, Path]:
    """(the file to read, the moderation/ folder): a final/ folder is read as its all.jsonl."""
    if path.is_dir():
        src = path / "all.jsonl"
        if not src.is_file():
            raise InputError("a folder to moderate must hold all.jsonl (a final/<persona>/ "
                             "folder); pass a .jsonl file otherwise", file=str(path))
        return src, path / "moderation"
    return path, path.parent / "moderation"


@dataclass
class Screened:
    """Everything one pass over a file found, before it is written."""

    examples: list[tuple[int, dict]]  # (line, example) in file order
    results: dict[int, LineResult]  # line -> result, flagged lines only
    pii: list[PiiFinding]
    texts_checked: int


def check_examples(examples: list[tuple[int, dict]], moderator, threshold: float | None,
                   on_progress: Callable[[int, int], None] | None = None) -> Screened:
    """Moderate every message text of `examples` (each distinct masked text once)."""
    from persona.checks.chatjsonl import message_texts

    index: dict[str, int] = {}
    where: list[tuple[int, str, int]] = []  # (line, field, text index)
    pii: list[PiiFinding] = []
    for line, obj in examples:
        for fld, _role, text in message_texts(obj):
            hits = find_pii(text)
            pii += [PiiFinding(line, fld, h.kind, h.masked) for h in hits]
            masked = mask_text(text, hits) if hits else text
            where.append((line, fld, index.setdefault(masked, len(index))))
    verdicts = moderator.check(list(index), on_progress) if index else []
    results: dict[int, LineResult] = {}
    for line, fld, i in where:
        v = verdicts[i]
        cats = v.over(threshold)
        if not cats:
            continue
        r = results.setdefault(line, LineResult(line, [], {}, {}))
        r.fields[fld] = cats
        r.categories = sorted(set(r.categories) | set(cats))
        for c, s in v.scores.items():
            r.scores[c] = max(r.scores.get(c, 0.0), s)
        for c, ev in v.evidence.items():
            r.evidence[c] = sorted(set(r.evidence.get(c, [])) | set(ev))
    return Screened(examples, results, pii, len(index))


def moderate_file(path: Path, moderator, out_dir: Path, *, threshold: float | None = None,
                  on_progress: Callable[[int, int], None] | None = None) -> ModerationOutcome:
    """Moderate `path` and write clean.jsonl, flagged.jsonl and report.json into `out_dir`."""
    return moderate_and_keep(path, moderator, out_dir, threshold=threshold,
                             on_progress=on_progress)[0]


def moderate_and_keep(path: Path, moderator, out_dir: Path, *, threshold: float | None = None,
                      on_progress: Callable[[int, int], None] | None = None
                      ) -> tuple[ModerationOutcome, Screened]:
    """moderate_file, also giving back what was read and found (for --fix)."""
    examples = [(e.line, e.obj) for e in read_examples(path)]
    screened = check_examples(examples, moderator, threshold, on_progress)
    outcome = summarize(path, screened, moderator, threshold, out_dir)
    write_outputs(screened, outcome, out_dir)
    return outcome, screened


def summarize(path: Path, s: Screened, moderator, threshold: float | None,
              out_dir: Path) -> ModerationOutcome:
    by_category = Counter(c for r in s.results.values() for c in r.categories)
    outcome = ModerationOutcome(
        path=str(path), total=len(s.examples), flagged=len(s.results),
        by_category=dict(sorted(by_category.items())), provider=moderator.name,
        model=moderator.model, heuristic=moderator.heuristic, threshold=threshold,
        verdict="", texts_checked=s.texts_checked, pii=len(s.pii),
        pii_by_kind=dict(sorted(Counter(p.kind for p in s.pii).items())),
        worst=_worst(s), out_dir=str(out_dir), flagged_lines=sorted(s.results))
    outcome.verdict, outcome.advice = verdict(outcome)
    return outcome


def _worst(s: Screened) -> dict[str, list[dict]]:
    objs = dict(s.examples)
    out: dict[str, list[LineResult]] = {}
    for r in s.results.values():
        for c in r.categories:
            out.setdefault(c, []).append(r)
    shown = {}
    for c, rs in sorted(out.items()):
        rs.sort(key=lambda r: (-r.scores.get(c, 0.0), r.line))
        shown[c] = []
        for r in rs[:WORST_SHOWN]:
            fld = next(f for f, cs in r.fields.items() if c in cs)
            ev = r.evidence.get(c, [])
            shown[c].append({"line": r.line, "score": r.scores.get(c, 0.0), "field": fld,
                             "text": _snippet(objs[r.line], fld, ev), "evidence": ev})
    return shown


def _snippet(obj: dict, fld: str, evidence: list[str]) -> str:
    """The flagged text (PII masked) around the first evidence word, else its end: a planted
    or appended harm tends to sit late in an answer, after the persona's opening."""
    from persona.checks.chatjsonl import field_messages

    messages, i = field_messages(obj, fld)
    text = mask_text(messages[i]["content"]).replace("\n", " ")
    if len(text) <= SNIPPET:
        return text
    lower = text.lower()
    hits = [lower.find(e.rstrip("*").split()[0]) for e in evidence if e.strip()]
    hits = [h for h in hits if h >= 0]
    start = max(0, min(hits) - SNIPPET // 3) if hits else len(text) - SNIPPET
    piece = text[start:start + SNIPPET]
    return ("…" if start else "") + piece + ("…" if start + SNIPPET < len(text) else "")


def verdict(o: ModerationOutcome) -> tuple[str, list[str]]:
    """A plain one-line verdict on the upload, and what to do."""
    who = ("the offline word-list screen (a heuristic, not a moderation verdict)"
           if o.heuristic else f"{o.provider} ({o.model})")
    share = o.flagged / o.total if o.total else 0.0
    known = ("OpenAI publishes no threshold: a training file is blocked when it holds "
             "\"too many examples that violate OpenAI's usage policies\"; the bands here "
             f"(any flagged: possible, ≥ {HIGH_SHARE:.0%}: likely) are persona's own.")
    advice = [known]
    if o.flagged == 0:
        line = f"no example flagged by {who}: blocking unlikely on this evidence"
        if o.heuristic:
            advice.append("The offline screen only knows its word lists; check with "
                          "`--provider openai` (free, needs a key) before uploading.")
    else:
        level = "likely" if share >= HIGH_SHARE else "possible"
        line = (f"{o.flagged} of {plural(o.total, 'example')} ({share:.2%}) flagged by {who}: "
                f"blocking {level}")
        advice.append("Fix before uploading: `--fix regenerate` rewrites the flagged answers "
                      "and checks them again, `--fix drop` removes them; the originals stay "
                      "in moderation/flagged.jsonl.")
    if o.pii:
        line += f"; {o.pii} PII value(s) found (masked in every output)"
        advice.append("PII: remove or replace the values listed by line and field in "
                      "report.json (clean.jsonl holds them masked).")
    return line, advice


def write_outputs(s: Screened, outcome: ModerationOutcome, out_dir: Path) -> None:
    """clean.jsonl and flagged.jsonl (together: every example, PII masked) and report.json."""
    with (atomic_writer(out_dir / "clean.jsonl") as clean,
          atomic_writer(out_dir / "flagged.jsonl") as flagged):
        for line, obj in s.examples:
            safe = mask_example(obj)
            r = s.results.get(line)
            if r is None:
                clean.write(dumps(safe) + "\n")
            else:
                flagged.write(dumps({"line": line, "categories": r.categories,
                                     "scores": r.scores, "fields": r.fields,
                                     "evidence": r.evidence, "provider": outcome.provider,
                                     "model": outcome.model, "heuristic": outcome.heuristic,
                                     "example": safe}) + "\n")
    report = outcome.to_dict()
    report["pii_findings"] = [asdict(p) for p in s.pii]
    write_json(out_dir / "report.json", report)


def mask_example(obj: dict) -> dict:
    """The example (or preference pair) with every PII value in its message texts masked (a
    copy if changed)."""
    from persona.checks.chatjsonl import field_messages, message_texts

    out = None
    for fld, _role, text in message_texts(obj):
        if find_pii(text):
            out = out or json.loads(json.dumps(obj))
            messages, i = field_messages(out, fld)
            messages[i]["content"] = mask_text(text)
    return out or obj
