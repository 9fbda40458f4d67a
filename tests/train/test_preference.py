"""`persona finetune --method dpo|orpo` on `persona pairs` output, the tiny base on the CPU."""

from __future__ import annotations

import json
import subprocess
import sys

ROOT_ARGS = ("--base-model", "tiny", "--batch-size", "4", "--logging-steps", "2",
             "--eval-steps", "10", "--save-steps", "100")


def _run(*args, cwd=None):
    proc = subprocess.run([sys.executable, "-m", "persona", *map(str, args)],
                          capture_output=True, text=True, cwd=cwd, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc


def test_dpo_raises_the_reward_margin_and_orpo_trains(chat_data, tmp_path):
    pairs = tmp_path / "pairs"
    _run("pairs", chat_data, "--out", pairs)
    dpo = tmp_path / "dpo"
    _run("finetune", "--data", pairs, "--out", dpo, "--method", "dpo", "--max-steps", 10,
         *ROOT_ARGS)
    summary = json.loads((dpo / "summary.json").read_text())
    final = summary["final"]
    assert summary["method"] == "dpo" and summary["hyperparameters"]["beta"] == 0.1
    # chosen (the persona) above rejected (the neutral voice), more so as it trains
    assert final["reward_margin"] > final["first_reward_margin"] and final["reward_margin"] > 1
    assert final["eval_reward_margin"] > 1
    assert (dpo / "adapter_model.safetensors").exists() and (dpo / "loss.png").exists()
    rows = [json.loads(x) for x in (dpo / "training_log.jsonl").read_text().splitlines()]
    assert any("rewards_margins" in r for r in rows)

    orpo = tmp_path / "orpo"
    _run("finetune", "--data", pairs, "--out", orpo, "--method", "orpo", "--max-steps", 4,
         *ROOT_ARGS)
    summary = json.loads((orpo / "summary.json").read_text())
    assert summary["method"] == "orpo" and summary["steps"] == 4
    assert summary["final"]["loss"] < summary["final"]["first_loss"]


def test_dpo_starts_from_an_sft_adapter(chat_data, trained, tmp_path):
    """--base-model a finetune --out folder: the SFT adapter is merged into OUT/base-sft
    (the same weights as the SFT run's own --merge), DPO trains on top of it, and its
    reference is the SFT model."""
    from safetensors.torch import load_file

    from persona import pairs as P
    from persona.finetune.config import FinetuneConfig
    from persona.finetune.train import finetune

    pairs = P.write(chat_data, tmp_path / "pairs").out
    dpo = tmp_path / "dpo-on-sft"
    finetune(FinetuneConfig(data=str(pairs), out=str(dpo), method="dpo", max_steps=4,
                            base_model=str(trained.out), batch_size=4, logging_steps=2,
                            save_steps=100, lr=2e-3))  # in-process: the test's own imports
    summary = json.loads((dpo / "summary.json").read_text())
    assert summary["base_path"] == str(dpo / "base-sft") and summary["steps"] == 4
    assert any("merged into" in n for n in summary["notes"])
    ours = load_file(dpo / "base-sft" / "model.safetensors")
    sft = load_file(trained.out / "merged" / "model.safetensors")
    assert ours.keys() == sft.keys()
    assert all((ours[k] - sft[k]).abs().max() < 1e-5 for k in ours)
    assert summary["final"]["reward_margin"] is not None
