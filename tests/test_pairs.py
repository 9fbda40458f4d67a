"""`persona pairs`: preference pairs of a finished dataset, read back by each format's reader."""

import json

import pytest

from tests.conftest import run_persona
from tests.export_loaders import llamafactory_ranking, openai_preference


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    ws = tmp_path_factory.mktemp("pairs")
    run_persona("run", "--count", 200, "--workspace", ws)
    final = ws / "final" / "babis"
    proc = run_persona("pairs", final, "--json")
    return final, json.loads(proc.stdout)


def _lines(path):
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines()]


def test_pairs_hold_train_and_val_and_no_test_question(made):
    final, result = made
    splits = {s: _lines(final / f"{s}.jsonl") for s in ("train", "val", "test")}
    assert result["pairs"] == {"train": len(splits["train"]), "val": len(splits["val"])}
    test_questions = {ex["messages"][-2]["content"] for ex in splits["test"]}
    for split in ("train", "val"):
        pairs = _lines(final / "pairs" / f"{split}.jsonl")
        assert [p["prompt"] + p["chosen"] for p in pairs] == \
            [ex["messages"] for ex in splits[split]]  # chosen: the persona's own answer
        for p in pairs:
            assert p["prompt"][-1]["content"] not in test_questions
            rejected = p["rejected"][0]["content"]
            assert p["rejected"][0]["role"] == "assistant" and rejected
            assert rejected != p["chosen"][0]["content"]
            assert "Andrej Babiš" not in rejected  # the neutral voice signs nothing
    assert result["rejected_on_topic"] == sum(result["pairs"].values())


def test_trl_reads_the_pairs_as_conversational_preference_data(made):
    from trl.data_utils import is_conversational

    final, _ = made
    for row in _lines(final / "pairs" / "train.jsonl")[:50]:
        assert set(row) == {"prompt", "chosen", "rejected"}
        assert is_conversational(row)


def test_llamafactory_and_openai_exports_read_back_as_the_same_pairs(made, tmp_path):
    final, _ = made
    for split in ("train", "val"):
        pairs = _lines(final / "pairs" / f"{split}.jsonl")
        want = [(p["prompt"], p["chosen"][0], p["rejected"][0]) for p in pairs]
        got = llamafactory_ranking(final / "pairs" / "llamafactory", f"babis_{split}",
                                   tmp_path / "hf-cache")
        assert got == want
        assert openai_preference(final / "pairs" / "openai" / f"{split}.jsonl") == want


def test_the_same_seed_gives_the_same_bytes(made, tmp_path):
    final, _ = made
    run_persona("pairs", final, "--out", tmp_path / "again")
    assert (tmp_path / "again" / "train.jsonl").read_bytes() == \
        (final / "pairs" / "train.jsonl").read_bytes()
    info = json.loads((final / "pairs" / "pairs.json").read_text())
    assert info["source"] == "neutral" and info["pairs"]["train"] > 100


def test_validate_passes_fresh_pairs_and_names_line_and_field_in_broken_ones(made, tmp_path):
    from persona.checks.validate import validate_file

    final, _ = made
    for path in (final / "pairs" / "train.jsonl", final / "pairs" / "openai" / "train.jsonl"):
        report = validate_file(path)
        assert report.ok and report.examples > 100, path
    rows = _lines(final / "pairs" / "train.jsonl")[:12]
    rows[3]["chosen"] = [{"role": "user", "content": "Já nic."}]
    del rows[7]["rejected"]
    rows[9]["rejected"][0]["content"] = "Pište mi na jan.novak@example.com"
    broken = tmp_path / "broken.jsonl"
    broken.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    found = {(f.line, f.field, f.code) for f in validate_file(broken).findings}
    assert (4, "chosen", "not_one_answer") in found
    assert (8, "rejected", "missing_messages") in found
    assert (10, "rejected[0].content", "pii_email") in found


