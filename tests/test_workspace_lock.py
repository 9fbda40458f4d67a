"""The workspace lock: a second command is refused naming the holder; a dead holder's lock is
taken over; the lock file goes away with its holder's context."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from persona.errors import WorkspaceError
from persona.workspace import LOCK_NAME, workspace_lock
from tests.conftest import ROOT, run_persona

HOLD = ("import sys, time\nfrom persona.workspace import workspace_lock\n"
        "with workspace_lock(sys.argv[1], 'persona fill'):\n"
        "    print('locked', flush=True)\n    time.sleep(120)\n")


def start_holder(ws: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(ws)], stdout=subprocess.PIPE,
                            text=True, env=env)
    assert proc.stdout.readline().strip() == "locked"
    return proc


def stop(proc: subprocess.Popen, sig=signal.SIGTERM) -> None:
    proc.send_signal(sig)
    proc.wait()
    proc.stdout.close()


def test_lock_file_names_the_holder_and_goes_away(tmp_path):
    with workspace_lock(tmp_path, "persona run") as previous:
        assert previous is None
        info = json.loads((tmp_path / LOCK_NAME).read_text())
        assert info["pid"] == os.getpid() and info["command"] == "persona run"
        assert info["since"].endswith("UTC")
        with workspace_lock(tmp_path, "persona run"):  # nested in one process: fine
            pass
        assert (tmp_path / LOCK_NAME).exists()
    assert not (tmp_path / LOCK_NAME).exists()


def test_second_holder_is_refused_with_who_holds_it(tmp_path):
    holder = start_holder(tmp_path)
    try:
        with pytest.raises(WorkspaceError) as e, workspace_lock(tmp_path, "persona run"):
            pass
        assert f"in use by pid {holder.pid} (persona fill, since " in str(e.value)
        proc = run_persona("run", "--count", "20", "--workspace", tmp_path, cwd=tmp_path,
                           check=False)
        assert proc.returncode == 2 and "Traceback" not in proc.stderr
        assert f"in use by pid {holder.pid} (persona fill" in proc.stderr
        assert not (tmp_path / "final").exists()  # refused before writing anything
    finally:
        stop(holder)


def test_lock_of_a_killed_process_is_taken_over(tmp_path):
    holder = start_holder(tmp_path)
    stop(holder, signal.SIGKILL)  # no cleanup ran: the file is still there, the flock is not
    assert json.loads((tmp_path / LOCK_NAME).read_text())["pid"] == holder.pid
    proc = run_persona("run", "--count", "20", "--workspace", tmp_path, cwd=tmp_path,
                       check=False)
    assert proc.returncode == 0, proc.stderr
    assert f"took over the workspace lock left by pid {holder.pid}" in " ".join(
        proc.stderr.split())
    assert (tmp_path / "final" / "babis" / "train.jsonl").exists()
    assert not (tmp_path / LOCK_NAME).exists()


@pytest.mark.parametrize("path, message", [("/proc/x", "cannot use as a workspace"),
                                           ("/dev/null", "not a folder"),
                                           ("/sys/kernel", "cannot use as a workspace")])
def test_paths_that_cannot_be_a_workspace(path, message):
    with pytest.raises(WorkspaceError, match=message), workspace_lock(Path(path), "x"):
        pass
