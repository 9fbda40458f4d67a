"""Alpaca JSONL (instruction / input / output, + system and history) for LLaMA-Factory and
axolotl, with its `dataset_info.json` entry.

Rules, from LLaMA-Factory's data/README.md and its `AlpacaDatasetConverter`: the user prompt
is `instruction` (and `input`, joined with a newline when both are set), `output` is the
response learned, `system` the system prompt, and `history` a list of earlier
[prompt, response] pairs (whose responses are learned too). So a conversation must be
user/assistant pairs, after an optional system prompt, ending with the assistant. We write the
question to `instruction` and leave `input` empty. Our own rule on top: no empty text.
axolotl: `type: alpaca` reads instruction/input/output only (no system, no history);
`type: alpaca_w_system.load_instruct` reads `system` too. For trainers without a system field,
export with --fold-system.
"""

from __future__ import annotations

from persona.export.conversation import Conversation, Problem, split_system

NAME = "Alpaca"
SYSTEM_PLACE = "the `system` field"


def convert(conv: Conversation) -> dict:
    system, turns = split_system(conv)
    pairs = [(turns[i], turns[i + 1] if i + 1 < len(turns) else None)
             for i in range(0, len(turns), 2)]
    # A pair is (user, assistant) when the conversation fits; `check` names what does not.
    row: dict = {"instruction": pairs[-1][0].content if pairs else "", "input": "",
                 "output": pairs[-1][1].content if pairs and pairs[-1][1] else None}
    if system is not None:
        row["system"] = system
    if len(pairs) > 1:
        row["history"] = [[u.content, a.content if a else None] for u, a in pairs[:-1]]
    row["_roles"] = [m.role for m in turns]  # dropped before writing; `check` reads it
    return row


def check(row: dict, count_tokens=None) -> list[Problem]:
    problems = []
    roles = row.get("_roles", [])
    for i, role in enumerate(roles):
        want = "user" if i % 2 == 0 else "assistant"
        if role != want:
            problems.append(Problem(
                f"messages[{i}]", f"alpaca holds user/assistant pairs: turn {i + 1} after the "
                f"system prompt must be {want!r}, not {role!r}"))
    if row["output"] is None:
        problems.append(Problem("output", "output (the assistant's answer) is required: the "
                                "conversation must end with the assistant"))
    for key in ("instruction", "output", "system"):
        if isinstance(row.get(key), str) and not row[key].strip():
            problems.append(Problem(key, f"{key} must not be empty"))
    for i, (q, a) in enumerate(row.get("history", [])):
        if not (q or "").strip() or not (a or "").strip():
            problems.append(Problem(f"history[{i}]", "a history pair needs a prompt and a "
                                    "response, neither empty"))
    return problems


def finish(row: dict) -> dict:
    return {k: v for k, v in row.items() if not k.startswith("_")}


def check_split(split: str, examples: int, nbytes: int) -> list[Problem]:
    return []


def dataset_info(file_name: str, keys: set[str]) -> dict:
    """The dataset_info.json entry; `system` and `history` are named only when some row has
    them (LLaMA-Factory reads a named column on every row, and a missing one is an error)."""
    columns = {"prompt": "instruction", "query": "input", "response": "output"}
    columns.update({k: k for k in ("system", "history") if k in keys})
    return {"file_name": file_name, "columns": columns}
