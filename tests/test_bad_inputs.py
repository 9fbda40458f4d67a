"""The bad-input table, run: every case of tests/bad_inputs/ through the real CLI.

Each case runs in a subprocess (`python -m persona ...` or `python -m disk_manager ...`) with a
fresh temporary workspace as its cwd. The cases selected for this session run once, four at a
time, in a session fixture; each parametrized test then asserts on its own case's result, so
`-k` picks single cases and a failure names its case id.

Asserted for every case: the exit code, an `error: …` line when it is 2 (click's own usage
errors too), at most `max_lines` non-blank lines on stderr, no
"Traceback" anywhere in the output, the expected text on stderr, and that every file that
existed before the command (an earlier run's output in the workspace, the shared dataset) is
byte-identical after it.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import os
import pkgutil
import re
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

import tests.bad_inputs as table
from tests.bad_inputs import Case

ROOT = Path(__file__).resolve().parent.parent
WORKERS = 4  # subprocess start-up is most of a case's time; a few at once hide it
DATASET_COUNT = 60


def collect() -> list[Case]:
    cases: list[Case] = []
    for info in sorted(pkgutil.iter_modules(table.__path__), key=lambda i: i.name):
        module = importlib.import_module(f"tests.bad_inputs.{info.name}")
        cases += getattr(module, "CASES", [])
    return cases


CASES = collect()


@dataclass
class Outcome:
    proc: subprocess.CompletedProcess | None
    changed: list[str]
    error: BaseException | None = None
    seconds: float = 0.0


def snapshot(*folders: Path) -> dict[str, str]:
    """sha256 of every file under `folders` (symlinks not followed)."""
    out = {}
    for folder in folders:
        for path in sorted(folder.rglob("*")):
            if path.is_file() and not path.is_symlink():
                out[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def base_env(tiktoken_dir: Path) -> dict[str, str]:
    drop = ("OPENAI_API_KEY", "OPENAI_BASE_URL", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env.update(TIKTOKEN_CACHE_DIR=str(tiktoken_dir), COLUMNS="200", NO_COLOR="1",
               TERM="dumb", HF_HUB_DISABLE_TELEMETRY="1")
    return env


def argv(case: Case) -> list[str]:
    if case.prog == "persona":
        return [sys.executable, "-m", "persona"]
    if case.prog == "disk-manager":
        return [sys.executable, "-m", "disk_manager"]
    raise ValueError(f"{case.id}: unknown prog {case.prog!r}")


def run_case(case: Case, ws: Path, data: Path, env: dict[str, str]) -> Outcome:
    cleanup = None
    try:
        if case.workspace:
            shutil.copytree(data.parent.parent, ws, dirs_exist_ok=True, symlinks=True)
        if case.setup is not None:
            cleanup = case.setup(ws)
        before = snapshot(ws, data)
        args = [a.replace("{ws}", str(ws)).replace("{data}", str(data)) for a in case.args]
        extra = {k: v.replace("{ws}", str(ws)) for k, v in case.env.items()}
        start = time.monotonic()
        try:
            proc = subprocess.run(read_only_wrap(case, ws) + argv(case) + args, cwd=ws,
                                  env={**env, **extra},
                                  capture_output=True, text=True, errors="replace",
                                  timeout=case.timeout, stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired as e:
            raise AssertionError(f"{case.id}: still running after {case.timeout} s") from e
        after = snapshot(ws, data)
        changed = [p for p, digest in before.items() if after.get(p) != digest]
        return Outcome(proc, changed, seconds=time.monotonic() - start)
    except BaseException as e:  # reported by the case's own test, not by the fixture
        return Outcome(None, [], e)
    finally:
        if callable(cleanup):
            cleanup()


def skipped_as_root(case: Case) -> bool:
    if os.geteuid() != 0:
        return False
    return not case.root_ok or (bool(case.read_only) and not can_unshare())


@functools.cache
def can_unshare() -> bool:
    """Root may make a read-only bind mount in its own mount namespace (not every container
    lets it)."""
    if not shutil.which("unshare"):
        return False
    try:
        return subprocess.run(["unshare", "-m", "true"], capture_output=True,
                              timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def read_only_wrap(case: Case, ws: Path) -> list[str]:
    """As root, the case's read-only folder as a read-only bind mount around the command."""
    if not case.read_only or os.geteuid() != 0:
        return []
    script = ('mount --bind "$1" "$1" && mount -o remount,bind,ro "$1" "$1" && shift && '
              'exec "$@"')
    return ["unshare", "-m", "sh", "-c", script, "sh", str(ws / case.read_only)]


