"""`persona upload` and `persona jobs`: the real CLI and the real openai SDK against the
loopback server's fine-tuning jobs; kills at the worst moments, counted on the server."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.servers import finetune_jobs
from tests.servers.openai_compat import serve

KEY = "sk-test-DO-NOT-LEAK-9b2e77"
SYSTEM = "Jsi Andrej Babiš."


def dataset(folder: Path, n_train: int = 12, n_val: int = 10, broken: bool = False) -> Path:
    """A final/<persona>/ folder like `persona run` leaves (all.jsonl = train + val here)."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, n in (("train", n_train), ("val", n_val)):
        rows = [{"messages": [{"role": "system", "content": SYSTEM},
                              {"role": "user", "content": f"Otázka {name} {i}?"},
                              {"role": "assistant", "content": f"Odpověď {i}.\n\nAndrej Babiš"}]}
                for i in range(n)]
        if broken and name == "train":
            rows[3]["messages"][2]["content"] = ""
        (folder / f"{name}.jsonl").write_text(
            "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    all_rows = (folder / "train.jsonl").read_text("utf-8") + (folder / "val.jsonl").read_text(
        "utf-8")
    (folder / "all.jsonl").write_text(all_rows, encoding="utf-8")
    return folder


def env() -> dict:
    e = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "OPENAI_BASE_URL")}
    return {**e, "OPENAI_API_KEY": KEY}


def cmd(srv, *args) -> list[str]:
    waits = args[0] == "upload" or args[:2] == ("jobs", "show")
    return [sys.executable, "-m", "persona", *map(str, args), "--base-url", srv.url,
            *(["--poll-interval", "0.1"] if waits else [])]


def persona(srv, *args, check=True) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd(srv, *args), capture_output=True, text=True, env=env(),
                          timeout=120)
    if check and proc.returncode != 0:
        raise AssertionError(f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    assert KEY not in proc.stdout + proc.stderr
    return proc


def counts(srv) -> tuple[int, int]:
    s = finetune_jobs.stats(srv.state)
    return s["files_by_purpose"].get("fine-tune", 0), s["jobs_created"]


def set_jobs(srv, **settings) -> None:
    srv.state.config.finetune = {**(srv.state.config.finetune or {}), **settings}


def kill_when(proc: subprocess.Popen, ready, timeout: float = 30) -> None:
    """SIGKILL `proc` the moment `ready()` is true (it must still be running then)."""
    deadline = time.monotonic() + timeout
    while not ready():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "never got there"
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)


def model_of(stdout: str) -> str:
    lines = [line for line in stdout.splitlines() if line.startswith("fine-tuned model: ")]
    assert len(lines) == 1, stdout
    return lines[0].removeprefix("fine-tuned model: ")


# -- the happy path ----------------------------------------------------------------------------

def test_upload_wait_runs_the_job_to_succeeded_and_prints_the_model_id(tmp_path):
    data = dataset(tmp_path / "final" / "babis")
    with serve(finetune={"job_time": 0.6, "steps": 5}) as srv:
        proc = persona(srv, "upload", data, "--epochs", 3, "--batch-size", 4,
                       "--learning-rate-multiplier", 1.5, "--suffix", "babis", "--seed", 7,
                       "--wait")
        model = model_of(proc.stdout)
        assert model.startswith("ft:gpt-4o-mini-2024-07-18:org-test:babis:")
        assert counts(srv) == (2, 1)
        (job,) = finetune_jobs._jobs(srv.state).jobs.values()
        assert job["hyperparameters"] == {"n_epochs": 3, "batch_size": 4,
                                          "learning_rate_multiplier": 1.5}
        assert job["seed"] == 7 and job["validation_file"]
        assert "Step 5/5" not in proc.stdout  # events go to stderr, the model id to stdout
        assert "The job has successfully completed" in proc.stderr
        record = json.loads((data / "upload.json").read_text())
        entry = record["uploads"][record["last"]]
        assert entry["job"] == {"id": job["id"], "status": "succeeded", "fine_tuned_model": model}
        assert KEY not in (data / "upload.json").read_text()

        again = persona(srv, "upload", data, "--epochs", 3, "--batch-size", 4,
                        "--learning-rate-multiplier", 1.5, "--suffix", "babis", "--seed", 7,
                        "--wait")
        assert model_of(again.stdout) == model and counts(srv) == (2, 1)

        # Other parameters are another job, on the same (not re-uploaded) files.
        other = persona(srv, "upload", data, "--epochs", 4, "--wait")
        assert model_of(other.stdout) != model and counts(srv) == (2, 2)
        assert "already on the server" in other.stderr


