"""The one chat-JSONL reader of the checks: lines, parse problems, examples and their texts.

validate, cost, moderate and the PII scan all read files through here, so a line means the
same thing to each of them (1-based, blank lines counted) and none of them imports another
check for it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from persona.errors import InputError
from persona.io import check_readable


@dataclass(frozen=True)
class Finding:
    line: int | None  # 1-based line in the file; None for the file as a whole
    field: str | None  # e.g. "messages[2].content"
    code: str  # stable, machine-readable: "invalid_json", "missing_assistant", …
    message: str


def iter_lines(path: Path) -> Iterator[tuple[int, str | None]]:
    """(line number, text) per line, decoded one line at a time; text None if not UTF-8."""
    with open(path, "rb") as fh:
        for lineno, raw in enumerate(fh, 1):
            try:
                yield lineno, raw.decode("utf-8")
            except UnicodeDecodeError:
                yield lineno, None


def parse_line(text: str | None) -> tuple[Any, Finding | None]:
    """The JSON value on one line, or a finding (line number left for the caller)."""
    if text is None:
        return None, Finding(None, None, "not_utf8", "line is not valid UTF-8")
    if not text.strip():
        return None, Finding(
            None, None, "blank_line", "blank line; OpenAI expects a JSON object on every line"
        )
    try:
        return json.loads(text), None
    except json.JSONDecodeError as e:
        return None, Finding(
            None, None, "invalid_json", f"invalid JSON: {e.msg} (column {e.colno})"
        )


def message_texts(obj: Any) -> Iterator[tuple[str, str, str]]:
    """(field, role, text) of every message content that is a non-empty string."""
    if not isinstance(obj, dict):
        return
    if isinstance(obj.get("messages"), list):
        parts = {"messages": obj["messages"]}
    else:  # a preference pair (`persona pairs`): its prompt and both answers
        from persona.checks.validate import PAIR_SIDES, pair_parts

        parts = pair_parts(obj) if set(obj) & PAIR_SIDES else {}
    for where, messages in parts.items():
        for i, m in enumerate(messages):
            if isinstance(m, dict) and isinstance(m.get("content"), str) and \
                    m["content"].strip():
                yield f"{where}[{i}].content", str(m.get("role")), m["content"]


def field_messages(obj: dict, fld: str) -> tuple[list, int]:
    """The message list and index a `message_texts` field names ("messages[2].content",
    "chosen[0].content", "input.messages[1].content")."""
    where, _, rest = fld.partition("[")
    i = int(rest.split("]")[0])
    if where == "messages":
        return obj["messages"], i
    from persona.checks.validate import pair_parts

    return pair_parts(obj)[where], i


def is_pair(obj: Any) -> bool:
    """A preference pair line (`persona pairs`: TRL's or OpenAI's form) with message lists."""
    from persona.checks.validate import PAIR_SIDES, pair_parts

    if not isinstance(obj, dict) or not set(obj) & PAIR_SIDES:
        return False
    parts = pair_parts(obj)
    return bool(parts) and all(isinstance(m, dict) for ms in parts.values() for m in ms)


@dataclass(frozen=True)
class Example:
    line: int  # 1-based line in the file
    obj: dict  # the parsed example


def read_examples(path: Path) -> Iterator[Example]:
    """Every chat example of `path` (blank lines skipped); a line that is not one raises
    InputError naming it, and a file with none raises InputError (empty)."""
    path = Path(path)
    check_readable(path)
    seen = False
    for lineno, text in iter_lines(path):
        obj, problem = parse_line(text)
        if problem is not None and problem.code == "blank_line":
            continue
        if problem is not None:
            raise InputError(problem.message + "; run `persona validate` for every problem",
                             file=str(path), line=lineno)
        messages = obj.get("messages") if isinstance(obj, dict) else None
        if (not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages)) \
                and not is_pair(obj):
            raise InputError("not a chat example (no list of message objects) nor a "
                             "preference pair", file=str(path), line=lineno, field="messages")
        seen = True
        yield Example(lineno, obj)
    if not seen:
        raise InputError("empty file, expected chat JSONL (one JSON object per line)",
                         file=str(path))
