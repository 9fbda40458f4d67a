"""The other paths: QLoRA 4-bit on the CPU, and a Mistral-shaped model without a system role."""

from __future__ import annotations

import pytest

pytest.importorskip("torch")


def test_4bit_qlora_trains_on_cpu(chat_data, subprocess_env, make_config, tmp_path):
    import torch

    from persona.finetune.train import finetune

    torch.manual_seed(0)
    res = finetune(make_config(chat_data, tmp_path / "q4", quant="4bit", max_steps=4,
                               logging_steps=2, eval_steps=4, save_steps=4))
    assert res.summary["quant"] == "4bit" and res.summary["steps"] == 4
    kinds = {type(m).__name__ for m in res.model.modules()}
    assert "Linear4bit" in kinds, kinds
    assert [r["step"] for r in res.log if "loss" in r] == [2, 4]
    assert res.summary["final"]["eval_loss"] is not None
    assert (res.out / "adapter_model.safetensors").exists()


def test_mistral_shaped_model_without_system_role_trains(chat_data, subprocess_env, make_config,
                                                         tmp_path):
    import torch

    from persona.finetune import chat
    from persona.finetune.train import finetune

    torch.manual_seed(0)
    res = finetune(make_config(chat_data, tmp_path / "mistral", base_model="tiny-mistral",
                               max_steps=12, logging_steps=4, eval_steps=12, save_steps=12))
    assert type(res.model.get_base_model()).__name__ == "MistralForCausalLM"
    losses = [r["loss"] for r in res.log if "loss" in r]
    assert losses[-1] < losses[0], losses
    # The trained system prompt is folded into the user turn at chat time too.
    system = res.summary["data"]["system_prompt"]
    assert system and chat.answer(res.model.eval(), res.tokenizer, "Jak se máte?",
                                  system=system, max_new_tokens=4) is not None


def test_8bit_trains_on_cpu(chat_data, subprocess_env, make_config, tmp_path):
    """bitsandbytes 0.50 runs LLM.int8 layers on the CPU, so --quant 8bit is allowed there."""
    import torch

    from persona.finetune.train import finetune

    torch.manual_seed(0)
    res = finetune(make_config(chat_data, tmp_path / "q8", quant="8bit", max_steps=4,
                               logging_steps=2, eval_steps=4, save_steps=4))
    assert res.summary["quant"] == "8bit" and res.summary["steps"] == 4
    kinds = {type(m).__name__ for m in res.model.modules()}
    assert "Linear8bitLt" in kinds, kinds
    losses = [r["loss"] for r in res.log if "loss" in r]
    assert len(losses) == 2 and all(loss == loss for loss in losses)  # no NaN
    assert res.summary["final"]["eval_loss"] is not None