# -- kills -------------------------------------------------------------------------------------

def test_sigkill_during_upload_then_rerun_uploads_nothing_twice(tmp_path):
    data = dataset(tmp_path / "final" / "babis")
    with serve(finetune={"job_time": 0.5, "upload_delay": 30}) as srv:
        # The server stores the training file and answers 30 s later: the client is killed
        # holding no file id, the worst moment.
        proc = subprocess.Popen(cmd(srv, "upload", data, "--wait"), env=env(),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        kill_when(proc, lambda: counts(srv)[0] == 1)
        set_jobs(srv, upload_delay=0)
        rerun = persona(srv, "upload", data, "--wait")
        assert counts(srv) == (2, 1)
        assert "already on the server" in rerun.stderr
        model_of(rerun.stdout)


def test_sigkill_between_job_creation_and_its_answer_creates_no_second_job(tmp_path):
    data = dataset(tmp_path / "final" / "babis")
    with serve(finetune={"job_time": 0.5, "create_delay": 30}) as srv:
        proc = subprocess.Popen(cmd(srv, "upload", data, "--wait"), env=env(),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        kill_when(proc, lambda: counts(srv)[1] == 1)
        set_jobs(srv, create_delay=0)
        rerun = persona(srv, "upload", data, "--wait")
        assert counts(srv) == (2, 1)
        assert "exists (not created again)" in rerun.stderr
        model_of(rerun.stdout)


def test_sigkill_while_waiting_then_jobs_show_wait_and_rerun_follow_the_same_job(tmp_path):
    data = dataset(tmp_path / "final" / "babis")
    record = data / "upload.json"

    def job_recorded() -> bool:
        try:
            entry = json.loads(record.read_text())["uploads"]
        except (FileNotFoundError, json.JSONDecodeError):
            return False
        return any((e.get("job") or {}).get("id") for e in entry.values())

    with serve(finetune={"job_time": 2.0}) as srv:
        proc = subprocess.Popen(cmd(srv, "upload", data, "--wait"), env=env(),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        kill_when(proc, job_recorded)
        job_id = next(iter(json.loads(record.read_text())["uploads"].values()))["job"]["id"]
        shown = persona(srv, "jobs", "show", job_id, "--wait")
        model = model_of(shown.stdout)
        rerun = persona(srv, "upload", data, "--wait")
        assert model_of(rerun.stdout) == model
        assert counts(srv) == (2, 1)


# -- refusals ----------------------------------------------------------------------------------

def test_403_training_not_available_is_one_line_exit_1_and_never_reuploads(tmp_path):
    data = dataset(tmp_path / "final" / "babis")
    with serve(finetune={"training_available": False}) as srv:
        for attempt in (1, 2):
            proc = persona(srv, "upload", data, "--wait", check=False)
            assert proc.returncode == 1
            errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
            assert errors == [proc.stderr.strip().splitlines()[-1]]
            assert "403 training_not_available" in errors[0]
            assert "`persona finetune`" in errors[0] and "`persona export`" in errors[0]
            assert "Traceback" not in proc.stderr
            assert counts(srv) == (2, 0)
            assert finetune_jobs.stats(srv.state)["forbidden"] == attempt


def test_a_dataset_validate_rejects_is_not_uploaded(tmp_path):
    data = dataset(tmp_path / "final" / "babis", broken=True)
    with serve() as srv:
        proc = persona(srv, "upload", data, check=False)
        assert proc.returncode == 1
        assert proc.stderr.strip() == (
            f"error: {data / 'train.jsonl'}:4: messages[2].content: content is empty; run "
            f"`persona validate {data / 'train.jsonl'}`; nothing uploaded")
        assert counts(srv) == (0, 0) and not (data / "upload.json").exists()


# -- persona jobs ------------------------------------------------------------------------------

def test_jobs_list_events_and_cancel(tmp_path):
    data = dataset(tmp_path / "final" / "babis")
    with serve(finetune={"job_time": 60}) as srv:
        job_id = persona(srv, "upload", data).stdout.split()[0]
        assert job_id.startswith("ftjob-")
        listed = json.loads(persona(srv, "jobs", "list", "--json").stdout)
        assert [j["id"] for j in listed] == [job_id]
        assert not list(data.glob("*.lock")) and not list(data.glob(".persona.lock"))
        # with a test split in all.jsonl, moderation says how many of its examples go up
        test_rows = (data / "val.jsonl").read_text("utf-8").splitlines()[:3]
        (data / "all.jsonl").write_text((data / "all.jsonl").read_text("utf-8")
                                        + "".join(r + "\n" for r in test_rows), "utf-8")
        again = persona(srv, "upload", data)  # the same upload: its record answers
        assert "moderation: 25 examples of all.jsonl (the 22 uploaded among them)" in \
            " ".join(again.stderr.split())
        assert persona(srv, "jobs", "cancel", job_id).stdout.strip() == f"{job_id} · cancelled"
        again = persona(srv, "jobs", "cancel", job_id, check=False)
        assert again.returncode == 2 and again.stderr.strip() == (
            f"error: job {job_id} has already been cancelled: nothing to cancel")
        events = persona(srv, "jobs", "events", job_id).stdout
        assert "Fine-tuning job cancelled" in events.splitlines()[-1]
        shown = persona(srv, "jobs", "show", job_id, "--wait", check=False)
        assert shown.returncode == 1 and f"error: job {job_id} ended cancelled" in shown.stderr
        # A cancelled job is not followed again: the rerun creates a new one on the same files.
        set_jobs(srv, job_time=0.3)
        rerun = persona(srv, "upload", data, "--wait")
        model_of(rerun.stdout)
        assert counts(srv) == (2, 2)
        assert finetune_jobs.stats(srv.state)["cancels"] == 1  # the second cancel was not sent


@pytest.mark.parametrize("args", [("jobs", "list"), ("jobs", "show", "ftjob-x")])
def test_jobs_need_a_key_or_a_base_url(args, tmp_path):
    e = env()
    e.pop("OPENAI_API_KEY")
    proc = subprocess.run([sys.executable, "-m", "persona", *args], capture_output=True,
                          text=True, env=e, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.strip() == ("error: no API key: set OPENAI_API_KEY, or pass --base-url "
                                   "for a server that needs none")


# -- moderation before upload ------------------------------------------------------------------

def flagged_dataset(folder: Path) -> Path:
    """A dataset whose one answer carries the test server's planted violence marker."""
    dataset(folder)
    lines = (folder / "train.jsonl").read_text(encoding="utf-8").splitlines()
    row = json.loads(lines[5])
    row["messages"][2]["content"] = "Zničím je. [[flag:violence]]\n\nAndrej Babiš"
    lines[5] = json.dumps(row, ensure_ascii=False)
    (folder / "train.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (folder / "all.jsonl").write_text("\n".join(lines) + "\n" + (folder / "val.jsonl")
                                      .read_text("utf-8"), encoding="utf-8")
    return folder


def test_moderation_warns_and_uploads_or_with_strict_refuses(tmp_path):
    data = flagged_dataset(tmp_path / "final" / "babis")
    with serve(finetune={"job_time": 0.3}) as srv:
        strict = persona(srv, "upload", data, "--strict", check=False)
        assert strict.returncode == 1 and counts(srv) == (0, 0)
        assert strict.stderr.strip().splitlines()[-1] == (
            f"error: {data / 'all.jsonl'}: moderation: 1 of 22 examples flagged by openai "
            f"(violence 1); see {data / 'moderation'}; nothing uploaded (without --strict this "
            "is a warning)")
        assert json.loads((data / "moderation" / "flagged.jsonl").read_text())["line"] == 6

        warned = persona(srv, "upload", data, "--wait")
        assert "warning: moderation: 1 of 22 examples flagged by openai (violence 1)" in \
            warned.stderr
        model_of(warned.stdout)
        assert counts(srv) == (2, 1)


def test_a_single_file_is_moderated_into_its_own_folder(tmp_path):
    data = flagged_dataset(tmp_path / "final" / "babis")
    with serve() as srv:
        proc = persona(srv, "upload", data / "train.jsonl", "--strict", check=False)
        assert proc.returncode == 1 and counts(srv) == (0, 0)
        assert "moderation: 1 of 12 examples flagged by openai (violence 1)" in proc.stderr
        assert json.loads((data / "moderation" / "train" / "flagged.jsonl").read_text()
                          )["line"] == 6
