"""persona bench with local models: a base folder vs its finetune --out folder (base + LoRA)."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("torch")
pytest.importorskip("sklearn")
openpyxl = pytest.importorskip("openpyxl")


def test_batched_left_padded_answers_equal_one_at_a_time(trained):
    from persona.bench.generate import Decoding, generate_local, load_local, parse_model

    model, tok = load_local(parse_model(str(trained.out)))
    questions = ["Co daně?", "Pane Babiši, jak chcete řešit inflaci, když ceny rostou?",
                 "Dálnice?", "Proč se o důchodech tolik mluví právě teď, pane předsedo?",
                 "A euro?"]
    one = generate_local(model, tok, "Odpovídej.", questions,
                         Decoding(max_new_tokens=12, batch_size=1))
    batched = generate_local(model, tok, "Odpovídej.", questions,
                             Decoding(max_new_tokens=12, batch_size=5))
    assert tok.padding_side == "left"
    assert batched == one
    assert any(a.strip() for a in one)


def test_anti_repetition_counts_the_answer_not_the_prompt():
    import torch

    from persona.bench.generate import answer_only_repetition

    ids = torch.tensor([[7, 8, 1, 2, 3, 1, 2], [0, 0, 4, 5, 6, 7, 8]])  # prompt: 2 tokens
    scores = torch.tensor([[2.0] * 10, [-2.0] * 10])
    out = answer_only_repetition(2, 2.0, 3)(ids, scores.clone())
    assert out[0, 3] == -float("inf")  # "1 2 3" again is banned, nothing else is
    assert (out[0, [1, 2]] == 1.0).all() and (out[0, [0, 7, 8, 9]] == 2.0).all()
    assert (out[1, 4:9] == -4.0).all() and out[1, 0] == -2.0  # prompt / pad tokens untouched
    assert torch.isfinite(out[1]).all()
    same = answer_only_repetition(2, 1.0, 0)(ids, scores.clone())
    assert torch.equal(same, scores)


def test_local_bench_base_vs_adapter_and_resume(trained, chat_data, tmp_path, cli):
    base = trained.summary["base_path"]
    out = tmp_path / "bench"
    args = ("bench", chat_data, "--before", base, "--after", trained.out, "--out", out,
            "--limit", 6, "--max-new-tokens", 12, "--batch-size", 4, "--json")
    r = cli(*args)
    s = json.loads(r.output)["summary"]
    assert s["questions"] == 6
    assert s["means"]["perplexity"]["before"] > 0  # fluency under the local base model
    assert s["means"]["words"]["n"] == 6
    saved = json.loads((out / "bench.json").read_text())
    cfg = saved["config"]
    assert cfg["models"]["after"]["adapter"] == str(trained.out)
    assert cfg["models"]["after"]["base"] == base and cfg["models"]["after"]["adapter_sha256"]
    assert cfg["decoding"]["max_new_tokens"] == 12 and cfg["answers_reused"] == {
        "before": 0, "after": 0}
    # the anti-repetition of `persona chat`, recorded, the same on both sides
    assert (cfg["decoding"]["repetition_penalty"], cfg["decoding"]["no_repeat_ngram"]) == \
        (1.15, 4)
    assert sum(1 for _ in open(out / "answers" / "after.jsonl")) == 6
    cli(*args)  # a rerun generates nothing: every answer is in answers/<side>.jsonl
    again = json.loads((out / "bench.json").read_text())
    assert again["config"]["answers_reused"] == {"before": 6, "after": 6}
    assert [r["after"] for r in again["rows"]] == [r["after"] for r in saved["rows"]]
    ws = openpyxl.load_workbook(out / "bench.xlsx")["Comparison"]
    assert ws.max_row == 7
    # other decoding is other answers: nothing is reused, and the Config records it
    off = cli(*args[:-1], "--repetition-penalty", 1.0, "--no-repeat-ngram", 0, "--json")
    assert json.loads(off.output)["summary"]["questions"] == 6
    cfg = json.loads((out / "bench.json").read_text())["config"]
    assert cfg["answers_reused"] == {"before": 0, "after": 0}
    assert (cfg["decoding"]["repetition_penalty"], cfg["decoding"]["no_repeat_ngram"]) == \
        (1.0, 0)
