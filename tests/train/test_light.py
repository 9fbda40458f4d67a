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
