"""Batches pad per batch and never pack: each example's logits are as if it were alone."""

from __future__ import annotations

import pytest

pytest.importorskip("torch")


@pytest.fixture(scope="module")
def trainer(chat_data, subprocess_env, make_config, tmp_path_factory):
    import torch

    from persona.finetune.data import load_chat_data
    from persona.finetune.tiny import build_tiny
    from persona.finetune.train import Plan, build_trainer, load_base

    torch.manual_seed(0)
    root = tmp_path_factory.mktemp("batching")
    data = load_chat_data(chat_data)
    base = build_tiny("tiny", data.texts(), root / "base")
    plan = Plan("cpu", "none", str(base), "sdpa", padding_free=False)
    tok, model = load_base(plan.base, plan.quant, plan.device)
    cfg = make_config(chat_data, root / "out", batch_size=6)
    trainer, _, _ = build_trainer(cfg, plan, data, tok, model, root / "out", None)
    return trainer


def test_a_training_batch_holds_whole_separate_examples(trainer):
    batch = next(iter(trainer.get_train_dataloader()))
    bos = trainer.processing_class.bos_token_id
    assert "attention_mask" in batch and "position_ids" not in batch
    assert batch["input_ids"].shape[0] == 6
    for ids, mask in zip(batch["input_ids"], batch["attention_mask"], strict=True):
        n = int(mask.sum())
        assert mask[:n].all() and not mask[n:].any()  # right padding only
        assert ids[0] == bos and int((ids == bos).sum()) == 1  # one example per row, no packing
    assert (batch["labels"][batch["attention_mask"] == 0] == -100).all()


def test_examples_never_attend_to_each_other(trainer):
    import torch

    rows = sorted(trainer.train_dataset, key=lambda r: len(r["input_ids"]))
    picked = [rows[0], rows[len(rows) // 2], rows[-1]]  # three different lengths
    batch = trainer.data_collator([{k: r[k] for k in ("input_ids", "labels")} for r in picked])
    assert (batch["attention_mask"] == 0).any()
    model = trainer.model.eval()
    with torch.no_grad():
        together = model(input_ids=batch["input_ids"],
                         attention_mask=batch["attention_mask"]).logits
        for i, row in enumerate(picked):
            n = len(row["input_ids"])
            alone = model(input_ids=torch.tensor([row["input_ids"]])).logits[0]
            torch.testing.assert_close(together[i, :n], alone, atol=1e-5, rtol=1e-4)
