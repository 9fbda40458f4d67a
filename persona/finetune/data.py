"""Chat JSONL in, token ids and loss labels out.

The model's own chat template renders each conversation; the loss covers assistant turns only
(their EOS included, so the model learns to stop). Templates without a system role (Mistral) get
the system prompt folded into the first user turn. The assistant spans are found by rendering
growing prefixes of the conversation, so any template works, not only ones with
`{% generation %}` markers.
"""

from __future__ import annotations

import hashlib
import random
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from persona.errors import InputError
from persona.io import iter_jsonl

IGNORE = -100  # label of a token that adds nothing to the loss (PyTorch's cross-entropy default)
ROLES = {"system", "user", "assistant"}


@dataclass
class ChatData:
    train: list[list[dict]]
    val: list[list[dict]]
    files: list[Path]

    def sha256(self) -> str:
        """Hash of the input files' bytes: the data part of a run's identity."""
        h = hashlib.sha256()
        for f in self.files:
            h.update(f.name.encode() + b"\0" + f.read_bytes())
        return h.hexdigest()

    def system_prompt(self) -> str | None:
        """The most common system prompt of the training data (chat reuses it)."""
        prompts = Counter(m[0]["content"] for m in self.train if m and m[0]["role"] == "system")
        return prompts.most_common(1)[0][0] if prompts else None

    def texts(self) -> list[str]:
        return [m["content"] for conv in self.train + self.val for m in conv]


def load_chat_data(path: Path, *, val_fraction: float = 0.05, seed: int = 42) -> ChatData:
    """A folder with train.jsonl + val.jsonl, or one JSONL file split with a seeded shuffle."""
    path = Path(path)
    if path.is_dir():
        train_f, val_f = path / "train.jsonl", path / "val.jsonl"
        if not train_f.exists():
            raise InputError("no train.jsonl in the dataset folder", file=str(path))
        if not val_f.exists():
            raise InputError("no val.jsonl in the dataset folder (or pass one JSONL file to "
                             "split it)", file=str(path))
        return ChatData(read_conversations(train_f), read_conversations(val_f), [train_f, val_f])
    convs = read_conversations(path)
    train, val = split(convs, val_fraction, seed)
    return ChatData(train, val, [path])


def split(items: list, val_fraction: float, seed: int) -> tuple[list, list]:
    """Seeded shuffle, then the first `val_fraction` (at least one) becomes validation."""
    if len(items) < 2:
        raise InputError(f"need at least 2 conversations to split, got {len(items)}")
    order = list(range(len(items)))
    random.Random(seed).shuffle(order)
    n_val = min(len(items) - 1, max(1, round(len(items) * val_fraction)))
    return [items[i] for i in order[n_val:]], [items[i] for i in order[:n_val]]


@dataclass
class PairData(ChatData):
    """Preference pairs (`persona pairs`): each item {"prompt", "chosen", "rejected"}, lists
    of messages in TRL's conversational form."""

    def system_prompt(self) -> str | None:
        prompts = Counter(p["prompt"][0]["content"] for p in self.train
                          if p["prompt"] and p["prompt"][0]["role"] == "system")
        return prompts.most_common(1)[0][0] if prompts else None

    def texts(self) -> list[str]:
        return [m["content"] for p in self.train + self.val
                for part in ("prompt", "chosen", "rejected") for m in p[part]]


def load_pair_data(path: Path) -> PairData:
    """Preference pairs for --method dpo / orpo: a folder with train.jsonl + val.jsonl of
    pairs, or a final/ folder whose pairs/ `persona pairs` wrote."""
    path = Path(path)
    chat = path.is_dir() and (not (path / "train.jsonl").exists()
                              or _is_chat(path / "train.jsonl"))
    if chat and (path / "pairs" / "train.jsonl").exists():
        path = path / "pairs"  # a final/ folder: the pairs written into it
    elif chat or _is_chat(path):
        raise InputError("--method dpo / orpo trains on preference pairs (prompt, chosen, "
                         "rejected); make them with `persona pairs FINAL_DIR`", file=str(path))
    if not path.is_dir():
        raise InputError("expected a folder of preference pairs (train.jsonl + val.jsonl)",
                         file=str(path))
    files = [path / "train.jsonl", path / "val.jsonl"]
    for f in files:
        if not f.exists():
            raise InputError(f"no {f.name} of preference pairs", file=str(path))
    return PairData(*(read_pairs(f) for f in files), files)


def _is_chat(path: Path) -> bool:
    """Whether a JSONL file's first example is a chat one (messages), not a pair."""
    if not path.is_file():
        return False
    for _, obj in iter_jsonl(path):
        return "messages" in obj
    return False


