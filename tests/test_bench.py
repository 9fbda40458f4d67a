"""persona bench without torch: scores, held-out selection, the remote path and the judge
against the loopback server, the sheet read back with openpyxl, --rescore on a reordered sheet."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from persona.bench import judge as J
from persona.bench import scores as S
from persona.bench.questions import held_out, norm
from persona.providers.base import Failure
from persona.spec import load_spec
from tests.servers.openai_compat import serve

ROOT = Path(__file__).resolve().parents[1]
openpyxl = pytest.importorskip("openpyxl")
pytest.importorskip("sklearn")


def _run(persona: str, ws: Path, count: int) -> Path:
    proc = subprocess.run([sys.executable, "-m", "persona", "run", "--persona", persona,
                           "--count", str(count), "-w", str(ws)], capture_output=True,
                          text=True, cwd=ROOT, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return ws / "final" / persona


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> dict[str, Path]:
    ws = tmp_path_factory.mktemp("bench-ws")
    return {"babis": _run("babis", ws, 300), "neutral": _run("neutral", ws, 200)}


# -- scores --------------------------------------------------------------------------------

def test_surface_scores():
    assert S.distinct_2("a b a b") == round(2 / 3, 4)
    assert S.repetition("jedna dva tri jedna dva tri") == 0.25
    assert S.distinct_2("slovo") is None and S.length_words("To je, fakt!") == 3


def test_markers_follow_the_spec():
    babis = load_spec("babis")
    assert S.signature("Tohle mě štve.\n\nAndrej Babiš", babis) == 1
    assert S.signature("Tohle mě štve.", babis) == 0
    assert S.signature("cokoli", load_spec("neutral")) is None  # an unsigned persona
    # the slip rule \b([Kk])dyž\b -> \1eď: "Keď" is a slip, "teď" is correct Czech
    assert S.slips("Keď to řeknu, tak som hotovej.", babis) == 2
    assert S.slips("Teď to řeknu, tak jsem hotovej.", babis) == 0
    assert S.slips("Ta inflamace je hrozná.", babis) == 1  # \1nflamac\2 with both groups
    assert S.catchphrases("Tohle mě fakt vytáčí! To mě fakt štve!", babis) == 2
    assert S.catchphrases("Děkuji za otázku. Vláda situaci sleduje.", babis) == 0
    assert S.slips("Protože je to tak.", load_spec("neutral")) == 0  # no-op rule skipped


def test_relevance_counts_czech_inflection():
    topics = S.TopicIndex.build(load_spec("babis"))
    q = "Pane Babiši, jak konkrétně chcete řešit inflaci?"
    assert S.relevance(q, "Inflace je problém Bruselu.", topics) == 1.0  # nom vs acc
    assert S.relevance(q, "S inflací jsme na tom nejlíp.", topics) == 1.0  # ins
    assert S.relevance(q, "Dálnice stavíme.", topics) == 0.0
    assert S.relevance("Jak se máte?", "Dobře.", topics) is None  # no topic asked


def test_wilson_interval():
    lo, hi = S.wilson(8, 10)
    assert 0.49 < lo < 0.5 and 0.94 < hi < 0.95
    assert S.wilson(0, 0) == (None, None)


def test_judge_outcomes_never_count_position_bias_as_a_win():
    # order 1 shows A=before, B=after; order 2 shows A=after, B=before
    assert J.outcome("B", "A") == "after"
    assert J.outcome("A", "B") == "before"
    assert J.outcome("A", "A") == "inconsistent"  # always the first shown
    assert J.outcome("tie", "tie") == "tie"
    assert J.outcome("tie", "A") == "inconsistent"
    assert J.outcome(Failure("x"), "A") is None
    t = J.tally(["after", "after", "inconsistent", "tie", None])
    assert (t["after"], t["inconsistent"], t["tie"], t["failed"], t["win_rate_after"]) == \
        (2, 1, 1, 1, 1.0)


# -- held-out questions --------------------------------------------------------------------

def test_held_out_refuses_questions_seen_in_train(tmp_path):
    from tests.bad_inputs.bench import _pair, dataset

    d = dataset(tmp_path, test=_pair("Otázka číslo 3 na inflaci?", "a")
                + _pair("Nová otázka na daně?", "b") + _pair("OTÁZKA  číslo 7 na inflaci?", "c"))
    h = held_out(d)
    assert h.refused == 2  # case and spaces do not hide a training question
    assert [q.question for q in h.questions] == ["Nová otázka na daně?"]


def test_held_out_topics_come_from_val_and_test_never_train(tmp_path):
    ws = tmp_path / "ws"
    proc = subprocess.run([sys.executable, "-m", "persona", "run", "--persona", "babis",
                           "--count", "300", "--holdout-topics", "3", "-w", str(ws)],
                          capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert proc.returncode == 0, proc.stderr
    final = ws / "final" / "babis"
    meta = [json.loads(line) for line in (final / "meta.jsonl").read_text().splitlines()]
    held_ids = {m["id"] for m in meta if m.get("heldout_topic")}
    h = held_out(final)
    n_test = len((final / "test.jsonl").read_text().splitlines())
    val_held = sum(1 for m in meta if m["split"] == "val" and m.get("heldout_topic"))
    assert len(h.questions) + h.refused == n_test + val_held
    assert val_held and h.splits.get("val (held-out topic)") == val_held
    by_id = {q.id: q for q in h.questions}
    assert all(by_id[i].split.endswith("(held-out topic)") for i in held_ids if i in by_id)
    train_q = {norm(json.loads(line)["messages"][1]["content"])
               for line in (final / "train.jsonl").read_text().splitlines()}
    assert not any(norm(q.question) in train_q for q in h.questions)
    assert "val.jsonl" in h.hashes


# -- the remote path, the judge and the sheet ----------------------------------------------

def _bench(cli, data, out: Path, url: str, *extra):
    return cli("bench", data["babis"], "--before", "openai:gpt-5.4-mini", "--after",
               "openai:ft:gpt-4o-mini:acme::x1", "--base-url", url, "--neutral",
               data["neutral"], "--out", out, "--limit", 12, "--json", *extra)


def test_remote_bench_with_fair_judge_writes_a_sheet_that_reads_back(cli, data, tmp_path):
    """Against a server enforcing OpenAI's rules (gpt-5.4-mini answers and judges): no
    request is refused for its parameters."""
    out = tmp_path / "bench"
    with serve(openai_rules=True) as srv:
        r = _bench(cli, data, out, srv.url, "--judge", "gpt-5.4-mini")
        first = srv.stats()["total"]
        again = _bench(cli, data, out, srv.url, "--judge", "gpt-5.4-mini")
        assert srv.stats()["total"] == first  # a rerun reuses every answer and verdict
        assert "400" not in srv.stats()["by_status"]
    s = json.loads(r.output)["summary"]
    assert s["questions"] == 12 and json.loads(again.output)["summary"] == s
    assert s["means"]["signature"]["before"] == 0 and s["means"]["signature"]["after"] == 1
    assert s["judge"]["after"] == 12 and s["judge"]["inconsistent"] == 0
    assert s["judge"]["ci95"][0] > 0.7
    assert first == 12 * 2 + 12 * 4  # answers of both sides, then 2 orders + 2 scores each

    wb = openpyxl.load_workbook(out / "bench.xlsx")
    assert wb.sheetnames == ["Summary", "Comparison", "Config"]
    cmp_ws = wb["Comparison"]
    header = [c.value for c in cmp_ws[1]]
    assert cmp_ws.max_row == 1 + 12  # one row per question
    assert header[:5] == ["id", "split", "question", "before", "after"]
    assert {"style probability before", "signature after", "judge verdict", "human before",
            "human after"} <= set(header)
    assert cmp_ws.freeze_panes == "C2"
    assert cmp_ws.auto_filter.ref == f"A1:{openpyxl.utils.get_column_letter(len(header))}13"
    assert cmp_ws.conditional_formatting  # colour scales
    assert cmp_ws.cell(2, 3).alignment.wrap_text
    summary = [[c.value for c in row] for row in wb["Summary"].iter_rows()]
    flat = [v for row in summary for v in row if v is not None]
    assert any(isinstance(v, str) and v.startswith("=IFERROR(AVERAGE(Comparison!") for v in flat)
    sig_row = next(row for row in summary if row[0] == "signature")
    assert sig_row[1:4] == [0, 1, 1]
    assert wb["Summary"]._charts
    config = {row[0].value: row[1].value for row in wb["Config"].iter_rows(min_row=2)}
    assert config["models.after.given"] == "openai:ft:gpt-4o-mini:acme::x1"
    assert config["decoding.seed"] == 42 and config["data_sha256.test.jsonl"]
    assert (config["decoding.repetition_penalty"], config["decoding.no_repeat_ngram"]) == (1.15, 4)
    assert config["versions.openpyxl"]
    csv_lines = (out / "bench.csv").read_text().splitlines()
    assert csv_lines[0].startswith("id,split,question,before,after")
    assert "![before vs after](bench.png)" in (out / "report.md").read_text()
    assert (out / "bench.png").stat().st_size > 1000


def test_position_biased_judge_gives_inconsistent_verdicts_not_wins(cli, data, tmp_path):
    with serve(judge="biased") as srv:
        r = _bench(cli, data, tmp_path / "b", srv.url, "--judge", "gpt-4o-mini")
    j = json.loads(r.output)["summary"]["judge"]
    assert (j["after"], j["before"], j["tie"], j["inconsistent"]) == (0, 0, 0, 12)
    assert j["win_rate_after"] is None


def test_rescore_reads_human_scores_from_a_reordered_filtered_sheet(cli, data, tmp_path):
    out = tmp_path / "bench"
    with serve() as srv:
        _bench(cli, data, out, srv.url)
    wb = openpyxl.load_workbook(out / "bench.xlsx")
    ws = wb["Comparison"]
    header = [c.value for c in ws[1]]
    rows = [[c.value for c in row] for row in ws.iter_rows(min_row=2)]
    col = {h: header.index(h) for h in ("id", "human before", "human after")}
    # a person reorders the columns' rows (reverse), deletes two rows, types scores
    rows = rows[::-1][2:]
    expect_b, expect_a = {}, {}
    for k, row in enumerate(rows):
        row[col["human before"]] = 1 + k % 3
        expect_b[row[col["id"]]] = 1 + k % 3
        if k % 2 == 0:
            row[col["human after"]] = 8
            expect_a[row[col["id"]]] = 8
    ws.delete_rows(2, ws.max_row)
    for row in rows:
        ws.append(row)
    wb.save(out / "bench.xlsx")
    r = cli("bench", "--rescore", out / "bench.xlsx", "--json")
    h = json.loads(r.output)["summary"]["human"]
    assert h["n_before"] == 10 and h["n_after"] == 5
    assert h["before"] == round(sum(expect_b.values()) / 10, 4) and h["after"] == 8.0
    saved = json.loads((out / "bench.json").read_text())
    by_id = {row["id"]: row for row in saved["rows"]}
    assert all(by_id[i]["human_before"] == v for i, v in expect_b.items())
    assert (out / "bench.human.xlsx").is_file()  # the person's own file is kept
    back = openpyxl.load_workbook(out / "bench.xlsx")["Comparison"]
    assert back.max_row == 13  # the rewritten sheet has every question again


def _synthetic_result(n: int = 5) -> dict:
    from persona.bench.run import summarize

    rows = [{"id": f"q{i}", "split": "test", "question": f"Otázka {i}?", "reference": "r",
             "before": "Děkuji za otázku.", "after": "Hele, to je jasný.\x07\n\nAndrej Babiš",
             "scores": {"style_before": 0.1, "style_after": 0.9, "signature_before": 0,
                        "signature_after": 1, "words_before": 3, "words_after": 6},
             "judge": None, "human_before": None, "human_after": None} for i in range(n)]
    config = {"persona": "babis", "models": {"before": {"given": "a"}, "after": {"given": "b"}},
              "decoding": {"seed": 1}, "held_out": {"by_split": {"test": n},
                                                    "refused_in_train": 0},
              "classifier": {"persona_answers": 1, "neutral_answers": 1,
                             "holdout_accuracy": 1.0}}
    return {"config": config, "summary": summarize(rows, False), "rows": rows}


def test_sheet_drops_control_characters_and_keeps_them_in_json(tmp_path):
    from persona.bench.sheet import write_all

    paths = write_all(_synthetic_result(), tmp_path)
    cell = openpyxl.load_workbook(paths["xlsx"])["Comparison"]["E2"].value
    assert cell == "Hele, to je jasný.\n\nAndrej Babiš"
    assert "\x07" in json.loads(paths["json"].read_text())["rows"][0]["after"]


def test_libreoffice_renders_every_sheet(tmp_path):
    import shutil

    if not (shutil.which("soffice") and shutil.which("pdfinfo")):
        pytest.skip("LibreOffice (soffice) / poppler not installed")
    from persona.bench.sheet import write_xlsx

    write_xlsx(_synthetic_result(), tmp_path / "bench.xlsx")
    proc = subprocess.run(["soffice", "--headless", "--convert-to", "pdf", "--outdir",
                           str(tmp_path), str(tmp_path / "bench.xlsx")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and (tmp_path / "bench.pdf").is_file(), proc.stderr
    info = subprocess.run(["pdfinfo", str(tmp_path / "bench.pdf")], capture_output=True,
                          text=True).stdout
    pages = int(next(line.split()[-1] for line in info.splitlines()
                     if line.startswith("Pages:")))
    assert pages >= 3  # Summary, Comparison and Config each print


def test_answer_identity_is_the_weights_not_the_path_spelling(tmp_path, monkeypatch):
    from persona.bench.generate import parse_model

    run = tmp_path / "runs" / "m"
    run.mkdir(parents=True)
    (run / "config.json").write_text("{}")
    (run / "model.safetensors").write_bytes(b"weights-1")
    monkeypatch.chdir(tmp_path)
    assert parse_model("runs/m").identity() == parse_model(str(run)).identity()
    other = tmp_path / "copy"
    other.mkdir()
    (other / "config.json").write_text("{}")
    (other / "model.safetensors").write_bytes(b"weights-2")
    assert parse_model(str(other)).identity() != parse_model(str(run)).identity()
    assert parse_model("openai:gpt-4o-mini").identity() == {"kind": "openai",
                                                            "model": "gpt-4o-mini"}


def test_a_bench_of_three_sides_with_its_own_prompt_judge_and_rescore(cli, data, tmp_path):
    """--model NAME=SPEC three times: one answer column, score, human column and chart bar
    per side; win rates and the judge (both orders) against the reference side; a side with
    its own system prompt (the few-shot contender) asks its own requests."""
    out = tmp_path / "bench3"
    prompt = tmp_path / "fewshot.md"
    prompt.write_text("Odpovídej jako Andrej Babiš.\n\nPříklad: Já makám, oni kradou.\n")
    sides = ["--model", "base=openai:gpt-5.4-mini",
             "--model", f"fewshot=openai:gpt-5.4-mini+prompt:{prompt}",
             "--model", "sft=openai:ft:gpt-4o-mini:acme::x1"]
    with serve(openai_rules=True) as srv:
        r = cli("bench", data["babis"], *sides, "--reference", "base", "--base-url", srv.url,
                "--neutral", data["neutral"], "--out", out, "--limit", 12, "--json",
                "--judge", "gpt-5.4-mini")
        asked = srv.stats()["total"]
    s = json.loads(r.output)["summary"]
    assert s["sides"] == ["base", "fewshot", "sft"] and s["reference"] == "base"
    # 3 x 12 answers (the few-shot side's prompt differs: its own requests); the judge: 2
    # orders for each of 2 challengers, and a score per answer of each side, where the
    # few-shot answer equals the base's (this server ignores the system prompt) the cache
    # answers the judge's repeat
    assert 3 * 12 + 2 * 12 + 2 * 12 <= asked <= 3 * 12 + 2 * 2 * 12 + 3 * 12
    sig = s["means"]["signature"]
    assert (sig["base"], sig["sft"]) == (0, 1) and sig["deltas"]["sft"] == 1
    assert set(s["vs_reference"]) == {"fewshot", "sft"}
    assert s["vs_reference"]["sft"]["judge"]["wins"] == 12
    assert s["vs_reference"]["sft"]["style"]["wins"] >= 10
    assert "style_wins" not in s  # the before/after keys belong to the two-sided form

    saved = json.loads((out / "bench.json").read_text())
    assert saved["config"]["models"]["fewshot"]["system_prompt"].startswith("Odpovídej")
    est = {e["side"]: e for e in saved["config"]["remote_estimates"]}
    assert est["base"]["questions"] == 12 and est["base"]["max_usd"] > 0
    assert est["fewshot"]["input_tokens"] != est["base"]["input_tokens"]  # its own prompt
    row = saved["rows"][0]
    assert row["judge"]["sft"]["outcome"] == "sft" and set(row["judge"]) == {"fewshot", "sft"}

    wb = openpyxl.load_workbook(out / "bench.xlsx")
    ws = wb["Comparison"]
    header = [c.value for c in ws[1]]
    assert header[:6] == ["id", "split", "question", "base", "fewshot", "sft"]
    assert {"signature fewshot", "judge verdict sft vs base", "judge verdict fewshot vs base",
            "human base", "human fewshot", "human sft"} <= set(header)
    summary = [[c.value for c in row] for row in wb["Summary"].iter_rows()]
    head = next(row for row in summary if row[0] == "score")
    assert head[:6] == ["score", "base (mean)", "fewshot (mean)", "sft (mean)",
                        "delta fewshot - base", "delta sft - base"]
    chart = wb["Summary"]._charts[0]
    assert len(chart.series) == 3  # a bar per side

    # a person scores the sft column; rescore reads every side's human column back
    col = header.index("human sft") + 1
    for i in range(2, 14):
        ws.cell(i, col, 7)
    wb.save(out / "bench.xlsx")
    again = json.loads(cli("bench", "--rescore", out / "bench.xlsx", "--json").output)
    h = again["summary"]["human"]
    assert (h["sft"], h["n_sft"], h["n_base"]) == (7.0, 12, 0)
    assert again["summary"]["vs_reference"]["sft"]["judge"]["wins"] == 12
    assert "| score | base (mean) | fewshot (mean) | sft (mean) |" in \
        (out / "report.md").read_text()
