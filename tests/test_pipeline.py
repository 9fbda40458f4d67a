"""The offline pipeline end to end, through the real CLI."""

import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from persona import rules
from persona.checks.validate import validate_file
from persona.stages.fill import apportion, slip_schedule, style_schedule, template_schedule
from persona.text import split_sentences
from tests.conftest import ROOT, run_persona

FINAL = ("all.jsonl", "train.jsonl", "val.jsonl", "test.jsonl", "meta.jsonl", "report.json",
         "DATASET_CARD.md")


def final_bytes(ws: Path, persona="babis") -> dict[str, bytes]:
    return {name: (ws / "final" / persona / name).read_bytes() for name in FINAL}


def lines(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines()]


@pytest.fixture(scope="module")
def run3000(tmp_path_factory):
    ws = tmp_path_factory.mktemp("ws3000")
    proc = run_persona("run", "--persona", "babis", "--count", 3000, "--workspace", ws)
    return ws, proc


def test_apportion_and_schedules_are_exact():
    assert apportion({"a": 0.2, "b": 0.2, "c": 0.2, "d": 0.2, "e": 0.2}, 3001) == \
        {"a": 601, "b": 600, "c": 600, "d": 600, "e": 600}
    styles = style_schedule({"x": 0.5, "y": 0.5}, 11, seed=1)
    assert sorted(styles).count("x") in (5, 6) and len(styles) == 11
    assert len(slip_schedule(0.15, 3000, seed=1)) == 450
    uses = list(template_schedule(400, 0, 1200, seed=1))
    assert all(uses.count(t) == 3 for t in range(400))


def test_main_job_meets_the_done_criteria(run3000):
    ws, proc = run3000
    for name in FINAL:
        assert (ws / "final/babis" / name).is_file()
    r = json.loads((ws / "final/babis/report.json").read_text(encoding="utf-8"))
    assert r["count"] == 3000
    assert sum(r["splits"].values()) == 3000 and abs(r["splits"]["train"] - 2400) <= 30
    for s in r["style_mix"].values():
        assert abs(s["percent"] - 20.0) <= 1.0
    assert abs(r["slips"]["percent"] - 15.0) <= 1.5
    assert r["unresolved_placeholders"] == 0
    assert r["signature"]["percent"] == 100.0
    assert r["exact_duplicates"] == 0
    assert "measured" in proc.stdout and "slips" in proc.stdout
    card = (ws / "final/babis/DATASET_CARD.md").read_text(encoding="utf-8")
    first = lines(ws / "final/babis/train.jsonl")[0]["messages"][1]["content"]
    assert "| slips | 450 (15.00 %" in card and f"> **Q:** {first}" in card
    assert "| distinct 5-word answer openings |" in card and "by template" in card
    assert validate_file(ws / "final/babis/train.jsonl").ok
    v = run_persona("validate", ws / "final/babis/train.jsonl", check=False)
    assert v.returncode == 0, v.stdout + v.stderr


def test_final_files_are_pure_openai_chat(run3000):
    ws, _ = run3000
    for ex in lines(ws / "final/babis/train.jsonl")[:50]:
        assert list(ex) == ["messages"]
        assert [m["role"] for m in ex["messages"]] == ["system", "user", "assistant"]
        assert all(set(m) == {"role", "content"} for m in ex["messages"])


def test_meta_matches_examples_and_recorded_slips_are_in_the_text(run3000):
    ws, _ = run3000
    examples = lines(ws / "final/babis/all.jsonl")
    meta = lines(ws / "final/babis/meta.jsonl")
    assert len(examples) == len(meta) == 3000
    for ex, m in zip(examples, meta, strict=True):
        answer = ex["messages"][2]["content"]
        if m["slip"]:
            assert m["slip"]["to"] in answer
        assert answer.endswith("\n\nAndrej Babiš")


def test_question_matches_its_answer(run3000, babis):
    """Stage 3 asks about the answer's own topic and enemy, not a random question."""
    from persona.providers.offline import lookup_values

    ws, _ = run3000
    examples = lines(ws / "final/babis/all.jsonl")
    meta = lines(ws / "final/babis/meta.jsonl")
    for ex, m in zip(examples, meta, strict=True):
        question = ex["messages"][1]["content"]
        values = lookup_values(babis, m["values"])
        for name in ("tema", "nepritel"):
            if name in values:
                forms = set(values[name].values())
                assert any(f in question or f[:1].upper() + f[1:] in question for f in forms), \
                    (name, question, values[name])