@pytest.fixture(scope="session")
def dataset(tmp_path_factory, tiktoken_cache) -> Path:
    """A small finished workspace (`persona run --count 60`); `{data}` is its final/babis."""
    ws = tmp_path_factory.mktemp("bad-inputs-dataset")
    proc = subprocess.run([sys.executable, "-m", "persona", "run", "--count",
                           str(DATASET_COUNT), "--workspace", str(ws)], cwd=ws,
                          env=base_env(tiktoken_cache), capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return ws / "final" / "babis"


@pytest.fixture(scope="session")
def outcomes(request, tmp_path_factory, dataset, tiktoken_cache) -> dict[str, Outcome]:
    """Run every case this session selected (not the whole table under -k), four at a time."""
    wanted = [item.callspec.params["case"] for item in request.session.items
              if getattr(item, "originalname", "") == "test_bad_input"]
    wanted = [c for c in wanted if not skipped_as_root(c)]
    env = base_env(tiktoken_cache)

    def one(case: Case) -> tuple[str, Outcome]:
        ws = tmp_path_factory.mktemp("bad-" + re.sub(r"[^\w.-]", "_", case.id)[:60])
        return case.id, run_case(case, ws, dataset, env)

    with ThreadPoolExecutor(WORKERS) as pool:
        return dict(pool.map(one, wanted))


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input(case: Case, outcomes: dict[str, Outcome]) -> None:
    if skipped_as_root(case):
        pytest.skip("root ignores file permissions")
    result = outcomes[case.id]
    if result.error is not None:
        raise result.error
    proc = result.proc
    shown = (f"{case.id}: exit {proc.returncode}\nstdout:\n{proc.stdout[-2000:]}\n"
             f"stderr:\n{proc.stderr[-4000:]}")
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    checks = [
        ("no traceback", "Traceback" not in proc.stderr + proc.stdout),
        (f"exit code {case.exit}", proc.returncode == case.exit),
        (f"at most {case.max_lines} lines on stderr", len(lines) <= case.max_lines),
        (f"{case.stderr!r} on stderr",
         case.stderr is None or case.stderr.lower() in proc.stderr.lower()),
        ("an 'error: …' line (usage errors too)",
         case.exit != 2 or any(line.startswith("error:") for line in lines)),
        (f"no earlier file changed, but {result.changed}", not result.changed),
    ]
    failed = [what for what, ok in checks if not ok]
    if failed:
        pytest.fail(f"expected {'; '.join(failed)}\n{shown}", pytrace=False)


def test_case_ids_are_unique() -> None:
    ids = [c.id for c in CASES]
    assert len(ids) == len(set(ids)), sorted({i for i in ids if ids.count(i) > 1})


def test_every_command_is_in_the_table() -> None:
    """A new command joins the table: each one has at least one bad-input case."""
    from disk_manager.cli import cli as dm
    from persona.cli import cli as persona

    covered = {(c.prog, c.args[0]) for c in CASES if c.args}
    missing = [f"{prog} {name}" for prog, group in (("persona", persona), ("disk-manager", dm))
               for name in group.list_commands(None) if (prog, name) not in covered]
    assert not missing, f"commands without a bad-input case: {missing}"
