"""One tiny Llama trained on the built-in persona's data: loss, outputs, adapter, reload, merge."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("torch")

QUESTION = "Pane Babiši, co říkáte na daně?"


def test_loss_falls_and_eval_loss_is_reported(trained):
    losses = [r["loss"] for r in trained.log if "loss" in r]
    evals = [r for r in trained.log if "eval_loss" in r]
    assert len(losses) == 6 and losses[-1] < losses[0] - 0.3, losses
    assert [r["step"] for r in evals] == [10, 20, 30]
    assert evals[-1]["eval_loss"] < evals[0]["eval_loss"]
    assert all(r["tokens_per_s"] > 0 for r in trained.log if "loss" in r)


def test_outputs_are_written(trained):
    out = trained.out
    for name in ("adapter_model.safetensors", "adapter_config.json", "tokenizer.json",
                 "training_log.jsonl", "loss.png", "summary.json", "README.md", "config.json"):
        assert (out / name).is_file(), name
    assert not (out / ".persona.lock").exists()  # held while training, gone after
    summary = json.loads((out / "summary.json").read_text())
    assert summary["steps"] == 30 and summary["quant"] == "none"
    assert len(summary["data"]["sha256"]) == 64
    assert summary["hyperparameters"]["lora_r"] == 16
    assert summary["versions"]["trl"] and summary["peak_rss_bytes"] > 0
    lines = (out / "training_log.jsonl").read_text().splitlines()
    assert [json.loads(line) for line in lines] == trained.log
    assert (out / "loss.png").read_bytes()[:4] == b"\x89PNG"


def test_base_weights_unchanged_and_adapter_changed(trained):
    """Training moves only the adapter. The tiny preset trains embeddings and head as full
    copies (modules_to_save): the originals behind them stay frozen and equal to the base
    files, like every other base weight; the copies and LoRA B move and go into the adapter."""
    import torch
    from safetensors.torch import load_file

    base = load_file(str(trained.out / "base-tiny" / "model.safetensors"))
    assert "lm_head.weight" in base  # untied: two separate matrices
    frozen, trainable = {}, {}
    for name, p in trained.model.named_parameters():
        (trainable if p.requires_grad else frozen)[name] = p
    assert all("lora_" in n or ".modules_to_save." in n for n in trainable), list(trainable)
    assert not any("lora_" in n or ".modules_to_save." in n for n in frozen)
    names = {n.removeprefix("base_model.model.").replace(".base_layer", "")
             .replace(".original_module", ""): p for n, p in frozen.items()}
    assert names.keys() == base.keys()
    for name, weight in base.items():
        assert torch.equal(names[name], weight), name
    for module in ("model.embed_tokens", "lm_head"):
        copy = trainable[f"base_model.model.{module}.modules_to_save.default.weight"]
        assert not torch.equal(copy, base[f"{module}.weight"]), module
    lora_b = [p for n, p in trainable.items() if "lora_B" in n]
    assert lora_b and all(p.abs().sum() > 0 for p in lora_b)  # LoRA B starts at zero
    saved = load_file(str(trained.out / "adapter_model.safetensors"))
    assert any("embed_tokens" in k for k in saved) and any("lm_head" in k for k in saved)


def test_tiny_preset_is_applied_and_reported(trained):
    hp, notes = trained.summary["hyperparameters"], trained.summary["notes"]
    assert hp["train_embeddings"] is True and hp["lr"] == 1e-2  # lr given: kept
    assert notes == ["tiny preset: train_embeddings = True (default None)"]


def test_reloaded_adapter_answers_like_the_trained_model(trained):
    import torch

    from persona.finetune import chat

    system = trained.summary["data"]["system_prompt"]
    model, tok, trained_system = chat.load(trained.out)
    assert trained_system == system
    in_memory = trained.model.eval()
    assert chat.answer(model, tok, QUESTION, system=system, max_new_tokens=24) == chat.answer(
        in_memory, trained.tokenizer, QUESTION, system=system, max_new_tokens=24)
    # The same on raw ids, forced to 16 new tokens so the comparison is never trivially empty.
    enc = tok.apply_chat_template([{"role": "user", "content": QUESTION}],
                                  add_generation_prompt=True, return_tensors="pt",
                                  return_dict=True)
    with torch.no_grad():
        a, b = (m.generate(**enc, do_sample=False, min_new_tokens=16, max_new_tokens=16,
                           pad_token_id=tok.pad_token_id) for m in (in_memory, model))
    assert a.shape[1] == enc["input_ids"].shape[1] + 16 and torch.equal(a, b)


def test_merged_weights_match_the_adapter(trained):
    import torch
    from transformers import AutoModelForCausalLM

    merged = AutoModelForCausalLM.from_pretrained(str(trained.out / "merged"))
    ids = trained.tokenizer(QUESTION, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        expected = trained.model.eval()(input_ids=ids).logits
        got = merged.eval()(input_ids=ids).logits
    torch.testing.assert_close(got, expected, atol=1e-4, rtol=1e-4)


def test_chat_command_answers_questions(trained, subprocess_env):
    from click.testing import CliRunner

    from persona.cli import cli

    result = CliRunner().invoke(cli, ["chat", "--model", str(trained.out), "-q", QUESTION,
                                      "--max-new-tokens", "8"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"> {QUESTION}\n")


def _expected(trained, questions, max_new_tokens=8):
    from persona.finetune import chat

    model, tok, system = chat.load(trained.out)
    return [chat.answer(model, tok, q, system=system, max_new_tokens=max_new_tokens)
            for q in questions]


def test_chat_answers_questions_from_a_file(trained, tmp_path):
    from click.testing import CliRunner

    from persona.cli import cli

    questions = [QUESTION, "Proč jste nepřišel do sněmovny?"]
    plain = tmp_path / "questions.txt"
    plain.write_text(f"{questions[0]}\n\n  {questions[1]}  \n", encoding="utf-8")
    jsonl = tmp_path / "questions.jsonl"
    jsonl.write_text(json.dumps({"question": questions[0]}, ensure_ascii=False) + "\n" +
                     json.dumps({"messages": [{"role": "user", "content": questions[1]}]},
                                ensure_ascii=False) + "\n", encoding="utf-8")
    want = "".join(f"> {q}\n{a}\n\n" for q, a in zip(questions, _expected(trained, questions),
                                                     strict=True))
    for path in (plain, jsonl):
        result = CliRunner().invoke(cli, ["chat", "--model", str(trained.out), "--file",
                                          str(path), "--max-new-tokens", "8"])
        assert result.exit_code == 0, result.output
        assert result.output == want


def test_chat_is_interactive_on_stdin(trained, subprocess_env):
    import subprocess
    import sys

    questions = [QUESTION, "Jak se máte?"]
    proc = subprocess.run([sys.executable, "-m", "persona", "chat", "--model", str(trained.out),
                           "--max-new-tokens", "8"], input="\n".join(questions) + "\n",
                          capture_output=True, text=True, env=subprocess_env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    answers = _expected(trained, questions)
    assert any(answers)  # a non-trivial comparison
    # A prompt per question, each reply after it, and one more prompt before stdin ends.
    assert proc.stdout == "".join(f"> {a}\n\n" for a in answers) + "> "
    assert "Ctrl-D" in proc.stderr
