"""The LLM prompts: Markdown files in persona/prompts/, one per stage, rendered with the spec.

A prompt file has a `# System` and a `# User` section. `{name}` is a variable filled here;
`{{` and `}}` are literal braces (JSON examples, placeholder syntax). The per-item task goes
into the user message as a fenced JSON block, so the model (and the test server) reads it as
data and the system message stays the same for every request of a stage.

A workspace may override them: `use_folder(ws/"prompts")` (the CLI does it for every
command) makes `prompts/<stage>.md` there, when it exists, replace the built-in file. The
LLM request cache keys on the rendered messages, so an edited prompt asks anew.
"""

from __future__ import annotations

import functools
import json
import re
from importlib import resources
from pathlib import Path

from persona.errors import InputError
from persona.spec import PersonaSpec, per_spec

# fill: the writing task (--fill write), fill_strict: word-for-word (--fill strict),
# fill_rephrase: a slot's answer again with a slip trigger word (no system section: fill's);
# rewrite: moderate --fix regenerate; judge_*: the bench's LLM judge
STAGES = ("templates", "fill", "fill_strict", "fill_rephrase", "questions", "rewrite",
          "judge_pair", "judge_score")
# A stage whose file has no `# System` section uses its base stage's (the same system
# message, so a provider's prefix cache serves both).
BASE = {"fill_rephrase": "fill"}
# Language names for the prompts (the spec holds ISO 639-1 codes).
LANGUAGES = {"cs": "Czech", "sk": "Slovak", "en": "English", "de": "German", "pl": "Polish",
             "fr": "French", "es": "Spanish", "it": "Italian", "hu": "Hungarian"}
_VAR_RE = re.compile(r"\{\{|\}\}|\{([a-z_]+)\}")
_SECTION_RE = re.compile(r"^# (System|User)\s*$", re.M)


_folder: Path | None = None


def use_folder(folder: Path | None) -> None:
    """Let `folder/<stage>.md` replace the built-in prompt of a stage (None: built-ins only)."""
    global _folder
    _folder = Path(folder) if folder is not None else None


@functools.cache
def builtin_text(stage: str) -> str:
    if stage not in STAGES:
        raise ValueError(f"no prompt for stage {stage!r}")
    return (resources.files("persona") / "prompts" / f"{stage}.md").read_text(encoding="utf-8")


def source(stage: str) -> Path | None:
    """The workspace file that replaces the stage's built-in prompt, if there is one."""
    if _folder is not None and (_folder / f"{stage}.md").is_file():
        return _folder / f"{stage}.md"
    return None


def load(stage: str) -> dict[str, str]:
    """{"system": ..., "user": ...} of a stage's prompt (the workspace's, else built-in)."""
    path = source(stage)
    if path is None:
        out = _parse(builtin_text(stage), f"<built-in {stage}.md>", stage in BASE)
    else:
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise InputError(f"cannot read the prompt: {e}", file=str(path)) from None
        out = _parse(text, str(path), stage in BASE)
    if "system" not in out:
        out = {"system": load(BASE[stage])["system"], **out}
    return out


@functools.lru_cache(maxsize=16)
def _parse(text: str, where: str, user_only: bool = False) -> dict[str, str]:
    parts = _SECTION_RE.split(text)
    # parts: [preamble, "System", body, "User", body]
    out = {parts[i].lower(): parts[i + 1].strip() for i in range(1, len(parts), 2)}
    if set(out) != {"system", "user"} and not (user_only and set(out) == {"user"}):
        need = "a '# User' section" if user_only else "a '# System' and a '# User' section"
        raise InputError(f"a prompt needs {need}", file=where)
    return out


def digest(stage: str) -> str:
    """A short sha256 of the stage's prompt as used (the workspace's, else built-in)."""
    import hashlib

    prompt = load(stage)
    return hashlib.sha256(f"{prompt['system']}\n---\n{prompt['user']}".encode()).hexdigest()[:16]


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
    """The prompt variables a spec gives (the same for every request of a run)."""
    return dict(_spec_variables(spec))


@per_spec
def _spec_variables(spec: PersonaSpec) -> dict[str, str]:
    p = spec.persona
    lines = [f"- {name}: {ph.description} (forms: {', '.join(ph.forms)})"
             for name, ph in spec.placeholders.items()]
    journalist = spec.journalist.description
    if spec.journalist.labels:
        journalist += (" The journalist never uses the persona's own labels (words containing: "
                       + ", ".join(spec.journalist.labels) + ").")
    return {"persona_name": p.name, "persona_description": p.description or p.name,
            "language": p.language, "language_name": LANGUAGES.get(p.language, p.language),
            "signature": p.signature, "agreement": "",
            "journalist": journalist, "placeholders": "\n".join(lines),
            "styles": "\n".join(f"- {key}: {style.description}"
                                for key, style in spec.styles.items())}


def messages(stage: str, spec: PersonaSpec, task: dict | str, **extra: str) -> list[dict]:
    """The chat messages of one request: the stage's prompt rendered with spec and task."""
    prompt = load(stage)
    variables = {**spec_variables(spec), **extra,
                 "task": task if isinstance(task, str)  # a grouped task, rendered by its stage
                 else json.dumps(task, ensure_ascii=False, indent=1)}
    try:
        return [{"role": "system", "content": render(prompt["system"], variables)},
                {"role": "user", "content": render(prompt["user"], variables)}]
    except KeyError as e:
        where = source(stage)
        raise InputError(f"{e.args[0]} (known: {', '.join(sorted(variables))})",
                         file=str(where) if where else f"<built-in {stage}.md>") from None