def read_pairs(path: Path) -> list[dict]:
    pairs = []
    for lineno, obj in iter_jsonl(path):
        item = {}
        for part in ("prompt", "chosen", "rejected"):
            problem = _check_messages(obj.get(part), need_assistant=part != "prompt")
            if problem:
                raise InputError(problem.replace("'messages'", f"'{part}'"), file=str(path),
                                 line=lineno, field=part)
            item[part] = [{"role": m["role"], "content": m["content"]} for m in obj[part]]
        pairs.append(item)
    if not pairs:
        raise InputError("no preference pairs", file=str(path))
    return pairs


def read_conversations(path: Path) -> list[list[dict]]:
    convs = []
    for lineno, obj in iter_jsonl(path):
        if "messages" not in obj and {"chosen", "rejected"} <= set(obj):
            raise InputError("holds preference pairs (prompt, chosen, rejected): train them "
                             "with --method dpo or orpo", file=str(path), line=lineno)
        msgs = obj.get("messages")
        problem = _check_messages(msgs)
        if problem:
            raise InputError(problem, file=str(path), line=lineno)
        convs.append([{"role": m["role"], "content": m["content"]} for m in msgs])
    if not convs:
        raise InputError("no conversations", file=str(path))
    return convs


def _check_messages(msgs: Any, need_assistant: bool = True) -> str | None:
    if not isinstance(msgs, list) or not msgs:
        return "expected a non-empty 'messages' list"
    for m in msgs:
        if not isinstance(m, dict) or m.get("role") not in ROLES:
            return f"each message needs a role in {sorted(ROLES)}"
        if not isinstance(m.get("content"), str):
            return "each message needs string 'content'"
    if need_assistant and not any(m["role"] == "assistant" for m in msgs):
        return "no assistant message to learn from"
    return None


def supports_system_role(tokenizer) -> bool:
    """Does the template render a system message? Mistral's raises or drops it."""
    probe = [{"role": "system", "content": "SYSPROBE"}, {"role": "user", "content": "hi"}]
    try:
        text = tokenizer.apply_chat_template(probe, tokenize=False, add_generation_prompt=True)
    except Exception:  # jinja2 TemplateError from raise_exception(); no other way to ask
        return False
    return "SYSPROBE" in text


def fold_system(messages: list[dict]) -> list[dict]:
    """Merge a leading system message into the first user turn (for templates without one)."""
    if not messages or messages[0]["role"] != "system":
        return messages
    system, rest = messages[0]["content"], [dict(m) for m in messages[1:]]
    for m in rest:
        if m["role"] == "user":
            m["content"] = f"{system}\n\n{m['content']}"
            return rest
    return [{"role": "user", "content": system}, *rest]


def render(tokenizer, messages: list[dict], *, generation_prompt: bool = False) -> str:
    return tokenizer.apply_chat_template(messages, tokenize=False,
                                         add_generation_prompt=generation_prompt)


def assistant_spans(tokenizer, messages: list[dict]) -> tuple[str, list[tuple[int, int]]]:
    """The rendered text and the character spans of each assistant reply (with its EOS)."""
    full = render(tokenizer, messages)
    spans = []
    for i, m in enumerate(messages):
        if m["role"] != "assistant":
            continue
        start = len(render(tokenizer, messages[:i], generation_prompt=True))
        upto = render(tokenizer, messages[: i + 1])
        if not full.startswith(upto) or start > len(upto):
            raise InputError("the chat template does not render conversations prefix by prefix; "
                             "cannot find the assistant turns to learn from")
        spans.append((start, len(upto)))
    return full, spans


def tokenize_conversation(tokenizer, messages: list[dict], *, fold: bool = False) -> dict:
    """input_ids of the rendered conversation; labels = ids inside assistant spans, else -100."""
    if fold:
        messages = fold_system(messages)
    text, spans = assistant_spans(tokenizer, messages)
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    ids = list(enc["input_ids"])
    labels = [IGNORE] * len(ids)
    for j, (s, e) in enumerate(enc["offset_mapping"]):
        if e > s and any(a <= s < b for a, b in spans):
            labels[j] = ids[j]
    return {"input_ids": ids, "labels": labels}


def tokenize_all(tokenizer, convs: list[list[dict]], max_length: int) -> list[dict]:
    """Tokenize, cut at `max_length`, drop examples left without a learned token."""
    fold = not supports_system_role(tokenizer)
    rows = []
    for conv in convs:
        row = tokenize_conversation(tokenizer, conv, fold=fold)
        row = {k: v[:max_length] for k, v in row.items()}
        if any(t != IGNORE for t in row["labels"]):
            rows.append(row)
    if not rows:
        raise InputError(f"no example keeps an assistant token within max_length={max_length}")
    return rows
