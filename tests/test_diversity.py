"""The diversity figures and the held-out check, on small hand-made data."""

import re
import subprocess
import sys

from persona import diversity as D
from tests.conftest import ROOT


def test_measure_counts_openings_repeats_lengths_and_labels():
    sig = "AB"
    answers = ["Jedna dva tři čtyři pět šest. Stejná věta.\n\nAB",
               "Jedna dva tři čtyři pět sedm. Stejná věta. Třetí!\n\nAB",
               "Jiný začátek tady je. Stejná věta?\n\nAB",
               "Krátká.\n\nAB"]
    questions = ["Co takzvaní experti?", "Proč?", "Proč?", "Kdy?"]
    d = D.measure(questions, answers, sig, ["takzvan"])
    assert d["distinct_openings_5w"] == {"count": 3, "percent": 75.0}
    assert d["most_repeated_sentence"]["text"] == "Stejná věta."
    assert d["most_repeated_sentence"]["answers"] == 2
    assert d["sentences_per_answer"]["distribution"] == {"1": 1, "2": 2, "3": 1}
    assert d["sentences_per_answer"]["max_share_percent"] == 50.0
    assert d["distinct_questions"] == {"count": 3, "percent": 75.0, "max_repeats": 2}
    assert d["questions_with_labels"]["count"] == 1
    assert d["answer_sentences"] == 8
    assert D.guess_signature(answers) == "AB"
    assert D.middle(answers[1], sig) == "Stejná věta."


def test_leakage_by_template_question_and_topic():
    meta = [{"split": "train", "template_id": "t1", "values": {"tema": "a"}},
            {"split": "val", "template_id": "t1", "values": {"tema": "b"}},
            {"split": "test", "template_id": "t2", "values": {"tema": "a"}}]
    lk = D.leakage(["Q1", "Q2"], ["Q2", "Q3"], meta, "tema")
    assert lk["test_questions_in_train"] == 1
    assert (lk["val_templates_in_train"], lk["test_templates_in_train"]) == (1, 0)
    assert lk["test_topics_in_train"] == 1


def test_style_classifier_finds_a_style_that_lives_in_the_middle():
    answers, styles = [], []
    for i in range(60):
        style = ("a", "b")[i % 2]
        inner = "Hrůza hrůza veliká!" if style == "a" else "Klid, vše je v pořádku."
        answers.append(f"Úvod číslo {i}. {inner} Závěr {i}.\n\nAB")
        styles.append(style)
    c = D.style_classifier(answers, styles, "AB", folds=3)
    assert c["accuracy_percent"] >= 95 and c["chance_percent"] == 50.0


def test_dataset_stats_script_prints_the_figures(tmp_path, cli):
    ws = tmp_path / "ws"
    cli("run", "--count", 60, "--workspace", ws)
    proc = subprocess.run([sys.executable, str(ROOT / "scripts/dataset_stats.py"),
                           str(ws / "final/babis"), "--no-classifier"],
                          capture_output=True, text=True, check=True)
    assert "distinct 5-word openings" in proc.stdout
    assert re.search(r"val / test templates in train\s+0 / 0", proc.stdout), proc.stdout
    bad = subprocess.run([sys.executable, str(ROOT / "scripts/dataset_stats.py"),
                          str(tmp_path / "nope")], capture_output=True, text=True)
    assert bad.returncode == 2 and "error:" in bad.stderr and "Traceback" not in bad.stderr
