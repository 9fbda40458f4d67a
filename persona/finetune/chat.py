"""Talk to a fine-tuned run: base model + LoRA adapter from OUT, greedy decoding by default.

The system prompt the run was trained with (summary.json) is used again, and folded into the
first user turn for templates without a system role — the same path as in training.
"""

from __future__ import annotations

import json
from pathlib import Path

from persona.errors import InputError
from persona.finetune import quiet_libraries, require_train_deps
from persona.finetune.data import fold_system, supports_system_role


def load(out: Path):
    """(model, tokenizer, system prompt) for the run in `out`."""
    out = Path(out)
    if not (out / "adapter_config.json").exists():  # before the heavy imports: at once
        raise InputError("no adapter here (adapter_config.json); is this a finetune --out "
                         "folder of a finished run?", file=str(out))
    require_train_deps()
    quiet_libraries()
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    summary = _read_json(out / "summary.json")
    base = summary.get("base_path") or _read_json(out / "adapter_config.json")[
        "base_model_name_or_path"]
    cuda = torch.cuda.is_available()
    model = AutoModelForCausalLM.from_pretrained(
        base, dtype=torch.bfloat16 if cuda else torch.float32,
        device_map="auto" if cuda else None)
    model = PeftModel.from_pretrained(model, str(out)).eval()
    tok = AutoTokenizer.from_pretrained(str(out))
    return model, tok, summary.get("data", {}).get("system_prompt")


def _read_json(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}


# Greedy decoding of a small model loops ("Já jsem to říkal stokrát." twice): a mild penalty
# on tokens already in the text and a ban on repeating any 4-gram stop it, still greedy.
# `persona bench` decodes with the same defaults (persona.bench.generate.Decoding).
REPETITION_PENALTY = 1.15
NO_REPEAT_NGRAM = 4


def answer(model, tok, question: str, *, system: str | None = None,
           max_new_tokens: int = 128, repetition_penalty: float = REPETITION_PENALTY,
           no_repeat_ngram: int = NO_REPEAT_NGRAM) -> str:
    """One reply, greedy: the same question always gets the same answer.

    `repetition_penalty` 1.0 and `no_repeat_ngram` 0 switch the anti-repetition off."""
    import torch

    messages = [{"role": "user", "content": question}]
    if system:
        messages.insert(0, {"role": "system", "content": system})
        if not supports_system_role(tok):
            messages = fold_system(messages)
    enc = tok.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt",
                                  return_dict=True)
    enc = {k: v.to(model.device) for k, v in enc.items()}
    with torch.no_grad():
        ids = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False,
                             repetition_penalty=repetition_penalty,
                             no_repeat_ngram_size=no_repeat_ngram,
                             pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id)
    return tok.decode(ids[0, enc["input_ids"].shape[1]:], skip_special_tokens=True).strip()


def read_questions(path: Path) -> list[str]:
    """One question per line; a .jsonl file may hold {"question": …} or chat messages."""
    path = Path(path)
    if path.suffix != ".jsonl":
        return [q.strip() for q in path.read_text(encoding="utf-8").splitlines() if q.strip()]
    from persona.io import iter_jsonl

    questions = []
    for lineno, obj in iter_jsonl(path):
        if isinstance(obj.get("question"), str):
            questions.append(obj["question"])
        elif isinstance(obj.get("messages"), list):
            users = [m.get("content") for m in obj["messages"] if m.get("role") == "user"]
            if users:
                questions.append(users[0])
        else:
            raise InputError("expected 'question' or 'messages'", file=str(path), line=lineno)
    return questions
