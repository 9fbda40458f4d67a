"""Check a chat JSONL file the way OpenAI's fine-tuning upload would, naming each problem by line.

`validate_example` is pure (one parsed line in, findings out); `validate_file` streams a file
through it, so memory stays flat however large the file is.

Choices where OpenAI's documentation is silent:
- A blank line is a finding: the upload check wants a JSON object on every line, and a blank
  line costs nothing to remove. A final newline at the end of the file is not a blank line.
- An empty file (no non-blank line at all) is input we cannot read as a dataset: InputError,
  exit 2, like a missing or binary file. A line that is not UTF-8 is a finding on that line.
- `content` must be a string (text fine-tuning); null only on an assistant message carrying
  tool_calls or function_call. An empty or whitespace-only content is a finding.
- Roles: system, user, assistant, tool, function. `developer` is not in the fine-tuning format.
- Personal data (e-mail, phone, Czech birth number, IBAN, card, URL; checksums where they
  exist) is a finding `pii_<kind>` on its field, the value masked: OpenAI does not reject it,
  but a training file should not teach a model someone's phone number.
"""

from __future__ import annotations

import functools
import re
from collections import Counter
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from persona.checks import tokens
from persona.checks.chatjsonl import Finding, iter_lines, parse_line  # noqa: F401 - re-exported
from persona.errors import InputError
from persona.fmt import plural
from persona.io import check_readable

if TYPE_CHECKING:
    import tiktoken

    from persona.checks.prices import PriceTable

MIN_EXAMPLES = 10
EXAMPLE_KEYS = frozenset({"messages", "tools", "functions", "parallel_tool_calls"})
MESSAGE_KEYS = {
    "system": {"role", "content", "name"},
    "user": {"role", "content", "name"},
    "assistant": {"role", "content", "name", "weight", "tool_calls", "function_call", "refusal"},
    "tool": {"role", "content", "tool_call_id"},
    "function": {"role", "content", "name"},
}


@dataclass
class ValidationReport:
    path: str
    model: str
    encoding: str
    exact: bool  # False: token counts approximate (the model's encoding is unknown)
    max_tokens: int | None  # per-example limit checked; None when unknown for the model
    lines: int = 0
    examples: int = 0  # lines that parsed as a JSON object
    max_example_tokens: int = 0  # the longest example seen, in billed tokens
    findings: list[Finding] = field(default_factory=list)  # the first `max_findings`
    n_findings: int = 0
    counts: Counter = field(default_factory=Counter)  # findings per code

    @property
    def ok(self) -> bool:
        return self.n_findings == 0

    def add(self, finding: Finding, max_findings: int | None) -> None:
        self.n_findings += 1
        self.counts[finding.code] += 1
        if max_findings is None or len(self.findings) < max_findings:
            self.findings.append(finding)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["counts"] = dict(sorted(self.counts.items()))
        d["ok"] = self.ok
        d["findings_truncated"] = len(self.findings) < self.n_findings
        return d


def validate_file(
    path: Path,
    *,
    model: str = "gpt-4o-mini",
    max_findings: int | None = None,
    prices: PriceTable | None = None,
) -> ValidationReport:
    """Stream `path` through `validate_example`; InputError if it cannot be read at all."""
    from persona.checks.prices import load_prices

    path = Path(path)
    check_readable(path)
    encoding, exact, encoding_name = tokens.encoding_for_model(model)
    limits = (prices or load_prices()).lookup(model)
    report = ValidationReport(
        path=str(path),
        model=model,
        encoding=encoding_name,
        exact=exact,
        max_tokens=limits[1].max_example_tokens if limits else None,
    )
    for lineno, text in iter_lines(path):
        report.lines = lineno
        obj, problem = parse_line(text)
        if problem:
            report.add(replace(problem, line=lineno), max_findings)
            continue
        report.examples += 1
        findings, n_tokens = _validate(obj, report.max_tokens, encoding)
        for finding in findings:
            report.add(replace(finding, line=lineno), max_findings)
        report.max_example_tokens = max(report.max_example_tokens, n_tokens or 0)
    if report.lines == report.counts["blank_line"]:
        raise InputError(
            "empty file, expected chat JSONL (one JSON object per line)", file=str(path)
        )
    if report.examples < MIN_EXAMPLES:
        report.add(
            Finding(
                None,
                None,
                "too_few_examples",
                f"{plural(report.examples, 'example')}; OpenAI needs at least {MIN_EXAMPLES}",
            ),
            max_findings,
        )
    return report


def validate_example(
    obj: Any, *, max_tokens: int | None, encoding: tiktoken.Encoding
) -> list[Finding]:
    """Every problem OpenAI would reject (or silently truncate) in one parsed example."""
    return _validate(obj, max_tokens, encoding)[0]


