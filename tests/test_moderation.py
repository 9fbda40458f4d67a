"""`persona moderate`: 30 harmful answers planted into 3,000 pairs are listed by line and
category (offline screen, the test server's /v1/moderations and its Llama Guard mode); the
built-in data gives no false flag; --fix leaves clean, valid, consistent files; PII never
appears unmasked; a killed run resumes without re-sending answered inputs."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT, run_persona
from tests.moderation_data import build, plant, rows
from tests.servers.openai_compat import serve

PII_VALUES = ["jan.novak@example.cz", "+420 603 123 456", "710319/2745",
              "CZ65 0800 0000 1920 0014 5399", "4111 1111 1111 1111",
              "https://www.example.org/profil/jan-novak"]


# 30 harmful texts planted among this many pairs (the false-flag check of the built-in
# personas runs on 3,000 pairs each, below)
PLANTED_COUNT = 1000


@pytest.fixture(scope="session")
def planted_master(tmp_path_factory):
    root = tmp_path_factory.mktemp("planted")
    final = build(root, "babis", PLANTED_COUNT)
    return root, plant(final, rows("planted.jsonl"))


@pytest.fixture
def planted(planted_master, tmp_path):
    """A fresh copy of the planted workspace; (final folder, {line: category})."""
    root, lines = planted_master
    shutil.copytree(root, tmp_path / "ws")
    return tmp_path / "ws" / "final" / "babis", lines


def _flagged(out_dir: Path) -> dict[int, list[str]]:
    return {r["line"]: r["categories"] for r in map(json.loads, (out_dir / "flagged.jsonl")
                                                    .read_text(encoding="utf-8").splitlines())}


def _lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines()


def test_offline_lists_every_planted_answer_by_line_and_category(planted, cli):
    final, lines = planted
    result = cli("moderate", final, "--json", ok=False)
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert report["heuristic"] is True and report["provider"] == "offline"
    flagged = _flagged(final / "moderation")
    assert set(flagged) == set(lines)
    for line, category in lines.items():
        assert category in flagged[line], (line, category, flagged[line])
    assert report["flagged"] == 30 and report["total"] == PLANTED_COUNT
    assert "heuristic" in report["verdict"] and "likely" in report["verdict"]
    clean = _lines(final / "moderation" / "clean.jsonl")
    assert len(clean) + len(flagged) == PLANTED_COUNT


def test_test_server_moderation_lists_them_with_faults_and_in_few_requests(planted, cli):
    final, lines = planted
    with serve(error_rate=0.05, malformed_rate=0.05, hang=0.3) as srv:
        result = cli("moderate", final, "--base-url", srv.url, "--timeout", "1", "--json",
                     ok=False)
        stats = srv.stats()
    assert result.exit_code == 1, result.output
    report = json.loads(result.stdout)
    assert report["provider"] == "openai" and report["heuristic"] is False
    assert report["model"] == "omni-moderation-latest"
    flagged = _flagged(final / "moderation")
    assert set(flagged) == set(lines)
    for line, category in lines.items():
        assert category in flagged[line]
    # 5,383 distinct texts, 32 per request: 169 requests, plus the malformed answers
    # (5 %, answered 200 but one result short) asked again
    batches = -(-report["texts_checked"] // 32)
    assert batches <= stats["answered_by_kind"]["moderations"] <= batches * 1.15
    assert {"429", "500"} & set(stats["by_status"])  # faults were injected and survived


def test_threshold_on_scores(planted, cli):
    final, _ = planted
    with serve() as srv:
        report = json.loads(cli("moderate", final, "--base-url", srv.url, "--threshold",
                                "0.99", "--json").stdout)
    assert report["flagged"] == 0 and report["threshold"] == 0.99


def test_llamaguard_maps_s_codes_to_category_names(planted, cli, tmp_path):
    final, planted_lines = planted
    # One request per text: a file of the 30 planted examples and 120 others keeps it short.
    all_lines = _lines(final / "all.jsonl")
    keep = sorted(set(planted_lines) | set(range(1, 121)))
    (tmp_path / "subset.jsonl").write_text("".join(all_lines[i - 1] + "\n" for i in keep))
    lines = {n: planted_lines[i] for n, i in enumerate(keep, 1) if i in planted_lines}
    with serve(malformed_rate=0.1, error_rate=0.05, hang=0.3) as srv:
        result = cli("moderate", tmp_path / "subset.jsonl", "--provider", "llamaguard",
                     "--base-url", srv.url, "--model", "test-llama-guard-3", "--timeout", "1",
                     "--json", ok=False)
    report = json.loads(result.stdout)
    flagged = _flagged(tmp_path / "moderation")
    assert set(flagged) == set(lines)
    names = {"violence": "violent crimes", "illicit": "non-violent crimes", "hate": "hate",
             "harassment": "hate", "self-harm": "suicide & self-harm",
             "sexual": "sexual content"}
    for line, category in lines.items():
        assert names[category] in flagged[line]
    assert report["provider"] == "llamaguard"


def test_builtin_personas_give_no_false_flag_offline(builtin_finals, cli):
    for final in builtin_finals:
        report = json.loads(cli("moderate", final, "--json").stdout)
        assert report["flagged"] == 0 and report["pii"] == 0, report["by_category"]
        assert report["total"] == 3000


def _split_ids(final: Path) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for m in map(json.loads, _lines(final / "meta.jsonl")):
        out.setdefault(m["split"], set()).add(m["id"])
    return out


@pytest.mark.parametrize("mode", ["drop", "regenerate"])
def test_fix_on_a_final_folder_leaves_clean_consistent_files(planted, cli, mode):
    final, lines = planted
    before = _split_ids(final)
    result = cli("moderate", final, "--fix", mode, "--json")  # exit 0: fixed files clean
    fix = json.loads(result.stdout)["fix"]
    assert fix["flagged"] == 30
    assert (fix["regenerated"], fix["dropped"]) == ((0, 30) if mode == "drop" else (30, 0))
    after = _split_ids(final)
    for split, ids in after.items():  # no example moved between splits
        assert ids <= before[split]
    n = PLANTED_COUNT - 30 if mode == "drop" else PLANTED_COUNT
    assert sum(len(v) for v in after.values()) == n
    assert len(_lines(final / "all.jsonl")) == n
    assert sum(len(_lines(final / f"{s}.jsonl")) for s in ("train", "val", "test")) == n
    measured = json.loads((final / "report.json").read_text())
    assert measured["count"] == n and measured["exact_duplicates"] == 0
    assert measured["stages"]["moderation"]["flagged"] == 30
    card = (final / "DATASET_CARD.md").read_text()
    assert f"{n} question/answer pairs" in card and f"moderation fix ({mode})" in card
    # nothing lost: every original is kept, with its replacement
    replaced = [json.loads(x) for x in _lines(final / "moderation" / "replaced.jsonl")]
    assert sorted(r["line"] for r in replaced) == sorted(lines)
    assert len(_lines(final / "moderation" / "flagged.jsonl")) == 30
    # moderate again: clean; validate: passes
    again = json.loads(cli("moderate", final, "--json").stdout)
    assert again["flagged"] == 0
    for split in ("train", "val", "test"):
        cli("validate", final / f"{split}.jsonl")


def test_fix_regenerate_with_an_llm_on_a_file(planted, cli):
    final, lines = planted
    train = final / "train.jsonl"
    original = train.read_bytes()
    with serve(malformed_rate=0.1, openai_rules=True) as srv:  # gpt-5.4-mini rewrites
        result = cli("moderate", train, "--base-url", srv.url, "--fix", "regenerate",
                     "--json")
        fix = json.loads(result.stdout)["fix"]
        out = final / "moderation" / "fixed.jsonl"
        again = json.loads(cli("moderate", out, "--base-url", srv.url, "--json").stdout)
        assert "400" not in srv.stats()["by_status"]
    assert train.read_bytes() == original  # a file is never rewritten in place
    assert fix["regenerated"] == fix["flagged"] > 0 and fix["dropped"] == 0
    assert again["flagged"] == 0
    assert len(_lines(out)) == len(original.splitlines())
    cli("validate", out)
    # the rewrite kept the persona's signature and the rest of the answer
    for r in map(json.loads, _lines(final / "moderation" / "replaced.jsonl")):
        new = r["replacement"]["messages"][-1]["content"]
        assert new.endswith("\n\nAndrej Babiš") and "[[flag:" not in new


def test_pii_is_masked_in_every_output_and_in_the_printed_report(planted, tmp_path):
    final, _ = planted
    src = tmp_path / "pii.jsonl"
    examples = [json.loads(x) for x in _lines(final / "all.jsonl")[:20]]
    for i, value in enumerate(PII_VALUES):
        examples[i]["messages"][-1]["content"] += f" Kontakt: {value}."
    examples[10]["messages"][-1]["content"] += " Vy jste debil."  # flagged and PII-free
    examples[11]["messages"][-1]["content"] += f" Vy jste debil, {PII_VALUES[0]}."
    src.write_text("".join(json.dumps(e, ensure_ascii=False) + "\n" for e in examples))
    proc = run_persona("moderate", src, "--fix", "drop", check=False)
    val = run_persona("validate", src, check=False)
    assert proc.returncode == 0 and val.returncode == 1  # the fixed file is clean; src not
    fixed = run_persona("validate", tmp_path / "moderation" / "fixed.jsonl", check=False)
    assert fixed.returncode == 0 and "no problems found" in fixed.stdout
    report = json.loads((tmp_path / "moderation" / "report.json").read_text())
    assert report["pii_by_kind"] == {"birth_number": 1, "card": 1, "email": 2, "iban": 1,
                                     "phone": 1, "url": 1}
    assert {(p["line"], p["field"]) for p in report["pii_findings"]} >= {
        (i + 1, "messages[2].content") for i in range(6)}
    outputs = [p.read_text() for p in (tmp_path / "moderation").rglob("*") if p.is_file()]
    for value in PII_VALUES:
        for text in [*outputs, proc.stdout, proc.stderr, val.stdout, fixed.stdout]:
            assert value not in text
    assert "pii_email" in val.stdout


def test_a_killed_run_resumes_without_resending_answered_inputs(planted):
    final, _ = planted
    with serve(latency=0.05) as srv:
        env = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI_")}
        env["PYTHONPATH"] = str(ROOT)
        cmd = [sys.executable, "-m", "persona", "moderate", str(final), "--base-url", srv.url,
               "--concurrency", "2", "--json"]
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        deadline = time.time() + 60
        while srv.stats()["answered_by_kind"].get("moderations", 0) < 40:
            assert time.time() < deadline and proc.poll() is None
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        first = srv.stats()["batch_lines"]["moderation_inputs"]
        cmd[cmd.index("--concurrency") + 1] = "8"  # the rerun may go faster
        done = subprocess.run(cmd, env=env, capture_output=True, text=True)
        total = srv.stats()["batch_lines"]["moderation_inputs"]
    report = json.loads(done.stdout)
    assert done.returncode == 1 and report["flagged"] == 30
    # At most the requests in flight at the kill (2 x 32 inputs) are sent twice.
    assert total - report["texts_checked"] <= 2 * 32
    assert first >= 40 * 32


def test_run_moderate_is_the_last_stage(tmp_path):
    proc = run_persona("run", "-w", tmp_path, "--count", "100", "--moderate", "--json")
    result = json.loads(proc.stdout)
    assert result["moderation"]["total"] == 100 and result["moderation"]["flagged"] == 0
    assert (tmp_path / "final" / "babis" / "moderation" / "report.json").is_file()


def test_rpm_paces_requests_and_pii_never_reaches_the_server(tmp_path, cli, monkeypatch):
    from tests.servers import moderation as server_side

    seen: list[str] = []
    real = server_side.result
    monkeypatch.setattr(server_side, "result", lambda text: seen.append(text) or real(text))
    line = {"messages": [{"role": "user", "content": "Kdo jste?"},
                         {"role": "assistant", "content": ""}]}
    src = tmp_path / "small.jsonl"
    with open(src, "w", encoding="utf-8") as fh:
        for i in range(12):
            line["messages"][1]["content"] = f"Odpověď {i}, pište na {PII_VALUES[0]}."
            fh.write(json.dumps(line, ensure_ascii=False) + "\n")
    with serve() as srv:
        result = cli("moderate", src, "--base-url", srv.url, "--batch-size", "1", "--rpm",
                     "600", "--json", ok=False)
        times = sorted(srv.stats()["times"])
    assert result.exit_code == 1 and json.loads(result.stdout)["pii"] == 12
    assert len(times) == 13  # 12 answers and the question, once
    # 600 per minute: one every 0.1 s (paced at 97 %: 0.103 s), 13 requests span >= 1.24 s;
    # a slack of one interval for a first request that leaves late on a loaded machine
    assert times[-1] - times[0] >= 11 * 0.1
    assert seen and not any(PII_VALUES[0] in text for text in seen)


def test_rpm_holds_with_429s_counted_since_moderation_runs_on_the_request_pool(tmp_path, cli):
    """Retries pass the same limiter as first asks (the SDK's own retries would not)."""
    src = tmp_path / "small.jsonl"
    with open(src, "w", encoding="utf-8") as fh:
        for i in range(50):
            fh.write(json.dumps({"messages": [{"role": "user", "content": "Kdo jste?"},
                                              {"role": "assistant", "content": f"Já {i}."}]},
                                ensure_ascii=False) + "\n")
    with serve(error_rate=0.3, hang=0.05, seed=3) as srv:  # 429s, 500s and 504s
        result = cli("moderate", src, "--base-url", srv.url, "--batch-size", "1", "--rpm",
                     "1200", "--json")
        stats = srv.stats()
    assert json.loads(result.stdout)["texts_checked"] == 51  # 50 answers and the question
    failed = sum(n for status, n in stats["by_status"].items() if status != "200")
    assert failed >= 8 and stats["total"] == 51 + failed
    times = sorted(stats["times"])
    # 1,200 per minute (paced at 97 %: one per 0.0515 s), 429s and their retries included:
    # at most 39 in any 2 s (one more for an arrival that left late), and 1,200/min overall
    most = max(sum(1 for u in times[i:] if u < t + 2.0) for i, t in enumerate(times))
    assert most <= 40, most
    assert (len(times) - 1) / (times[-1] - times[0]) * 60 <= 1200
