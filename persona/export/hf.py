"""A Hugging Face dataset folder: `data/<split>.parquet` + a README card whose YAML header
maps the splits, so `datasets.load_dataset(folder)` gives train / validation / test.

Each row is {"messages": [{"role", "content"}, …]}, the conversational format TRL's
SFTTrainer and most chat templates take; the system prompt stays a "system" message. Rules
(ours, what a chat template needs): a system message only first, the turns after it
alternate user/assistant starting with the user and ending with the assistant, no empty text.
"""

from __future__ import annotations

from persona.export.conversation import Conversation, Problem, to_messages

NAME = "HF"
SYSTEM_PLACE = "a leading \"system\" message"
SPLIT_NAMES = {"train": "train", "val": "validation", "test": "test"}


def convert(conv: Conversation) -> dict:
    return {"messages": to_messages(conv)}


def check(row: dict, count_tokens=None) -> list[Problem]:
    messages = row["messages"]
    start = 1 if messages and messages[0]["role"] == "system" else 0
    problems = [Problem(f"messages[{i}].content", "content must not be empty")
                for i, m in enumerate(messages) if not m["content"].strip()]
    for i, m in enumerate(messages[start:], start):
        want = "user" if (i - start) % 2 == 0 else "assistant"
        if m["role"] != want:
            problems.append(Problem(f"messages[{i}].role", f"turns after the system prompt "
                                    f"alternate user/assistant: expected {want!r}, not "
                                    f"{m['role']!r}"))
    if messages[-1]["role"] != "assistant":
        problems.append(Problem(f"messages[{len(messages) - 1}]",
                                "the last message must be the assistant's answer"))
    return problems


def check_split(split: str, examples: int, nbytes: int) -> list[Problem]:
    return []


def finish(row: dict) -> dict:
    return row


def card(name: str, splits: dict[str, int], dataset_card: str | None) -> str:
    """README.md: the YAML header `datasets` reads the splits from, then the dataset card."""
    lines = ["---", "configs:", "- config_name: default", "  data_files:"]
    for split in splits:
        lines += [f"  - split: {SPLIT_NAMES[split]}",
                  f"    path: data/{SPLIT_NAMES[split]}.parquet"]
    lines += ["task_categories:", "- text-generation", "---", ""]
    body = dataset_card or f"# {name}\n"
    counts = ", ".join(f"{SPLIT_NAMES[s]} {n:,}" for s, n in splits.items())
    body += (f"\n## Files\n\nExported by `persona export --to hf`: {counts} conversations in "
             "`data/*.parquet`, one `messages` column (a list of {role, content}).\n\n"
             "```python\nfrom datasets import load_dataset\n"
             "ds = load_dataset(\"path/to/this/folder\")\n```\n")
    return "\n".join(lines) + "\n" + body
