"""A run killed with SIGKILL after a checkpoint resumes at the right step on the same loss curve;
Ctrl-C saves a checkpoint and exits cleanly."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("torch")

SETTINGS = """
base_model = "tiny"
max_steps = 16
save_steps = 4
save_total_limit = 2
logging_steps = 1
eval_steps = 1000
batch_size = 4
grad_accum = 1
lr = 1e-2
warmup_ratio = 0.0
max_length = 256
seed = 7
"""


def _config(tmp_path: Path, data: Path) -> Path:
    toml = tmp_path / "run.toml"
    toml.write_text(f'data = "{data}"\n' + SETTINGS)
    return toml


def _start(toml: Path, out: Path, env: dict) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "persona", "finetune", "--config", str(toml),
                             "--out", str(out), "--json"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _wait_for(proc: subprocess.Popen, path: Path, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while not path.exists():
        if proc.poll() is not None:
            pytest.fail(f"finished before {path.name} appeared: {proc.stderr.read()[-2000:]}")
        if time.time() > deadline:
            proc.kill()
            pytest.fail(f"no {path} within {timeout} s")
        time.sleep(0.02)


def _losses(log: list[dict]) -> dict[int, float]:
    return {r["step"]: r["loss"] for r in log if "loss" in r}


def test_resume_after_kill_continues_the_same_curve(chat_data, subprocess_env, tmp_path):
    import torch

    from persona.finetune.config import load_config
    from persona.finetune.train import finetune, last_checkpoint

    toml = _config(tmp_path, chat_data)
    killed = tmp_path / "killed"
    proc = _start(toml, killed, subprocess_env)
    _wait_for(proc, killed / "checkpoint-4" / "trainer_state.json")
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    stopped = last_checkpoint(killed)
    step = int(stopped.name.split("-")[1])
    assert 4 <= step < 16

    torch.manual_seed(0)
    resumed = finetune(load_config(toml, {"out": str(killed)}), resume=True)
    torch.manual_seed(0)
    straight = finetune(load_config(toml, {"out": str(tmp_path / "straight")}))

    assert resumed.summary["steps"] == straight.summary["steps"] == 16
    got, want = _losses(resumed.log), _losses(straight.log)
    assert sorted(got) == list(range(1, 17))  # the log reads as one run, no step twice
    for s in range(1, 17):
        assert got[s] == pytest.approx(want[s], rel=1e-3, abs=1e-4), (s, step)


def test_ctrl_c_saves_a_checkpoint_and_exits_cleanly(chat_data, subprocess_env, tmp_path):
    toml = _config(tmp_path, chat_data)
    out = tmp_path / "interrupted"
    proc = _start(toml, out, subprocess_env)
    _wait_for(proc, out / "checkpoint-4" / "trainer_state.json")
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    line = err.strip().splitlines()[-1]
    assert line.startswith("error: interrupted at step ") and "--resume" in line
    step = int(line.split("step ")[1].split(";")[0])
    assert (out / f"checkpoint-{step}" / "trainer_state.json").exists()
