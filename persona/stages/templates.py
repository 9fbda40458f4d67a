"""Stage 1: the template bank, `templates/<persona>.jsonl`.

An existing bank is input, not output to overwrite: a curated or edited bank is kept (and
checked against the spec); `--force` writes a new one with the provider.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from persona import rules
from persona import text as T
from persona.errors import InputError, ProviderError
from persona.io import iter_jsonl, write_jsonl
from persona.providers.base import Failure, Provider, TemplateRecord
from persona.spec import PersonaSpec
from persona.stages import StageReport
from persona.workspace import Workspace

ROUNDS = 4  # asks for templates: the first, then up to three for what was rejected


def run(spec: PersonaSpec, ws: Workspace, provider: Provider, *, seed: int,
        count: int | None = None, force: bool = False) -> StageReport:
    report = StageReport("templates")
    path = ws.templates_file
    if path.exists() and not force:
        report.kept = len(load(path, spec))
        report.notes.append(f"kept the existing bank {path}")
        return report
    want = count or spec.grammar.count
    records, rejected = [], []
    seen: set[str] = set()
    for round_no in range(ROUNDS):  # a shortfall (rejected templates) is asked for again
        before = len(records)
        for text in provider.write_templates(spec, want - len(records), seed,
                                             round_no=round_no):
            if isinstance(text, Failure):
                rejected.append({"text": text.raw, "reason": text.reason})
                report.count_reason(text.reason)
                continue
            problems = rules.check_template(text, spec)
            if not problems and text in seen:
                problems = ["duplicate template"]
            if problems:
                rejected.append({"text": text, "reason": problems[0]})
                report.count_reason(problems[0])
                continue
            seen.add(text)
            records.append(TemplateRecord(f"{spec.id}-t{len(records) + 1:04d}", text,
                                          T.categories(text), T.forms_used(text, spec)))
            if len(records) == want:
                break
        if len(records) >= want or len(records) == before:
            break
    if rejected:
        write_jsonl(ws.invalid("templates") / "templates.jsonl", rejected)
    report.rejected = len(rejected)
    if not records:
        raise ProviderError(f"the provider gave no valid template ({len(rejected)} rejected, "
                            f"reasons in {ws.invalid('templates')})", file=str(path))
    if len(records) < want:
        report.notes.append(f"the provider gave {len(records)} valid templates of {want} asked")
    write_jsonl(path, (r.to_dict() for r in records))
    report.made = len(records)
    return report


def load(path: Path, spec: PersonaSpec) -> list[TemplateRecord]:
    """Read and check a bank; any bad line is an InputError naming file, line and field."""
    out: list[TemplateRecord] = []
    ids: set[str] = set()
    for lineno, obj in iter_jsonl(path):
        for key in ("id", "text"):
            if not isinstance(obj.get(key), str) or not obj[key]:
                raise InputError("missing or not a string", file=str(path), line=lineno, field=key)
        problems = rules.check_template(obj["text"], spec)
        if problems:
            raise InputError(problems[0], file=str(path), line=lineno, field="text")
        if obj["id"] in ids:
            raise InputError(f"duplicate id {obj['id']!r}", file=str(path), line=lineno,
                             field="id")
        ids.add(obj["id"])
        out.append(TemplateRecord(obj["id"], obj["text"], T.categories(obj["text"]),
                                  T.forms_used(obj["text"], spec)))
    if not out:
        raise InputError("template bank is empty", file=str(path))
    return out


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]
