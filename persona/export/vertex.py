"""Vertex AI Gemini supervised tuning JSONL: `systemInstruction` + `contents` of `parts`.

The rules, from Google's "Prepare supervised fine-tuning data for Gemini models" and "About
supervised fine-tuning for Gemini models" (Vertex AI docs, read 2026-11-29):
- one JSON object per line; `contents` required; each content has a `role` and `parts`;
- roles are `user` and `model` (not "assistant"); the conversation starts with the user, the
  roles alternate, and the last turn is the model's answer (the text the tuning learns);
- the system prompt goes in the optional `systemInstruction` (its `role` is ignored);
- a part here holds `text`; an empty part is refused;
- limits (Gemini 2.5 Flash / Flash-Lite, the strictest current table): 131,072 input + output
  tokens per training example, at most 5,000 validation examples, a training file of at most
  1 GB and at most 1M text examples.
Gemini's tokenizer is not available offline; tokens are counted with o200k_base, an
approximation (Czech text is a few percent off either way), far from the limit for a persona.
"""

from __future__ import annotations

from persona.export.conversation import Conversation, Problem, split_system

NAME = "Vertex"
MAX_EXAMPLE_TOKENS = 131_072
MAX_VALIDATION_EXAMPLES = 5_000
MAX_TRAIN_EXAMPLES = 1_000_000
MAX_TRAIN_BYTES = 1_000_000_000
ROLE = {"user": "user", "assistant": "model", "system": "system"}
SYSTEM_PLACE = "systemInstruction"
SPLIT_FILES = {"train": "train.jsonl", "val": "validation.jsonl", "test": "test.jsonl"}


def convert(conv: Conversation) -> dict:
    system, turns = split_system(conv)
    row: dict = {}
    if system is not None:
        row["systemInstruction"] = {"role": "system", "parts": [{"text": system}]}
    # A system message later in the conversation has no place: it stays role "system" here
    # and the role rule refuses it.
    row["contents"] = [{"role": ROLE[m.role], "parts": [{"text": m.content}]} for m in turns]
    return row


def check(row: dict, count_tokens) -> list[Problem]:
    """Every Vertex rule `row` breaks; `count_tokens(text) -> int` measures the size."""
    problems = []
    contents = row.get("contents")
    if not isinstance(contents, list) or not contents:
        return [Problem("contents", "contents must hold at least one turn")]
    texts = []
    for i, c in enumerate(contents):
        role = c.get("role")
        if role not in ("user", "model"):
            problems.append(Problem(f"contents[{i}].role",
                                    f"role must be 'user' or 'model', not {role!r}"))
        if i == 0 and role == "model":
            problems.append(Problem("contents[0].role", "the conversation starts with 'user'"))
        elif i and role in ("user", "model") and role == contents[i - 1].get("role"):
            problems.append(Problem(
                f"contents[{i}].role", f"roles must alternate user/model: contents[{i - 1}] "
                f"and contents[{i}] are both {role!r}"))
        problems += _parts(c.get("parts"), f"contents[{i}].parts", texts)
    if contents[-1].get("role") != "model":
        problems.append(Problem(f"contents[{len(contents) - 1}].role",
                                "the last turn must be the model's answer"))
    if "systemInstruction" in row:
        problems += _parts(row["systemInstruction"].get("parts"), "systemInstruction.parts",
                           texts)
    n = sum(count_tokens(t) for t in texts)
    if n > MAX_EXAMPLE_TOKENS:
        problems.append(Problem("contents", f"≈{n:,} tokens, over the {MAX_EXAMPLE_TOKENS:,} "
                                "input + output tokens of a training example"))
    return problems


def _parts(parts, where: str, texts: list[str]) -> list[Problem]:
    if not isinstance(parts, list) or not parts:
        return [Problem(where, "parts must not be empty")]
    problems = []
    for j, p in enumerate(parts):
        text = p.get("text") if isinstance(p, dict) else None
        if not isinstance(text, str) or not text.strip():
            problems.append(Problem(f"{where}[{j}].text", "a part must not be empty"))
        else:
            texts.append(text)
    return problems


def finish(row: dict) -> dict:
    return row


def check_split(split: str, examples: int, nbytes: int) -> list[Problem]:
    if split == "val" and examples > MAX_VALIDATION_EXAMPLES:
        return [Problem(None, f"{examples:,} validation examples; Vertex takes at most "
                              f"{MAX_VALIDATION_EXAMPLES:,}")]
    if split == "train" and examples > MAX_TRAIN_EXAMPLES:
        return [Problem(None, f"{examples:,} training examples; Vertex takes at most "
                              f"{MAX_TRAIN_EXAMPLES:,} text examples")]
    if split == "train" and nbytes > MAX_TRAIN_BYTES:
        return [Problem(None, f"training file of {nbytes:,} bytes; Vertex takes at most 1 GB")]
    return []