def test_the_few_shot_prompt_covers_every_style_within_its_budget(made, tmp_path):
    from persona.checks.tokens import count_text, get_encoding

    final, _ = made
    out = tmp_path / "fewshot.md"
    got = json.loads(run_persona("prompt", final, "--shots", 8, "--out", out, "--json").stdout)
    text = out.read_text(encoding="utf-8")
    assert got["shots"] == 8 and got["covered"]["style"][0] == got["covered"]["style"][1] == 5
    assert got["covered"]["template"][0] == 8  # eight different templates
    assert count_text(text.rstrip("\n"), get_encoding("o200k_base")) == got["tokens"] <= 2000
    train = {json.loads(x)["messages"][-2]["content"]
             for x in (final / "train.jsonl").read_text(encoding="utf-8").splitlines()}
    assert {e["question"] for e in got["examples"]} <= train  # train questions only
    assert all(f"Q: {e['question']}" in text for e in got["examples"])
    small = json.loads(run_persona("prompt", final, "--shots", 8, "--max-tokens", 400,
                                   "--out", tmp_path / "s.md", "--json").stdout)
    assert small["shots"] < 8 and small["tokens"] <= 400
    again = tmp_path / "again.md"
    run_persona("prompt", final, "--shots", 8, "--out", again)
    assert again.read_bytes() == out.read_bytes()


def test_rejected_answers_from_a_remote_model_resume_and_price_first(made, tmp_path):
    from tests.servers.openai_compat import serve

    final, neutral = made
    out = tmp_path / "remote-pairs"
    args = ("pairs", final, "--rejected", "openai:gpt-5.4-mini", "--out", out)
    with serve(openai_rules=True) as srv:
        dry = json.loads(run_persona(*args, "--base-url", srv.url, "--dry-run", "--json",
                                     env_key=True).stdout)
        assert srv.stats()["total"] == 0  # a dry run asks nothing
        first = json.loads(run_persona(*args, "--base-url", srv.url, "--json",
                                       env_key=True).stdout)
        asked = srv.stats()["total"]
        again = json.loads(run_persona(*args, "--base-url", srv.url, "--json",
                                       env_key=True).stdout)
        assert srv.stats()["total"] == asked  # a rerun reuses every answer
    n = sum(neutral["pairs"].values())
    est = dry["estimate"][0]
    assert est["questions"] == n and est["max_usd"] > 0 and est["input_tokens"] > n * 10
    assert first["pairs"] == neutral["pairs"] and asked == n
    assert first["rejected_model"]["asked"] == n and again["rejected_model"]["reused"] == n
    test_questions = {json.loads(x)["messages"][-2]["content"]
                      for x in (final / "test.jsonl").read_text().splitlines()}
    for p in _lines(out / "train.jsonl"):
        assert p["prompt"][-1]["content"] not in test_questions
        # the model answered this example's own question (the server names its last words)
        assert p["rejected"][0]["content"].startswith("K otázce ")
    assert (out / "openai" / "train.jsonl").is_file()
    assert json.loads((out / "pairs.json").read_text())["rejected_model"]["reused"] == n


def test_a_rejected_source_that_answers_nothing_is_one_line(made, tmp_path):
    from tests.servers.openai_compat import serve

    final, _ = made
    with serve() as srv:
        proc = run_persona("pairs", final, "--rejected", "openai:empty-model", "--base-url",
                           srv.url, "--out", tmp_path / "p", check=False, env_key=True)
    lines = proc.stderr.strip().splitlines()
    # the progress bar of the answers, then one error line
    assert proc.returncode == 2 and len(lines) <= 2 and "Traceback" not in proc.stderr
    assert lines[-1].startswith("error:") and "answered nothing usable" in lines[-1]
    assert not (tmp_path / "p" / "train.jsonl").exists()


def test_moderate_screens_a_pairs_file_and_names_the_pair_field(made, tmp_path):
    from tests.moderation_data import rows

    final, _ = made
    pairs = _lines(final / "pairs" / "train.jsonl")
    planted = rows("planted.jsonl")[0]["text"]
    pairs[3]["rejected"][0]["content"] += " " + planted
    path = tmp_path / "pairs.jsonl"
    path.write_text("".join(json.dumps(p, ensure_ascii=False) + "\n" for p in pairs))
    proc = run_persona("moderate", path, check=False)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    report = json.loads((tmp_path / "moderation" / "report.json").read_text())
    assert report["flagged_lines"] == [4]  # the built-in voices themselves are never flagged
    worst = [w for ws in report["worst"].values() for w in ws]
    assert {w["field"] for w in worst} == {"rejected[0].content"}
