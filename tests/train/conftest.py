"""Fixtures of the [train] group: a real chat dataset, a disk preflight, one trained tiny run."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def pytest_collection_modifyitems(items):
    here = Path(__file__).parent
    for item in items:
        if here in Path(item.fspath).parents:
            item.add_marker(pytest.mark.train)


@pytest.fixture(scope="session")
def chat_data(tmp_path_factory) -> Path:
    """The built-in persona's dataset from the offline generator (300 conversations)."""
    ws = tmp_path_factory.mktemp("gen")
    proc = subprocess.run([sys.executable, "-m", "persona", "run", "--persona", "babis",
                           "--count", "300", "--workspace", str(ws)],
                          capture_output=True, text=True, cwd=ROOT, timeout=120)
    folder = ws / "final" / "babis"
    if proc.returncode == 0 and (folder / "train.jsonl").exists():
        return folder
    # Fallback while the generator is unavailable: Czech-like Q/A pairs in the same format.
    return write_fixture_dataset(ws / "fixture")


def write_fixture_dataset(folder: Path, n_train: int = 200, n_val: int = 20) -> Path:
    rnd = random.Random(0)
    questions = ["Jak se máte?", "Co si myslíte o daních?", "Kdy bude hotová dálnice?",
                 "Proč jste přišel pozdě?", "Co říkáte na opozici?", "Jaké máte plány?"]
    answers = ["To je kampaň, já makám!", "My jsme to zvládli, opozice jenom kecá.",
               "Já jsem pracoval, vy jste nic neudělali.", "Dálnice bude, to vám garantuju.",
               "Hele, to je zase nějaká kachna."]
    folder.mkdir(parents=True, exist_ok=True)
    for name, n in (("train", n_train), ("val", n_val)):
        with open(folder / f"{name}.jsonl", "w", encoding="utf-8") as fh:
            for _ in range(n):
                conv = [{"role": "system", "content": "Odpovídej jako Babiš."},
                        {"role": "user", "content": rnd.choice(questions)},
                        {"role": "assistant",
                         "content": f"{rnd.choice(answers)} {rnd.choice(answers)}"}]
                fh.write(json.dumps({"messages": conv}, ensure_ascii=False) + "\n")
    return folder


def _preflight_importable() -> bool:
    for name in [m for m in sys.modules if m.split(".")[0] == "disk_manager"]:
        del sys.modules[name]
    try:
        from disk_manager.preflight import preflight
    except ImportError:
        return False
    return callable(preflight)


@pytest.fixture(scope="session")
def subprocess_env() -> dict:
    """Environment for `python -m persona` subprocesses, with disk_manager importable.

    An install of persona made before disk_manager joined it lacks the package: then its
    source folder goes on the path.
    """
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    if not _preflight_importable():
        src = ROOT / "disk_manager" / "src"
        sys.path.insert(0, str(src))
        assert _preflight_importable(), "disk_manager is missing: pip install -e ."
        env["PYTHONPATH"] = f"{src}{os.pathsep}{ROOT}"
    return env


def tiny_config(data: Path, out: Path, **overrides):
    from persona.finetune.config import load_config

    settings = dict(data=str(data), base_model="tiny", out=str(out), max_steps=30, lr=1e-2,
                    batch_size=8, grad_accum=1, logging_steps=5, eval_steps=10, save_steps=10,
                    max_length=256, warmup_ratio=0.0)
    settings.update(overrides)
    return load_config(None, settings)


@pytest.fixture(scope="session")
def make_config():
    """tiny_config(data, out, **overrides): quick settings for the tiny model."""
    return tiny_config


@pytest.fixture(scope="session")
def trained(chat_data, subprocess_env, tmp_path_factory):
    """One tiny Llama trained for 30 steps with --merge; shared by the checks on its outputs."""
    pytest.importorskip("torch")
    import torch

    from persona.finetune.train import finetune

    torch.manual_seed(0)
    out = tmp_path_factory.mktemp("run") / "tiny"
    return finetune(tiny_config(chat_data, out, merge=True))
