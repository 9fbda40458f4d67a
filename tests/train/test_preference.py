"""`persona finetune --method dpo|orpo` on `persona pairs` output, the tiny base on the CPU."""

from __future__ import annotations

import json
import subprocess
import sys


def _run(*args, cwd=None):
    proc = subprocess.run([sys.executable, "-m", "persona", *map(str, args)],
                          capture_output=True, text=True, cwd=cwd, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc


def _train(**kw):
    """`persona finetune` in this process (the CLI's own library call, fewer imports)."""
    from persona.finetune.config import FinetuneConfig
    from persona.finetune.train import finetune

    settings = dict(base_model="tiny", batch_size=4, logging_steps=2, eval_steps=10,
                    save_steps=100)
    return finetune(FinetuneConfig(**{**settings, **{k: str(v) if k in ("data", "out") else v
                                                      for k, v in kw.items()}}))


def test_dpo_raises_the_reward_margin_and_orpo_trains(chat_data, tmp_path):
    pairs = tmp_path / "pairs"
    _run("pairs", chat_data, "--out", pairs)
    dpo = tmp_path / "dpo"
    _train(data=pairs, out=dpo, method="dpo", max_steps=10)
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
    _train(data=pairs, out=orpo, method="orpo", max_steps=4)
    summary = json.loads((orpo / "summary.json").read_text())
    assert summary["method"] == "orpo" and summary["steps"] == 4
    assert summary["final"]["loss"] < summary["final"]["first_loss"]


def test_dpo_starts_from_an_sft_adapter(chat_data, trained, tmp_path):
    """--base-model a finetune --out folder: the SFT adapter is merged into OUT/base-sft
    (the same weights as the SFT run's own --merge), DPO trains on top of it, and its
    reference is the SFT model."""
    from safetensors.torch import load_file

    from persona import pairs as P

    pairs = P.write(chat_data, tmp_path / "pairs").out
    dpo = tmp_path / "dpo-on-sft"
    _train(data=pairs, out=dpo, method="dpo", max_steps=4, base_model=str(trained.out),
           lr=2e-3)
    summary = json.loads((dpo / "summary.json").read_text())
    assert summary["base_path"] == str(dpo / "base-sft") and summary["steps"] == 4
    assert any("merged into" in n for n in summary["notes"])
    ours = load_file(dpo / "base-sft" / "model.safetensors")
    sft = load_file(trained.out / "merged" / "model.safetensors")
    assert ours.keys() == sft.keys()
    assert all((ours[k] - sft[k]).abs().max() < 1e-5 for k in ours)
    assert summary["final"]["reward_margin"] is not None


def test_rejected_answers_from_a_local_model(chat_data, trained, tmp_path):
    """--rejected a finetune --out folder: the tiny model answers each example's own prompt
    (batched, greedy), the answers file lets a rerun generate nothing."""
    from persona import pairs as P

    out = tmp_path / "local-pairs"
    src = P.ModelSource(str(trained.out), out, max_new_tokens=8, batch_size=64)
    first = P.write(chat_data, out, source=str(trained.out), model=src)
    n = sum(first.counts.values()) + first.about["left_out_empty"] + \
        first.about["left_out_same_as_chosen"]
    assert first.about["asked"] == n and first.counts["train"] > 0
    assert first.about["model"]["adapter"] == str(trained.out)
    again = P.write(chat_data, out, source=str(trained.out),
                    model=P.ModelSource(str(trained.out), out, max_new_tokens=8,
                                        batch_size=64))
    assert again.about["asked"] == 0 and again.about["reused"] == n
    rows = _lines(out / "train.jsonl")
    assert all(r["rejected"][0]["content"] != r["chosen"][0]["content"] for r in rows)
    assert len({r["rejected"][0]["content"] for r in rows}) > 1  # it answered, not a constant


def _lines(path):
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines()]
