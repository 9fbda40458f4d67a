"""Files persona and disk-manager write get the mode any tool's new file gets: 0666 minus the
umask (0644 under 022), not mkstemp's 0600, which the rename would keep."""

from __future__ import annotations

import os
import stat
import subprocess
import sys

import pytest

from disk_manager.relocate import write_env_file
from persona.io import atomic_writer, current_umask, write_json
from tests.conftest import ROOT


@pytest.fixture
def umask():
    def set_to(mask: int) -> None:
        os.umask(mask)

    old = os.umask(0o022)
    yield set_to
    os.umask(old)


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.mark.parametrize("mask, expected", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_atomic_writes_honour_the_umask(tmp_path, umask, mask, expected):
    umask(mask)
    assert current_umask() == mask
    write_json(tmp_path / "a.json", {"x": 1})
    with atomic_writer(tmp_path / "b.bin", "wb") as fh:
        fh.write(b"x")
    assert mode(tmp_path / "a.json") == mode(tmp_path / "b.bin") == expected


def test_disk_manager_env_file_honours_the_umask(tmp_path, umask):
    umask(0o022)
    write_env_file(tmp_path / "env.sh", ["export A=1"])
    assert mode(tmp_path / "env.sh") == 0o644
    os.chmod(tmp_path / "env.sh", 0o600)  # an existing file keeps its own mode
    write_env_file(tmp_path / "env.sh", ["export A=2"])
    assert mode(tmp_path / "env.sh") == 0o600


def test_a_whole_run_writes_0644_under_umask_022(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI")}
    env["PYTHONPATH"] = str(ROOT)
    code = ("import os, sys; os.umask(0o022); from persona.cli import main; "
            "sys.argv = ['persona', 'run', '--count', '20', '--workspace', sys.argv[1]]; main()")
    proc = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True,
                          text=True, env=env)
    assert proc.returncode == 0, proc.stderr
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert len(files) > 10
    assert {p.name: oct(mode(p)) for p in files if mode(p) != 0o644} == {}
