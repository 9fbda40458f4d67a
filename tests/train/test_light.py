"""Checks that need no torch: imports stay light, config precedence, the missing-extra message."""

from __future__ import annotations

import subprocess
import sys

import pytest
from click.testing import CliRunner

from persona.errors import InputError
from persona.finetune.config import load_config


def test_help_does_not_import_torch():
    code = ("import persona.cli, sys; from click.testing import CliRunner; "
            "r = CliRunner().invoke(persona.cli.cli, ['finetune', '--help']); "
            "assert r.exit_code == 0, r.output; "
            "heavy = [m for m in ('torch', 'transformers', 'trl', 'peft') if m in sys.modules]; "
            "assert not heavy, heavy")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_flag_beats_file_beats_default(tmp_path):
    toml = tmp_path / "run.toml"
    toml.write_text('lr = 1e-4\nlora-r = 8\nbase_model = "tiny"\n')
    cfg = load_config(toml, {"lr": 5e-4, "lora_r": None})
    assert (cfg.lr, cfg.lora_r, cfg.lora_alpha, cfg.base_model) == (5e-4, 8, 32, "tiny")


def test_unknown_key_is_rejected(tmp_path):
    toml = tmp_path / "run.toml"
    toml.write_text("[finetune]\nlearning_rate = 1e-4\n")
    with pytest.raises(InputError, match="unknown key.*learning_rate"):
        load_config(toml)


def test_bad_value_names_the_field():
    with pytest.raises(InputError, match="quant"):
        load_config(None, {"quant": "3bit"})


def test_missing_train_extra_is_one_line(monkeypatch):
    import importlib.util

    from persona.cli import cli

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "trl" else real(name, *a))
    result = CliRunner().invoke(cli, ["finetune", "--data", "x", "--base-model", "tiny",
                                      "--out", "y"])
    assert result.exit_code == 2
    assert result.output.strip() == ("error: missing trl: install with pip install -e "
                                     "'.[train]'")


def test_tiny_preset_fills_only_what_was_not_given():
    from persona.finetune.config import apply_presets

    cfg = load_config(None, {"base_model": "tiny", "lora_r": 8})
    notes = apply_presets(cfg, tiny=True)
    assert (cfg.lr, cfg.train_embeddings, cfg.lora_r) == (2e-3, True, 8)
    assert notes == ["tiny preset: train_embeddings = True (default None)",
                     "tiny preset: lr = 0.002 (default 0.0002)"]
    given = load_config(None, {"base_model": "tiny", "lr": 1e-2, "train_embeddings": False})
    assert apply_presets(given, tiny=True) == []
    assert (given.lr, given.train_embeddings) == (1e-2, False)
    real = load_config(None, {"base_model": "mistralai/Mistral-7B-Instruct-v0.3"})
    assert apply_presets(real, tiny=False) == []
    assert (real.lr, real.train_embeddings) == (2e-4, False)  # real-model defaults unchanged


def _saved_run(tmp_path, **settings):
    """An --out folder as a run leaves it: config.json (presets applied) and a checkpoint."""
    import json

    from persona.finetune.config import apply_presets

    out = tmp_path / "run"
    cfg = load_config(None, dict(data="final/babis", base_model="tiny", out=str(out),
                                 **settings))
    apply_presets(cfg, tiny=True)
    (out / "checkpoint-4").mkdir(parents=True)
    (out / "checkpoint-4" / "trainer_state.json").write_text("{}")
    (out / "config.json").write_text(json.dumps(cfg.hyperparameters()))
    return out


def _resume(out, *flags):
    from persona.cli import cli

    return CliRunner().invoke(cli, ["finetune", "--data", "final/babis", "--base-model", "tiny",
                                    "--out", str(out), "--resume", "--json", *flags])


def test_resume_with_other_settings_is_refused_naming_them(tmp_path):
    out = _saved_run(tmp_path, lr=1e-2, max_steps=16)
    result = _resume(out, "--lr", "0.02", "--max-steps", "20", "--eval-steps", "5")
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: --resume with other settings")
    assert "lr (saved 0.01, now 0.02)" in lines[0] and "max_steps (saved 16, now 20)" in lines[0]
    assert "eval_steps" not in lines[0]  # cadence may change
    # Left out, a preset-filled setting resolves the same as before: lr is the only difference.
    result = _resume(_saved_run(tmp_path / "b"), "--lr", "0.002", "--seed", "1")
    differ = result.output.strip().split(": ", 2)[2].split("; pass")[0]
    assert result.exit_code == 2 and differ == "seed (saved 42, now 1)", result.output


def test_resume_may_change_cadence_and_bookkeeping(tmp_path):
    from persona.finetune.config import apply_presets
    from persona.finetune.train import _check_out

    out = _saved_run(tmp_path, max_steps=16)
    cfg = load_config(None, dict(data="final/babis", base_model="tiny", out=str(out),
                                 max_steps=16, eval_steps=5, logging_steps=1, save_steps=2,
                                 save_total_limit=5, merge=True))
    apply_presets(cfg, tiny=True)
    assert _check_out(cfg, resume=True) == out