def _validate(
    obj: Any, max_tokens: int | None, encoding: tiktoken.Encoding
) -> tuple[list[Finding], int | None]:
    """(findings, billed tokens or None): the tokens are counted once, for both uses."""
    if not isinstance(obj, dict):
        return [_f(None, "not_object", f"expected a JSON object, got {_kind(obj)}")], None
    if "messages" not in obj and set(obj) & PAIR_SIDES:  # ("prompt" alone: old completions)
        return _validate_pair(obj, max_tokens, encoding)
    findings = [
        _f(k, "unknown_key", f"unknown key {k!r}; allowed: {_names(EXAMPLE_KEYS)}")
        for k in obj
        if k not in EXAMPLE_KEYS
    ]
    messages = obj.get("messages")
    if messages is None:
        return [*findings, _f("messages", "missing_messages", "no 'messages' list")], None
    if not isinstance(messages, list):
        return [
            *findings,
            _f(
                "messages", "messages_not_list", f"'messages' must be a list, got {_kind(messages)}"
            ),
        ], None
    if not messages:
        return [*findings, _f("messages", "empty_messages", "'messages' is empty")], None
    for i, message in enumerate(messages):
        findings += _check_message(message, f"messages[{i}]")
    if not any(isinstance(m, dict) and m.get("role") == "assistant" for m in messages):
        findings.append(_f("messages", "missing_assistant", "no assistant message"))
    findings += _special_tokens(messages, "messages", encoding)
    findings += _pii(obj)
    n = tokens.example_tokens(obj, encoding)
    if max_tokens is not None and n is not None and n > max_tokens:
        findings.append(
            _f(
                "messages",
                "too_many_tokens",
                f"{n:,} tokens, over the {max_tokens:,} per example; OpenAI truncates it",
            )
        )
    return findings, n


# Preference pairs (`persona pairs`): TRL's conversational form and OpenAI's DPO file.
TRL_PAIR = ("prompt", "chosen", "rejected")
OPENAI_PAIR = ("input", "preferred_output", "non_preferred_output")
PAIR_SIDES = frozenset({"chosen", "rejected", "preferred_output", "non_preferred_output"})


def pair_parts(obj: dict) -> dict[str, Any]:
    """{field: its list of messages} of a preference pair (OpenAI's `input.messages` under
    that name); a part that is missing or not a list is absent."""
    keys = OPENAI_PAIR if set(obj) & set(OPENAI_PAIR) else TRL_PAIR
    out = {}
    for key in keys:
        value, where = obj.get(key), key
        if key == "input":
            value, where = (value.get("messages") if isinstance(value, dict) else None,
                            "input.messages")
        if isinstance(value, list):
            out[where] = value
    return out


def _validate_pair(obj: dict, max_tokens: int | None, encoding: tiktoken.Encoding
                   ) -> tuple[list[Finding], int | None]:
    """A preference pair: the prompt's messages, and exactly one assistant message on each
    side; the same message checks, special tokens and PII as a chat example."""
    keys = OPENAI_PAIR if set(obj) & set(OPENAI_PAIR) else TRL_PAIR
    findings = [_f(k, "unknown_key", f"unknown key {k!r}; allowed: {_names(frozenset(keys))}")
                for k in obj if k not in keys]
    parts = pair_parts(obj)
    names = ("input.messages", *keys[1:]) if keys == OPENAI_PAIR else keys
    for where in names:
        msgs = parts.get(where)
        if not msgs:
            findings.append(_f(where, "missing_messages", f"{where!r} must be a non-empty list "
                               "of messages"))
            continue
        for i, message in enumerate(msgs):
            findings += _check_message(message, f"{where}[{i}]")
        findings += _special_tokens(msgs, where, encoding)
        if where != names[0] and (len(msgs) != 1 or not isinstance(msgs[0], dict)
                                  or msgs[0].get("role") != "assistant"):
            findings.append(_f(where, "not_one_answer", f"{where!r} must hold one assistant "
                               "message"))
    findings += _pii(obj)
    n = None
    if all(isinstance(m, dict) for msgs in parts.values() for m in msgs) and len(parts) == 3:
        prompt = parts[names[0]]
        n = max(tokens.chat_tokens(prompt + parts[side], encoding) for side in names[1:])
        if max_tokens is not None and n > max_tokens:
            findings.append(_f(names[0], "too_many_tokens", f"{n:,} tokens, over the "
                               f"{max_tokens:,} per example; OpenAI truncates it"))
    return findings, n


PII_NAMES = {"email": "e-mail address", "phone": "phone number",
             "birth_number": "Czech birth number (rodné číslo)", "iban": "IBAN",
             "card": "payment card number", "url": "URL"}


