from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import tiktoken.load
from click.testing import CliRunner

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch):
    """No test may reach a real LLM or pick the openai provider from the developer's shell."""
    for var in ("OPENAI_API_KEY", "OPENAI_BASE_URL"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture(scope="session")
def tiktoken_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("tiktoken-cache")


@pytest.fixture(autouse=True)
def offline_tiktoken(tiktoken_cache, monkeypatch):
    """Every test counts tokens offline: encodings come from an initially empty cache dir
    (provisioned from the bpe-openai package); a download attempt fails the test."""
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tiktoken_cache))

    def no_network(blobpath: str) -> bytes:
        raise AssertionError(f"tiktoken tried to read {blobpath}")

    monkeypatch.setattr(tiktoken.load, "read_file", no_network)


@pytest.fixture
def cli():
    from persona.cli import cli as group

    runner = CliRunner()

    def invoke(*args, ok=True):
        result = runner.invoke(group, [str(a) for a in args], catch_exceptions=False)
        if ok and result.exit_code != 0:
            raise AssertionError(f"exit {result.exit_code}: {result.output}")
        return result

    return invoke


def run_persona(*args, cwd=None, check=True, env_key=False, **kw
                ) -> subprocess.CompletedProcess:
    """Run the real CLI in a subprocess (for exit codes, stderr and start-up behaviour);
    `env_key`: with a test API key in OPENAI_API_KEY (for the loopback server)."""
    env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "OPENAI_BASE_URL")}
    if env_key:
        env["OPENAI_API_KEY"] = "sk-test-loopback"
    proc = subprocess.run([sys.executable, "-m", "persona", *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, env=env, **kw)
    if check and proc.returncode != 0:
        raise AssertionError(f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc


@pytest.fixture(scope="session")
def babis():
    from persona.spec import load_spec

    return load_spec("babis")


@pytest.fixture(scope="session")
def builtin_finals(tmp_path_factory) -> list[Path]:
    """final/<persona>/ of both built-in personas, 3,000 pairs each, made offline once."""
    from tests.moderation_data import build

    root = tmp_path_factory.mktemp("builtin")
    return [build(root, persona, 3000) for persona in ("babis", "butler")]
