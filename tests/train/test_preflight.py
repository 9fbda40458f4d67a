"""The disk preflight refuses a run that cannot fit, before any weights are loaded."""

from __future__ import annotations

import pytest

pytest.importorskip("torch")


def test_preflight_refuses_a_run_that_cannot_fit(chat_data, subprocess_env, tmp_path,
                                                 monkeypatch):
    from click.testing import CliRunner

    from disk_manager import volumes
    from persona.cli import cli

    monkeypatch.setattr(volumes, "free_bytes", lambda path: 1000)  # 1 kB free everywhere
    out = tmp_path / "run"
    result = CliRunner().invoke(cli, ["finetune", "--data", str(chat_data), "--base-model",
                                      "tiny", "--out", str(out), "--merge", "--json"])
    assert result.exit_code == 2, result.output
    line = result.output.strip().splitlines()[-1]
    assert line.startswith("error: will not fit on disk: ") and "missing" in line
    assert "merged export" in line  # --merge counts
    # Refused before loading: no config, no adapter, no checkpoint written.
    assert not (out / "config.json").exists() and not list(out.glob("checkpoint-*"))
    assert not (out / "adapter_model.safetensors").exists()