def test_neutral_persona_delivers_3000_distinct_questions_with_resolved_wording(tmp_path):
    """The bench's neutral class and the CPU demo's base need the full count: its questions
    (leads, frames, alternatives) never run out, and the old answer shape (no
    style_sentences) resolves its [a|b] alternatives too."""
    from persona.providers.offline import lookup_values
    from persona.spec import load_spec

    ws = tmp_path / "ws"
    run_persona("run", "--persona", "neutral", "--count", 3000, "--workspace", ws)
    r = json.loads((ws / "final/neutral/report.json").read_text(encoding="utf-8"))
    assert r["count"] == 3000 and sum(r["splits"].values()) == 3000
    examples = lines(ws / "final/neutral/all.jsonl")
    meta = lines(ws / "final/neutral/meta.jsonl")
    questions = [ex["messages"][1]["content"] for ex in examples]
    answers = [ex["messages"][2]["content"] for ex in examples]
    assert len(questions) == len(set(questions)) == 3000
    assert not any(re.search(r"[\[\]|{}]", t) for t in questions + answers)
    assert not any(a.endswith("\n") or "\n\n" in a for a in answers)  # unsigned
    openings = {" ".join(a.split()[:5]) for a in answers}
    assert len(openings) > 450  # 15 % before the alternatives were resolved
    spec = load_spec("neutral")
    for q, m in zip(questions, meta, strict=True):
        topic = lookup_values(spec, m["values"])["tema"]
        assert any(f in q or f[:1].upper() + f[1:] in q for f in topic.values()), (q, topic)


def test_same_seed_same_bytes_other_seed_other_bytes(run3000, tmp_path):
    ws, _ = run3000
    again = tmp_path / "again"
    run_persona("run", "--count", 3000, "--workspace", again)
    assert final_bytes(again) == final_bytes(ws)
    other = tmp_path / "other"
    run_persona("run", "--count", 3000, "--workspace", other, "--seed", 7)
    assert final_bytes(other)["all.jsonl"] != final_bytes(ws)["all.jsonl"]


def test_rerun_resumes_and_gives_same_bytes(tmp_path, cli):
    ws = tmp_path / "ws"
    cli("run", "--count", 900, "--workspace", ws)
    before = final_bytes(ws)
    for folder in ("answers", "dialogues"):
        (ws / "generated/babis" / folder / "batch_0002.jsonl").unlink()
    result = cli("run", "--count", 900, "--workspace", ws)
    assert "600 kept from an earlier run" in result.output
    assert final_bytes(ws) == before


