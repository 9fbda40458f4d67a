"""Exact-string and exact-token checks of what the model sees: template, folding, loss mask."""

from __future__ import annotations

import pytest

pytest.importorskip("torch")

from persona.finetune.data import IGNORE, fold_system, load_chat_data, tokenize_conversation  # noqa: E402
from persona.finetune.tiny import build_tiny  # noqa: E402

CONV = [{"role": "system", "content": "Jsi Babiš."},
        {"role": "user", "content": "Jak se máte?"},
        {"role": "assistant", "content": "Makám, makám."},
        {"role": "user", "content": "A dál?"},
        {"role": "assistant", "content": "To je kampaň."}]


@pytest.fixture(scope="module")
def tokenizers(chat_data, tmp_path_factory):
    from transformers import AutoTokenizer

    texts = load_chat_data(chat_data).texts()
    root = tmp_path_factory.mktemp("tok")
    return {name: AutoTokenizer.from_pretrained(build_tiny(name, texts, root / name))
            for name in ("tiny", "tiny-mistral")}


def test_llama_template_renders_exactly(tokenizers):
    text = tokenizers["tiny"].apply_chat_template(CONV, tokenize=False)
    assert text == ("<s><|system|>\nJsi Babiš.\n<|user|>\nJak se máte?\n"
                    "<|assistant|>\nMakám, makám.</s><|user|>\nA dál?\n"
                    "<|assistant|>\nTo je kampaň.</s>")


def test_mistral_template_has_no_system_role_and_folds(tokenizers):
    tok = tokenizers["tiny-mistral"]
    with pytest.raises(Exception, match="System role not supported"):
        tok.apply_chat_template(CONV, tokenize=False)
    text = tok.apply_chat_template(fold_system(CONV), tokenize=False)
    assert text == ("<s>[INST] Jsi Babiš.\n\nJak se máte? [/INST]Makám, makám.</s>"
                    "[INST] A dál? [/INST]To je kampaň.</s>")


@pytest.mark.parametrize("name,fold", [("tiny", False), ("tiny-mistral", True)])
def test_loss_mask_covers_assistant_tokens_and_eos_only(tokenizers, name, fold):
    tok = tokenizers[name]
    row = tokenize_conversation(tok, CONV, fold=fold)
    learned = [i for i, label in zip(row["input_ids"], row["labels"], strict=True)
               if label != IGNORE]
    expected = (tok("Makám, makám.", add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
                + tok("To je kampaň.", add_special_tokens=False)["input_ids"]
                + [tok.eos_token_id])
    assert learned == expected
    # Every other token (roles, system and user text, BOS) is masked, labels align with ids.
    assert all(label in (IGNORE, i) for i, label in zip(row["input_ids"], row["labels"],
                                                         strict=True))
    assert row["labels"][0] == IGNORE


def test_fold_system_into_first_user_turn():
    folded = fold_system(CONV)
    assert folded[0] == {"role": "user", "content": "Jsi Babiš.\n\nJak se máte?"}
    assert folded[1:] == CONV[2:]
    assert CONV[1]["content"] == "Jak se máte?"  # the input is not modified


def test_single_file_split_is_seeded(chat_data, tmp_path):
    one = tmp_path / "all.jsonl"
    one.write_text((chat_data / "train.jsonl").read_text(encoding="utf-8"), encoding="utf-8")
    a, b = load_chat_data(one, seed=1), load_chat_data(one, seed=1)
    assert a.val == b.val and len(a.val) >= 1 and len(a.train) + len(a.val) > 100
    assert load_chat_data(one, seed=2).val != a.val
