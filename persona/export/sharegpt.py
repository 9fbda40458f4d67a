"""ShareGPT JSONL for LLaMA-Factory and axolotl, with its `dataset_info.json` entry.

Rules, from LLaMA-Factory's data/README.md and its `SharegptDatasetConverter`
(src/llamafactory/data/converter.py): a row holds `conversations`, a list of {from, value};
a leading {from: "system"} entry is the system prompt; after it, entries at odd positions
(1st, 3rd, …) come from "human" (or "observation"), at even positions from "gpt" (or
"function_call"), and their number is even: anything else is skipped by the loader with only a
log line, so it is refused here. The last "gpt" entry is the response the model learns. Our
own rule on top: no empty value (an empty answer would teach the model to say nothing).
axolotl reads the same rows with `type: chat_template`, `field_messages: conversations`,
`message_property_mappings: {role: from, content: value}` (its default role map knows
human/gpt/system).
"""

from __future__ import annotations

from persona.export.conversation import Conversation, Problem

NAME = "ShareGPT"
TAG = {"system": "system", "user": "human", "assistant": "gpt"}
SYSTEM_PLACE = "a leading {\"from\": \"system\"} entry of conversations"
ODD, EVEN = ("human", "observation"), ("gpt", "function_call")


def convert(conv: Conversation) -> dict:
    return {"conversations": [{"from": TAG[m.role], "value": m.content} for m in conv]}


def check(row: dict, count_tokens=None) -> list[Problem]:
    entries = row["conversations"]
    start = 1 if entries and entries[0]["from"] == "system" else 0
    problems = []
    misplaced = False
    for i, e in enumerate(entries):
        where = f"conversations[{i}]"
        if not e["value"].strip():
            problems.append(Problem(f"{where}.value", "value must not be empty"))
        pos = i - start
        if pos < 0:
            continue
        allowed = ODD if pos % 2 == 0 else EVEN
        if e["from"] not in allowed and not misplaced:  # the loader stops at the first
            misplaced = True
            problems.append(Problem(
                f"{where}.from", f"entry {pos + 1} after the system prompt must come from "
                f"{' or '.join(map(repr, allowed))}, not {e['from']!r} (LLaMA-Factory skips "
                "such a conversation)"))
    turns = len(entries) - start
    if not misplaced and (turns == 0 or turns % 2):
        problems.append(Problem("conversations", f"{turns} entries after the system prompt; "
                                "LLaMA-Factory needs human/gpt pairs (an even number, at "
                                "least 2)"))
    return problems


def check_split(split: str, examples: int, nbytes: int) -> list[Problem]:
    return []


def finish(row: dict) -> dict:
    return row


def dataset_info(file_name: str, keys: set[str]) -> dict:
    """The entry LLaMA-Factory's dataset_info.json needs for one exported file."""
    return {"file_name": file_name, "formatting": "sharegpt",
            "columns": {"messages": "conversations"},
            "tags": {"role_tag": "from", "content_tag": "value", "user_tag": "human",
                     "assistant_tag": "gpt", "system_tag": "system"}}