def test_sigkill_mid_stage_then_rerun_gives_same_bytes(tmp_path, run3000):
    ws = tmp_path / "killed"
    cmd = [sys.executable, "-m", "persona", "run", "--count", "3000", "--batch-size", "100",
           "--workspace", str(ws)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    answers = ws / "generated/babis/answers"
    deadline = time.time() + 60
    while time.time() < deadline and not (answers / "batch_0005.jsonl").exists():
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert (answers / "batch_0005.jsonl").exists()
    assert not (answers / "batch_0030.jsonl").exists(), "the run ended before the kill"
    run_persona("run", "--count", 3000, "--batch-size", 100, "--workspace", ws)
    clean = tmp_path / "clean"
    run_persona("run", "--count", 3000, "--batch-size", 100, "--workspace", clean)
    assert final_bytes(ws) == final_bytes(clean)


def test_changed_settings_are_refused_then_forced(tmp_path, cli):
    ws = tmp_path / "ws"
    cli("run", "--count", 300, "--workspace", ws)
    result = cli("run", "--count", 300, "--seed", 5, "--workspace", ws, ok=False)
    assert result.exit_code == 2
    assert "seed: 42 -> 5" in result.output and "--force" in result.output
    cli("run", "--count", 300, "--seed", 5, "--workspace", ws, "--force")
    r = json.loads((ws / "final/babis/report.json").read_text(encoding="utf-8"))
    assert r["count"] == 300


def test_stages_one_by_one_equal_run(tmp_path, cli):
    one = tmp_path / "one"
    for stage in ("templates", "fill", "questions", "merge"):
        extra = ["--count", 600] if stage == "fill" else []
        cli(stage, "--workspace", one, *extra)
    both = tmp_path / "both"
    cli("run", "--count", 600, "--workspace", both)
    assert final_bytes(one) == final_bytes(both)


def test_one_process_and_forked_workers_give_the_same_bytes(tmp_path, monkeypatch):
    """The offline stages' per-item work runs in forked workers (persona/parallel.py), its
    questions asked ahead by fill's workers; in one process it must give the same files."""
    out = {}
    for workers in ("1", "2"):
        monkeypatch.setenv("PERSONA_WORKERS", workers)
        ws = tmp_path / f"w{workers}"
        run_persona("run", "--count", 900, "--workspace", ws)
        out[workers] = (final_bytes(ws), sorted(
            (p.name, p.read_bytes()) for p in (ws / "generated/babis/dialogues").glob("*.jsonl")))
    assert out["1"] == out["2"]


def test_merge_dedups_dialogues_edited_after_fill(tmp_path, cli):
    """Fill dedups, so merge trusts dialogues that still hold their answers' texts; one
    edited into a copy of another (by hand, by another tool) makes merge dedup them all."""
    ws = tmp_path / "ws"
    cli("run", "--count", 300, "--workspace", ws)
    batch = ws / "generated/babis/dialogues/batch_0001.jsonl"
    rows = [json.loads(line) for line in batch.read_text(encoding="utf-8").splitlines()]
    rows[5]["answer"] = rows[4]["answer"]
    batch.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows),
                     encoding="utf-8")
    result = cli("merge", "--workspace", ws)
    assert "exact duplicate" in result.output or "1 rejected" in result.output, result.output
    final = (ws / "final/babis/all.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(final) == 299
    answers = [json.loads(line)["messages"][-1]["content"] for line in final]
    assert len(set(answers)) == 299


def test_split_flag(tmp_path, cli):
    ws = tmp_path / "ws"
    cli("run", "--count", 300, "--workspace", ws, "--split", 0.5, 0.25, 0.25)
    r = json.loads((ws / "final/babis/report.json").read_text(encoding="utf-8"))
    assert sum(r["splits"].values()) == 300
    assert abs(r["splits"]["val"] - 75) <= 2 and abs(r["splits"]["test"] - 75) <= 2
    bad = cli("run", "--count", 300, "--workspace", ws, "--split", 0.5, 0.5, 0.5, ok=False)
    assert bad.exit_code == 2 and "sum to 1" in bad.output


def test_committed_template_bank_is_stage_one_output(tmp_path, cli):
    cli("templates", "--workspace", tmp_path)
    made = (tmp_path / "templates/babis.jsonl").read_bytes()
    assert made == (ROOT / "templates/babis.jsonl").read_bytes()
    assert len(made.splitlines()) >= 400


def test_broken_template_bank_is_one_line_exit_2(tmp_path):
    bank = tmp_path / "templates/babis.jsonl"
    bank.parent.mkdir()
    bank.write_text('{"id": "t1", "text": "O {tema.loc} nic."}\n{"id": "t2", "text": \n',
                    encoding="utf-8")
    proc = run_persona("run", "--count", 10, "--workspace", tmp_path, check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert f"{bank}:2: invalid JSON" in proc.stderr
    bank.write_text('{"id": "t1", "text": "O {pocasi} nic."}\n', encoding="utf-8")
    proc = run_persona("run", "--count", 10, "--workspace", tmp_path, check=False)
    assert proc.returncode == 2 and f"{bank}:1: text: unknown placeholder" in proc.stderr


def test_diversity_figures_meet_the_issue(run3000):
    """The acceptance figures of issue 9 on the default 3,000 (style classifier aside)."""
    ws, _ = run3000
    d = json.loads((ws / "final/babis/report.json").read_text(encoding="utf-8"))["diversity"]
    assert d["distinct_openings_5w"]["percent"] >= 35
    assert d["top100_sentences_percent"] <= 35
    assert d["most_repeated_sentence"]["percent"] <= 3
    assert d["sentences_per_answer"]["max_share_percent"] <= 50
    assert set(d["sentences_per_answer"]["distribution"]) <= {str(n) for n in range(1, 8)}
    assert d["distinct_questions"]["percent"] >= 99
    assert d["questions_with_labels"]["count"] == 0
    lk = d["leakage"]
    assert lk["val_templates_in_train"] == lk["test_templates_in_train"] == 0
    assert lk["test_questions_in_train"] == 0


# The reviewer's refusals and wrap-ups (written independently of the spec's own
# grammar.last_only list, so a pattern dropped there still fails here).
REFUSAL = re.compile(r"(?i)komentovat|vyjadřovat|neodpovídám|\bneřešim\b|bavit nebud|"
                     r"nebud(u|eme) bavit|k tomu řeknu|víc k tomu|nemám čas\.|věci na práci")
# A refusal proper (not a wrap-up such as "Víc k tomu říkat nebudu.") never follows a
# promise to answer.
REFUSAL_PROPER = re.compile(r"(?i)komentovat|vyjadřovat|neodpovídám|\bneřešim\b|bavit nebud|"
                            r"nebud(u|eme) bavit")
ANSWER_PROMISE = re.compile(r"(?i)já vám odpovím|na rovinu|já vám něco řeknu")


def test_refusals_only_end_an_answer(run3000, babis):
    """A refusal or wrap-up is the last sentence before the signature: never followed by
    another sentence, never two in one answer, never after a promise to answer."""
    ws, _ = run3000
    seen = 0
    for ex in lines(ws / "final/babis/all.jsonl"):
        text = ex["messages"][-1]["content"]
        assert not rules.misplaced_endings(text, babis), text
        sentences = split_sentences(text.removesuffix(babis.persona.signature))
        hits = [i for i, s in enumerate(sentences) if REFUSAL.search(s)]
        assert all(i == len(sentences) - 1 for i in hits), text
        assert not (REFUSAL_PROPER.search(text) and ANSWER_PROMISE.search(text)), text
        seen += bool(hits)
    assert seen >= 100  # the rule is exercised, not vacuous


def test_splits_are_held_out_by_template(run3000):
    ws, _ = run3000
    meta = lines(ws / "final/babis/meta.jsonl")
    by_split = {s: {m["template_id"] for m in meta if m["split"] == s}
                for s in ("train", "val", "test")}
    assert by_split["test"] and by_split["val"]
    assert not by_split["train"] & (by_split["val"] | by_split["test"])
    train_q = {x["messages"][1]["content"] for x in lines(ws / "final/babis/train.jsonl")}
    test_q = [x["messages"][1]["content"] for x in lines(ws / "final/babis/test.jsonl")]
    assert not train_q & set(test_q)


def test_holdout_topics_keep_topics_out_of_train(tmp_path, cli):
    ws = tmp_path / "ws"
    cli("run", "--count", 900, "--workspace", ws, "--holdout-topics", 3)
    r = json.loads((ws / "final/babis/report.json").read_text(encoding="utf-8"))
    held = r["stages"]["merge"]["split"]["holdout_topics"]
    assert len(held) == 3
    meta = lines(ws / "final/babis/meta.jsonl")
    assert not [m for m in meta if m["split"] == "train" and m["values"]["tema"] in held]
    assert [m for m in meta if m["split"] != "train" and m["values"]["tema"] in held]
    assert all(m["heldout_topic"] == (m["values"]["tema"] in held) for m in meta)
    dropped = r["stages"]["merge"]["split"]["dropped"]
    assert r["count"] == 900 - dropped and len(meta) == r["count"]
    card = (ws / "final/babis/DATASET_CARD.md").read_text(encoding="utf-8")
    assert "Topics held out of train: " + ", ".join(held) in card
    bad = cli("run", "--count", 900, "--workspace", ws, "--holdout-topics", 99, ok=False)
    assert bad.exit_code == 2 and "--holdout-topics 99" in bad.output


def test_small_counts_fill_every_split(tmp_path, cli):
    for n in (3, 10):
        ws = tmp_path / f"ws{n}"
        cli("run", "--count", n, "--workspace", ws)
        r = json.loads((ws / "final/babis/report.json").read_text(encoding="utf-8"))
        assert sum(r["splits"].values()) == n and min(r["splits"].values()) >= 1, r["splits"]
    ws = tmp_path / "ws2"
    result = cli("run", "--count", 2, "--workspace", ws)
    r = json.loads((ws / "final/babis/report.json").read_text(encoding="utf-8"))
    assert r["splits"] == {"train": 1, "val": 0, "test": 1}
    assert "leaves val empty" in result.output
