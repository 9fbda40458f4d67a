"""The LLM prompts: Markdown files in persona/prompts/, one per stage, rendered with the spec.

A prompt file has a `# System` and a `# User` section. `{name}` is a variable filled here;
`{{` and `}}` are literal braces (JSON examples, placeholder syntax). The per-item task goes
into the user message as a fenced JSON block, so the model (and the test server) reads it as
data and the system message stays the same for every request of a stage.
"""

from __future__ import annotations

import functools
import json
import re
from importlib import resources

from persona.spec import PersonaSpec

STAGES = ("templates", "fill", "questions", "judge_pair", "judge_score")
_VAR_RE = re.compile(r"\{\{|\}\}|\{([a-z_]+)\}")
_SECTION_RE = re.compile(r"^# (System|User)\s*$", re.M)


@functools.cache
def load(stage: str) -> dict[str, str]:
    """{"system": ..., "user": ...} of a stage's prompt file, unrendered."""
    if stage not in STAGES:
        raise ValueError(f"no prompt for stage {stage!r}")
    text = (resources.files("persona") / "prompts" / f"{stage}.md").read_text(encoding="utf-8")
    parts = _SECTION_RE.split(text)
    # parts: [preamble, "System", body, "User", body]
    return {parts[i].lower(): parts[i + 1].strip() for i in range(1, len(parts), 2)}


def render(template: str, variables: dict[str, str]) -> str:
    def sub(m: re.Match) -> str:
        if m.group(0) in ("{{", "}}"):
            return m.group(0)[0]
        name = m.group(1)
        if name not in variables:
            raise KeyError(f"prompt variable {{{name}}} has no value")
        return str(variables[name])

    return _VAR_RE.sub(sub, template)


def spec_variables(spec: PersonaSpec) -> dict[str, str]:
    p = spec.persona
    lines = [f"- {name}: {ph.description} (forms: {', '.join(ph.forms)})"
             for name, ph in spec.placeholders.items()]
    return {"persona_name": p.name, "persona_description": p.description or p.name,
            "language": p.language, "signature": p.signature,
            "journalist": spec.journalist.description, "placeholders": "\n".join(lines)}


def messages(stage: str, spec: PersonaSpec, task: dict, **extra: str) -> list[dict]:
    """The chat messages of one request: the stage's prompt rendered with spec and task."""
    prompt = load(stage)
    variables = {**spec_variables(spec), **extra,
                 "task": json.dumps(task, ensure_ascii=False, indent=1)}
    return [{"role": "system", "content": render(prompt["system"], variables)},
            {"role": "user", "content": render(prompt["user"], variables)}]