def _pii(obj: Any) -> list[Finding]:
    """Personal data in message texts, by field, shown masked (persona/checks/pii.py)."""
    from persona.checks.chatjsonl import message_texts
    from persona.checks.pii import find_pii

    return [_f(fld, f"pii_{h.kind}", f"{PII_NAMES[h.kind]} {h.masked}; remove or replace it "
               "before upload")
            for fld, _role, text in message_texts(obj) for h in find_pii(text)]


def _check_message(message: Any, where: str) -> list[Finding]:
    if not isinstance(message, dict):
        return [_f(where, "message_not_object", f"expected an object, got {_kind(message)}")]
    role = message.get("role")
    if "role" not in message:
        return [_f(f"{where}.role", "missing_role", "no 'role'")]
    if role not in MESSAGE_KEYS:
        return [
            _f(
                f"{where}.role",
                "invalid_role",
                f"role {role!r} is not one of {_names(MESSAGE_KEYS)}",
            )
        ]
    findings = []
    for key in message:
        if key == "weight" and role != "assistant":
            findings.append(
                _f(
                    f"{where}.weight",
                    "weight_not_assistant",
                    f"'weight' is only allowed on assistant messages, not {role}",
                )
            )
        elif key not in MESSAGE_KEYS[role]:
            findings.append(
                _f(
                    f"{where}.{key}",
                    "unknown_key",
                    f"key {key!r} is not allowed on a {role} message; "
                    f"allowed: {_names(MESSAGE_KEYS[role])}",
                )
            )
    if (
        role == "assistant"
        and "weight" in message
        and (isinstance(message["weight"], bool) or message["weight"] not in (0, 1))
    ):
        findings.append(
            _f(
                f"{where}.weight",
                "invalid_weight",
                f"weight must be 0 or 1, got {message['weight']!r}",
            )
        )
    return findings + _check_content(message, role, where) + _check_fields(message, role, where)


def _check_content(message: dict, role: str, where: str) -> list[Finding]:
    calls = role == "assistant" and bool(message.get("tool_calls") or message.get("function_call"))
    content = message.get("content")
    if content is None:
        if calls:
            return []
        what = "null" if "content" in message else "missing"
        return [
            _f(
                f"{where}.content",
                "missing_content",
                f"content is {what}; only an assistant message with tool_calls may omit it",
            )
        ]
    if not isinstance(content, str):
        return [
            _f(
                f"{where}.content",
                "content_not_string",
                f"content must be a string, got {_kind(content)}",
            )
        ]
    if not content.strip() and not calls:
        return [_f(f"{where}.content", "empty_content", "content is empty")]
    return []


def _check_fields(message: dict, role: str, where: str) -> list[Finding]:
    findings = []
    if "name" in message and not isinstance(message["name"], str):
        findings.append(_f(f"{where}.name", "invalid_type", "name must be a string"))
    if "tool_calls" in message and not isinstance(message["tool_calls"], list):
        findings.append(_f(f"{where}.tool_calls", "invalid_type", "tool_calls must be a list"))
    if "function_call" in message and not isinstance(message["function_call"], dict):
        findings.append(
            _f(f"{where}.function_call", "invalid_type", "function_call must be an object")
        )
    if "refusal" in message and not isinstance(message["refusal"], str | None):
        findings.append(_f(f"{where}.refusal", "invalid_type", "refusal must be a string"))
    if role == "tool" and not isinstance(message.get("tool_call_id"), str):
        findings.append(
            _f(
                f"{where}.tool_call_id",
                "missing_tool_call_id",
                "a tool message needs a string tool_call_id",
            )
        )
    return findings


def _special_tokens(value: Any, where: str, encoding: tiktoken.Encoding) -> list[Finding]:
    """Strings (at any depth) holding text the tokenizer would read as a special token."""
    if isinstance(value, str):
        found = sorted(set(_special_re(tokens.special_token_texts(encoding)).findall(value)))
        return (
            [
                _f(
                    where,
                    "special_token",
                    f"contains {', '.join(found)}, read as a special token; OpenAI rejects it",
                )
            ]
            if found
            else []
        )
    if isinstance(value, dict):
        items = ((f"{where}.{k}", v) for k, v in value.items())
    elif isinstance(value, list):
        items = ((f"{where}[{i}]", v) for i, v in enumerate(value))
    else:
        return []
    return [f for w, v in items for f in _special_tokens(v, w, encoding)]


@functools.lru_cache(maxsize=8)
def _special_re(texts: frozenset[str]) -> re.Pattern[str]:
    return re.compile("|".join(re.escape(t) for t in sorted(texts)))


def _f(field_: str | None, code: str, message: str) -> Finding:
    return Finding(None, field_, code, message)


def _kind(value: Any) -> str:
    return {
        dict: "an object",
        list: "a list",
        str: "a string",
        bool: "a boolean",
        type(None): "null",
    }.get(type(value), "a number")


def _names(keys) -> str:
    return ", ".join(sorted(keys))
