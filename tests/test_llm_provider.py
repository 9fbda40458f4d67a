"""The OpenAI-compatible provider: the real CLI and the real SDK against the loopback server."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from persona import prompts
from persona.checks.cost import generation_cost
from persona.checks.validate import validate_file
from persona.providers.rate_limit import RateLimiter
from tests.conftest import ROOT
from tests.servers.openai_compat import serve

KEY = "sk-test-DO-NOT-LEAK-4f1c9a"
FINAL = ("all.jsonl", "train.jsonl", "val.jsonl", "test.jsonl", "meta.jsonl")


def persona_cmd(*args) -> list[str]:
    return [sys.executable, "-m", "persona", *map(str, args)]


def llm_env() -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "OPENAI_BASE_URL")}
    env["OPENAI_API_KEY"] = KEY
    return env


def run_llm(srv, ws: Path, *args, check=True) -> subprocess.CompletedProcess:
    proc = subprocess.run(persona_cmd(*args, "--provider", "openai", "--base-url", srv.url,
                                      "--workspace", ws),
                          capture_output=True, text=True, env=llm_env(), timeout=120)
    if check and proc.returncode != 0:
        raise AssertionError(f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc


def with_bank(ws: Path) -> Path:
    """A workspace holding the committed template bank, so stage 1 sends nothing."""
    (ws / "templates").mkdir(parents=True)
    shutil.copy(ROOT / "templates" / "babis.jsonl", ws / "templates" / "babis.jsonl")
    return ws


def assert_no_key(ws: Path, *texts: str) -> None:
    for text in texts:
        assert KEY not in text
    for path in ws.rglob("*"):
        if path.is_file():
            assert KEY.encode() not in path.read_bytes(), path


# -- prompts -------------------------------------------------------------------------------

def test_rate_limiter_spaces_requests_evenly():
    now = [0.0]
    lim = RateLimiter(rpm=600, tpm=60_000, clock=lambda: now[0])
    waits = [lim.book(tokens=100) for _ in range(5)]
    # 600/min = one per 0.1 s; 100 tokens at 60,000/min = 0.1 s too; paced at 97 %
    assert waits == pytest.approx([0.0, 0.1, 0.2, 0.3, 0.4], rel=0.04)
    assert waits[1] > 0.1


# -- end to end ----------------------------------------------------------------------------

def test_run_with_faults_completes_validates_and_never_leaks_the_key(tmp_path):
    ws = tmp_path / "ws"
    with serve(error_rate=0.1, malformed_rate=0.2, hang=2.0, seed=7) as srv:
        proc = run_llm(srv, ws, "run", "--persona", "babis", "--count", 300,
                       "--concurrency", 32, "--timeout", 1, "--model", "gpt-4o-mini")
        stats = srv.stats()
    assert stats["by_status"].get("429") and stats["by_status"].get("500")
    assert validate_file(ws / "final" / "babis" / "train.jsonl").ok
    report = json.loads((ws / "final" / "babis" / "report.json").read_text())
    assert report["count"] >= 290  # what still fails after retries is counted, not kept
    fill_stats = report["stages"]["fill"]
    assert fill_stats["retried"] > 0 and "rejected" in fill_stats
    usage = report["stages"]["llm_usage"]
    assert usage["fill"]["items"] >= 300 and usage["fill"]["cost_usd"] > 0
    assert usage["fill"]["requests"] < usage["fill"]["items"] / 4  # several per request
    # malformed answers were asked again within the provider call, and counted
    assert usage["fill"]["malformed_reasked"] > 20 and usage["questions"]["malformed_reasked"]
    batch = json.loads((ws / "generated" / "babis" / "answers" / "batch_0001.stats.json")
                       .read_text())["usage"]  # the one batch's own usage
    assert batch["requests"] == usage["fill"]["requests"] and batch["cost_usd"] > 0
    assert batch["prompt_tokens"] == usage["fill"]["prompt_tokens"]
    assert "retried" in proc.stderr
    assert_no_key(ws, proc.stdout, proc.stderr)


def test_killed_run_resumes_without_resending_answered_requests(tmp_path):
    """Three batches in flight at once (fill b + 1 and the questions of b overlap): killed
    mid-run, the rerun sends only what had no answer and writes the same bytes."""
    clean, killed = with_bank(tmp_path / "clean"), with_bank(tmp_path / "killed")
    batches = ("--batch-size", 100)
    with serve(seed=1) as srv:
        run_llm(srv, clean, "run", "--count", 300, "--concurrency", 8, *batches)
        clean_total = srv.stats()["items_total"]  # items asked (8 per request)
    with serve(latency=0.02, seed=1) as srv:
        proc = subprocess.Popen(persona_cmd("run", "--count", 300, "--concurrency", 4,
                                            *batches, "--provider", "openai", "--base-url",
                                            srv.url, "--workspace", killed),
                                env=llm_env(), stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        deadline = time.time() + 60
        while srv.stats()["answered_by_kind"].get("questions", 0) < 5 and \
                time.time() < deadline:
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        before = srv.state.snapshot()
        cache = killed / "generated" / "babis" / "cache" / "requests.jsonl"
        cached = sum(1 for _ in cache.open(encoding="utf-8"))
        assert 40 < cached < clean_total - 100  # killed with both stages under way
        run_llm(srv, killed, "run", "--count", 300, "--concurrency", 8, *batches)
        after = srv.state.snapshot()
    resent = [d for d in before["answered_items"] if after["items"][d] > before["items"][d]]
    # Only items of the requests still on the wire at the kill (at most --concurrency of 8
    # items) may be asked again.
    assert len(resent) <= 4 * 8
    assert after["items_total"] - before["items_total"] <= clean_total - cached + 4 * 8
    for name in FINAL:
        assert (killed / "final" / "babis" / name).read_bytes() == \
            (clean / "final" / "babis" / name).read_bytes(), name


def fill_rounds(srv, babis, cache: Path, count: int = 80, seed: int = 5):
    """One fill batch through the stage's own loop, in process: (answers, stage stats,
    [(items asked, requests the server saw) per provider.fill call], provider stats)."""
    from persona.dedup import DedupIndex
    from persona.providers.base import FillRequest
    from persona.providers.openai_compat import OpenAICompatProvider
    from persona.stages import fill as stage
    from persona.stages import templates as templates_stage

    bank = templates_stage.load(ROOT / "templates" / "babis.jsonl", babis)
    styles = stage.style_schedule(babis.style.mix, count, seed)
    slips = stage.slip_schedule(babis.style.slip_rate, count, seed)
    slots = [FillRequest(i, f"babis-a{i + 1:06d}", bank[t], styles[i], i in slips)
             for i, t in enumerate(stage.template_schedule(len(bank), 0, count, seed))]
    # one item per request: the server's request count is the items asked
    prov = OpenAICompatProvider(base_url=srv.url, cache_dir=cache, concurrency=8, per_request=1)
    rounds, fill = [], prov.fill

    def counted(spec, requests, s):
        before = srv.stats()["total"]
        out = fill(spec, requests, s)
        rounds.append((len(requests), srv.stats()["total"] - before))
        return out

    prov.fill = counted
    try:
        answers, _, stats = stage.fill_batch(babis, prov, slots, bank,
                                             DedupIndex(babis.persona.signature), seed)
    finally:
        prov.close()
    return answers, stats, rounds, prov.stats


def test_malformed_answers_are_reasked_within_the_call_and_replayed_by_a_rerun(
        tmp_path, babis, monkeypatch):
    from persona.providers import openai_compat
    from persona.providers.llm_cache import usage_by_kind

    def malformed(reasons: dict) -> int:
        return sum(n for r, n in reasons.items() if "JSON" in r or "lacks" in r)

    with serve(malformed_rate=0.3, seed=2) as srv:
        answers, stats, rounds, prov = fill_rounds(srv, babis, tmp_path / "cache")
        sent = srv.stats()["total"]
        # A rerun on the same cache replays every ask and re-ask and sends nothing.
        again, stats2, rounds2, prov2 = fill_rounds(srv, babis, tmp_path / "cache")
        assert srv.stats()["total"] == sent
    with serve(malformed_rate=0.3, seed=2) as srv:  # the stage's rounds alone, for comparison
        monkeypatch.setattr(openai_compat, "MAX_REASKS", 0)
        _, stats0, rounds0, prov0 = fill_rounds(srv, babis, tmp_path / "cache0")
    assert prov["malformed_reasked"] >= 10 and prov0["malformed_reasked"] == 0
    # Malformed answers are re-asked within the round: the server saw one request per item
    # plus one per re-ask (no server errors here); later rounds hold only the few answers
    # the checks rejected. Without re-asks the stage needed more rounds.
    assert rounds[0][0] == 80 and sum(n for _, n in rounds) == sent
    assert sent == sum(n for n, _ in rounds) + prov["malformed_reasked"]
    assert sum(n for n, _ in rounds[1:]) <= 8
    assert len(rounds0) > len(rounds) and stats["retried"] < stats0["retried"]
    assert malformed(stats["reasons"]) < malformed(stats0["reasons"]) / 5
    assert prov["requests"] == sent and prov2["requests"] == 0
    assert prov2["malformed_reasked"] == prov["malformed_reasked"]
    assert (again, stats2["retried"], rounds2) == (answers, stats["retried"],
                                                   [(n, 0) for n, _ in rounds])
    assert len(answers) == 80
    assert usage_by_kind(tmp_path / "cache")["fill"]["malformed_reasked"] == \
        prov["malformed_reasked"]


def test_rpm_keeps_the_observed_rate_under_the_limit(tmp_path):
    ws = with_bank(tmp_path / "ws")
    with serve() as srv:
        run_llm(srv, ws, "fill", "--count", 40, "--batch-size", 40, "--rpm", 600,
                "--concurrency", 16, "--per-request", 1)
        times = sorted(srv.stats()["times"])[:40]  # the first asks (retries come later)
    rate = (len(times) - 1) / (times[-1] - times[0]) * 60
    assert len(times) == 40
    assert 540 <= rate <= 600


def test_max_cost_stops_cleanly_and_keeps_finished_batches(tmp_path):
    ws = with_bank(tmp_path / "ws")
    with serve() as srv:
        proc = run_llm(srv, ws, "fill", "--count", 300, "--batch-size", 100,
                       "--max-cost", 0.025, "--model", "gpt-4o-mini", "--per-request", 1,
                       check=False)
        assert proc.returncode == 3, proc.stderr
        assert "max-cost" in proc.stderr
        answers = ws / "generated" / "babis" / "answers"
        assert (answers / "batch_0001.jsonl").exists()
        assert not (answers / "batch_0003.jsonl").exists()
        sent = srv.stats()["total"]
        run_llm(srv, ws, "fill", "--count", 300, "--batch-size", 100, "--max-cost", 1,
                "--per-request", 1)
        assert (answers / "batch_0003.jsonl").exists()
        assert srv.stats()["total"] - sent < 300  # the first run's answers came from the cache


def test_dry_run_sends_nothing_and_plain_json_fallback(tmp_path):
    ws = with_bank(tmp_path / "ws")
    with serve(json_schema=False) as srv:
        proc = run_llm(srv, ws, "run", "--count", 3000, "--dry-run", "--json")
        assert srv.stats()["total"] == 0
        rows = json.loads(proc.stdout)
        assert [r["stage"] for r in rows] == ["fill", "questions"]
        assert rows[0]["per_request"] == 8 and rows[0]["requests"] < 3000 / 6
        assert rows[0]["one_per_request"]["requests"] == 3000 and rows[0]["cost_usd"] > 0
        run_llm(srv, ws, "fill", "--count", 20, "--batch-size", 20)
        stats = srv.stats()
    assert stats["by_status"]["400"] >= 1  # json_schema refused once, then plain JSON
    answers = ws / "generated" / "babis" / "answers" / "batch_0001.jsonl"
    assert len(answers.read_text(encoding="utf-8").splitlines()) == 20


# -- Batch API -----------------------------------------------------------------------------

def test_batch_api_run_completes_validates_and_is_priced_at_the_discount(tmp_path):
    ws = with_bank(tmp_path / "ws")
    with serve(error_rate=0.1, malformed_rate=0.2, batch_time=0.3, seed=3) as srv:
        proc = run_llm(srv, ws, "run", "--count", 300, "--batch-api", "--model", "gpt-4o-mini")
        stats = srv.stats()
        dry = {flag: json.loads(run_llm(srv, ws, "run", "--count", 3000, "--dry-run", "--json",
                                        *flag).stdout)
               for flag in (("--per-request", 1), ("--batch-api",))}  # one item per request
    assert stats["total"] == 0  # nothing went through the online endpoint
    assert stats["batches"] >= 4  # fill and questions, each with retry rounds
    assert stats["batch_lines"]["fill"] > 300  # malformed answers were asked again
    assert validate_file(ws / "final" / "babis" / "train.jsonl").ok
    report = json.loads((ws / "final" / "babis" / "report.json").read_text())
    assert report["count"] >= 290 and report["stages"]["fill"]["retried"] > 0
    records = sorted((ws / "generated" / "babis" / "batches").glob("*.json"))
    assert len(records) == stats["batches"]
    assert {json.loads(p.read_text())["status"] for p in records} == {"completed"}
    usage = report["stages"]["llm_usage"]["fill"]
    full = generation_cost("gpt-4o-mini", usage["prompt_tokens"], usage["completion_tokens"])
    assert usage["cost_usd"] == pytest.approx(full / 2, rel=1e-3)
    assert dry[("--batch-api",)][0]["cost_usd"] == pytest.approx(
        dry[("--per-request", 1)][0]["cost_usd"] / 2, rel=1e-3)
    assert_no_key(ws, proc.stdout, proc.stderr)


def test_batch_api_killed_while_polling_resumes_the_recorded_batch(tmp_path):
    ws = with_bank(tmp_path / "ws")
    records = ws / "generated" / "babis" / "batches"
    with serve(batch_time=3.0, seed=1) as srv:
        proc = subprocess.Popen(persona_cmd("run", "--count", 300, "--batch-api",
                                            "--provider", "openai", "--base-url", srv.url,
                                            "--workspace", ws),
                                env=llm_env(), stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        deadline = time.time() + 60
        while not list(records.glob("fill-*.json")) and time.time() < deadline:
            time.sleep(0.02)
        time.sleep(0.3)  # polling now
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert srv.stats()["batches"] == 1
        first = json.loads(next(records.glob("fill-*.json")).read_text())["batch_id"]
        srv.state.config.batch_time = 0.2  # later batches finish sooner
        run_llm(srv, ws, "run", "--count", 300, "--batch-api")
        stats = srv.state.snapshot()
    assert len(stats["batch_inputs"]) == len(set(stats["batch_inputs"]))  # no round twice
    assert stats["batch_lines"]["fill"] < 400  # the killed round's 300 were not sent again
    # the killed round's record was resumed, not replaced (a later retry round of a few
    # near-duplicate answers may add its own record)
    fill_records = [json.loads(p.read_text()) for p in records.glob("fill-*.json")]
    assert {"batch_id": first, "input_file_id": "file-000001", "kind": "fill",
            "model": "gpt-5.4-mini", "requests": 300, "status": "completed"} in fill_records
    assert validate_file(ws / "final" / "babis" / "train.jsonl").ok


def test_templates_that_never_parse_go_to_invalid_and_stop_the_stage(tmp_path):
    ws = tmp_path / "ws"
    with serve(malformed_rate=1.0, seed=4) as srv:
        proc = run_llm(srv, ws, "templates", "--count", 20, check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "no valid template" in proc.stderr.strip().splitlines()[-1]
    invalid = (ws / "generated/babis/invalid/templates/templates.jsonl").read_text().splitlines()
    assert invalid and all(json.loads(line)["reason"] for line in invalid)
    assert not (ws / "templates/babis.jsonl").exists()


def test_workspace_prompt_replaces_the_builtin_one_and_is_asked_anew(tmp_path, monkeypatch):
    ws = with_bank(tmp_path / "ws")
    args = ("questions", "--persona", "babis", "--model", "gpt-4o-mini", "--force")
    with serve(seed=3) as srv:
        run_llm(srv, ws, "run", "--persona", "babis", "--count", 20, "--model", "gpt-4o-mini")
        first = srv.stats()["total"]
        run_llm(srv, ws, *args)  # the questions again: every request answered from the cache
        assert srv.stats()["total"] == first
        edited = prompts.builtin_text("questions").replace("one or two sentences",
                                                           "one short sentence")
        (ws / "prompts").mkdir()
        (ws / "prompts" / "questions.md").write_text(edited, encoding="utf-8")
        items = srv.stats()["items_total"]
        run_llm(srv, ws, *args)
        assert srv.stats()["items_total"] - items >= 20  # the questions were asked again
        (ws / "prompts" / "questions.md").write_text("# System\nno user part\n",
                                                     encoding="utf-8")
        bad = run_llm(srv, ws, *args, check=False)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert "prompts/questions.md: a prompt needs a '# System' and a '# User'" in bad.stderr
    monkeypatch.setattr(prompts, "_folder", ws / "prompts")
    (ws / "prompts" / "questions.md").write_text(edited, encoding="utf-8")
    assert prompts.load("questions")["system"].count("one short sentence") == 1
    prompts.use_folder(None)
    assert "one short sentence" not in prompts.load("questions")["system"]


def test_init_writes_the_builtin_prompts(tmp_path, cli):
    cli("init", "mine", "-o", tmp_path / "mine.toml")
    for stage in prompts.STAGES:
        assert (tmp_path / "prompts" / f"{stage}.md").read_text(encoding="utf-8") == \
            prompts.builtin_text(stage)
