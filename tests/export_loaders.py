"""Readers of the exported formats, written against each format's own documentation, not
against persona's writer: the round-trip tests load an export through these and compare.

- LLaMA-Factory (hiyouga/LLaMA-Factory, data/README.md and src/llamafactory/data/
  converter.py + parser.py): dataset_info.json names the file, its `formatting` (alpaca by
  default) and its columns/tags; files load with `datasets.load_dataset("json", ...)`; the
  converters turn a row into `_system`, `_prompt` (list of {role, content}) and `_response`,
  and a sharegpt row whose roles are out of place or whose count is odd is skipped (None here).
- Vertex AI Gemini tuning: systemInstruction.parts + contents[{role user|model, parts}].
"""

from __future__ import annotations

import json
from pathlib import Path

ROLE_OUT = {"user": "user", "assistant": "assistant"}


def llamafactory(dataset_dir: Path, name: str, cache_dir: Path) -> list[list[dict] | None]:
    """Conversations of dataset `name`, as LLaMA-Factory would align them."""
    from datasets import load_dataset

    info = json.loads((Path(dataset_dir) / "dataset_info.json").read_text())[name]
    rows = load_dataset("json", data_files=str(Path(dataset_dir) / info["file_name"]),
                        split="train", cache_dir=str(cache_dir))
    formatting = info.get("formatting", "alpaca")
    columns, tags = info.get("columns", {}), info.get("tags", {})
    align = _sharegpt if formatting == "sharegpt" else _alpaca
    return [_messages(align(row, columns, tags)) for row in rows]


def _alpaca(row: dict, columns: dict, tags: dict) -> dict | None:
    prompt = []
    history = columns.get("history")
    if history and isinstance(row[history], list):
        for old_prompt, old_response in row[history]:
            prompt += [{"role": "user", "content": old_prompt},
                       {"role": "assistant", "content": old_response}]
    query = [row[c] for c in (columns.get("prompt", "instruction"), columns.get("query", "input"))
             if c and row[c]]
    prompt.append({"role": "user", "content": "\n".join(query)})
    response_col = columns.get("response", "output")
    response = ([{"role": "assistant", "content": row[response_col]}]
                if isinstance(row[response_col], str) else [])
    system = row[columns["system"]] if columns.get("system") else ""
    return {"_system": system, "_prompt": prompt, "_response": response}


def _sharegpt(row: dict, columns: dict, tags: dict) -> dict | None:
    role_tag, content_tag = tags.get("role_tag", "from"), tags.get("content_tag", "value")
    user, assistant = tags.get("user_tag", "human"), tags.get("assistant_tag", "gpt")
    system_tag = tags.get("system_tag", "system")
    mapping = {user: "user", assistant: "assistant"}
    messages = row[columns.get("messages", "conversations")]
    if system_tag and messages and messages[0][role_tag] == system_tag:
        system, messages = messages[0][content_tag], messages[1:]
    else:
        system = row[columns["system"]] if columns.get("system") else ""
    accept = ((user, tags.get("observation_tag", "observation")),
              (assistant, tags.get("function_tag", "function_call")))
    aligned = []
    for i, m in enumerate(messages):
        if m[role_tag] not in accept[i % 2]:
            return None  # LLaMA-Factory: "Invalid role tag", the example is skipped
        aligned.append({"role": mapping[m[role_tag]], "content": m[content_tag]})
    if len(aligned) % 2:
        return None  # "Invalid message count"
    return {"_system": system, "_prompt": aligned[:-1], "_response": aligned[-1:]}


def llamafactory_ranking(dataset_dir: Path, name: str, cache_dir: Path
                         ) -> list[tuple[list[dict], dict, dict] | None]:
    """(prompt, chosen, rejected) of a `"ranking": true` sharegpt dataset, as LLaMA-Factory's
    SharegptDatasetConverter aligns it: the messages are the prompt (an odd count, user turn
    last), `chosen` / `rejected` single messages with the assistant tag; anything else is
    skipped ("Invalid role tag" / "Invalid message count")."""
    from datasets import load_dataset

    info = json.loads((Path(dataset_dir) / "dataset_info.json").read_text())[name]
    assert info.get("ranking") is True and info.get("formatting") == "sharegpt"
    rows = load_dataset("json", data_files=str(Path(dataset_dir) / info["file_name"]),
                        split="train", cache_dir=str(cache_dir))
    columns, tags = info.get("columns", {}), info.get("tags", {})
    role_tag, content_tag = tags.get("role_tag", "from"), tags.get("content_tag", "value")
    user, assistant = tags.get("user_tag", "human"), tags.get("assistant_tag", "gpt")
    out = []
    for row in rows:
        messages = row[columns.get("messages", "conversations")]
        system = row[columns["system"]] if columns.get("system") else ""
        prompt, ok = [], len(messages) % 2 == 1
        for i, m in enumerate(messages):
            ok = ok and m[role_tag] == (user if i % 2 == 0 else assistant)
            prompt.append({"role": "user" if i % 2 == 0 else "assistant",
                           "content": m[content_tag]})
        chosen, rejected = row[columns["chosen"]], row[columns["rejected"]]
        ok = ok and all(isinstance(x, dict) and x[role_tag] == assistant
                        for x in (chosen, rejected))
        if not ok:
            out.append(None)
            continue
        system_msg = [{"role": "system", "content": system}] if system else []
        out.append((system_msg + prompt, {"role": "assistant", "content": chosen[content_tag]},
                    {"role": "assistant", "content": rejected[content_tag]}))
    return out


def openai_preference(path: Path) -> list[tuple[list[dict], dict, dict]]:
    """OpenAI's preference (DPO) fine-tuning file, as its guide documents a line: `input`
    with `messages`, `preferred_output` and `non_preferred_output` each one assistant
    message."""
    out = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        assert set(row) <= {"input", "preferred_output", "non_preferred_output"}
        messages = row["input"]["messages"]
        assert all(m["role"] in ("system", "user", "assistant") for m in messages)
        good, bad = row["preferred_output"], row["non_preferred_output"]
        assert len(good) == 1 == len(bad) and good[0]["role"] == bad[0]["role"] == "assistant"
        out.append((messages, good[0], bad[0]))
    return out


def _messages(aligned: dict | None) -> list[dict] | None:
    if aligned is None or not aligned["_response"]:
        return None
    system = [{"role": "system", "content": aligned["_system"]}] if aligned["_system"] else []
    return system + aligned["_prompt"] + aligned["_response"]


def vertex(path: Path) -> list[list[dict]]:
    back = {"user": "user", "model": "assistant"}
    out = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        conv = []
        if "systemInstruction" in row:
            conv.append({"role": "system", "content": "".join(
                p["text"] for p in row["systemInstruction"]["parts"])})
        conv += [{"role": back[c["role"]], "content": "".join(p["text"] for p in c["parts"])}
                 for c in row["contents"]]
        out.append(conv)
    return out


def chat_jsonl(path: Path) -> list[list[dict]]:
    return [json.loads(line)["messages"]
            for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]
