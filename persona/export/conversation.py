"""Chat JSONL lines as conversations: what every export format is built from.

The reader is lenient on purpose: it only insists on what every format needs (a `messages`
list of {role, content} objects with text content and a role it can map). Whether the turns
alternate, end with the answer or hold text is each format's own rule, checked on the row the
format would write (vertex.py, sharegpt.py, alpaca.py), so a refusal names that format's rule.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from persona.io import iter_jsonl

ROLES = ("system", "user", "assistant")
# Message keys a conversation may carry. `weight`, `tool_calls`, `name` … have no place in the
# exported formats; dropping them would silently change what is trained, so they are refused.
MESSAGE_KEYS = frozenset({"role", "content"})


@dataclass(frozen=True)
class Problem:
    field: str | None  # where in the line (input field or the format's own row)
    rule: str  # the rule broken, in words


class ConversationError(Exception):
    """A line that is JSON but not a conversation any format can hold."""

    def __init__(self, problem: Problem):
        super().__init__(problem.rule)
        self.problem = problem


@dataclass(frozen=True)
class Message:
    role: str  # system | user | assistant
    content: str


Conversation = tuple[Message, ...]


def read(path: Path) -> Iterator[tuple[int, Conversation | Problem]]:
    """(line number, conversation or the Problem that keeps the line from being one)."""
    for lineno, obj in iter_jsonl(path):
        try:
            yield lineno, parse(obj)
        except ConversationError as e:
            yield lineno, e.problem


def parse(obj: dict) -> Conversation:
    messages = obj.get("messages")
    if not isinstance(messages, list) or not messages:
        raise ConversationError(Problem("messages", "needs a non-empty 'messages' list"))
    out = []
    for i, m in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(m, dict):
            raise ConversationError(Problem(where, "a message must be an object"))
        extra = sorted(set(m) - MESSAGE_KEYS)
        if extra:
            raise ConversationError(Problem(
                f"{where}.{extra[0]}",
                f"key {extra[0]!r} has no place in the exported formats (only role, content)"))
        if m.get("role") not in ROLES:
            raise ConversationError(Problem(
                f"{where}.role", f"role {m.get('role')!r} has no place in the exported formats "
                f"(only {', '.join(ROLES)})"))
        if not isinstance(m.get("content"), str):
            raise ConversationError(Problem(f"{where}.content", "content must be a string"))
        out.append(Message(m["role"], m["content"]))
    return tuple(out)


def to_messages(conv: Conversation) -> list[dict]:
    return [{"role": m.role, "content": m.content} for m in conv]


def split_system(conv: Conversation) -> tuple[str | None, Conversation]:
    """The leading system prompt (if any) and the turns after it."""
    if conv and conv[0].role == "system":
        return conv[0].content, conv[1:]
    return None, conv


def fold_system(conv: Conversation) -> Conversation:
    """The system prompt moved into the first user turn, for trainers with no place for it:
    "<system>\\n\\n<first user message>". A conversation without one is returned as is."""
    system, rest = split_system(conv)
    if system is None:
        return conv
    if rest and rest[0].role == "user":
        return (Message("user", f"{system}\n\n{rest[0].content}"), *rest[1:])
    return (Message("user", system), *rest)
