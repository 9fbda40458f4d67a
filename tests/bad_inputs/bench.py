"""Bad inputs of `persona bench` (and `--rescore`)."""

from __future__ import annotations

import json
from pathlib import Path

from tests.bad_inputs import Case

SYSTEM = "Jsi satirická napodobenina politika Andreje Babiše."


def _pair(q: str, a: str) -> str:
    return json.dumps({"messages": [{"role": "system", "content": SYSTEM},
                                    {"role": "user", "content": q},
                                    {"role": "assistant", "content": a}]},
                      ensure_ascii=False) + "\n"


def dataset(ws: Path, *, test: str | None = None, train_questions: int = 20) -> Path:
    d = ws / "final" / "babis"
    d.mkdir(parents=True, exist_ok=True)
    (d / "train.jsonl").write_text("".join(
        _pair(f"Otázka číslo {i} na inflaci?", f"Já makám, inflace {i}.\n\nAndrej Babiš")
        for i in range(train_questions)), encoding="utf-8")
    (d / "test.jsonl").write_text(test if test is not None else "".join(
        _pair(f"Jak řešit daně číslo {i}?", "Daně snížíme.\n\nAndrej Babiš")
        for i in range(3)), encoding="utf-8")
    return d


def _ok(ws: Path) -> None:
    dataset(ws)


def _no_test(ws: Path) -> None:
    dataset(ws).joinpath("test.jsonl").unlink()


def _empty_test(ws: Path) -> None:
    dataset(ws, test="")


def _binary_test(ws: Path) -> None:
    d = dataset(ws)
    (d / "test.jsonl").write_bytes(b"\x00\xff\xfe\x00binary\x89PNG" * 20)


def _broken_line(ws: Path) -> None:
    dataset(ws, test=_pair("Jak řešit daně?", "Daně.") + '{"messages": [\n')


def _no_assistant(ws: Path) -> None:
    dataset(ws, test=json.dumps({"messages": [{"role": "user", "content": "Daně?"}]}) + "\n")


def _all_in_train(ws: Path) -> None:
    dataset(ws, test=_pair("Otázka číslo 3 na inflaci?", "x") +
            _pair("otázka  číslo 4 na INFLACI?", "y"))


def _model_dirs(ws: Path) -> None:
    dataset(ws)
    (ws / "empty-model").mkdir()
    (ws / "weights.bin").write_bytes(b"\x00" * 10)


def _sheet_text(ws: Path) -> None:
    (ws / "bench.xlsx").write_text("id,human before\n1,5\n")


def _sheet(ws: Path, rows: list[list], sheet: str = "Comparison",
           header: tuple = ("id", "question", "human before", "human after")) -> None:
    from openpyxl import Workbook

    wb = Workbook()
    wb.active.title = sheet
    wb.active.append(list(header))
    for r in rows:
        wb.active.append(r)
    wb.save(ws / "bench.xlsx")
    (ws / "bench.json").write_text(json.dumps({"config": {}, "summary": {}, "rows": [
        {"id": "a", "question": "q", "scores": {}}]}))


CASES: list[Case] = [
    # a model that is not there: one line at once, not a minute of hub retries
    Case("bench-before-missing-local-folder", ("bench", "{ws}/final/babis", "--before",
                                               "./does-not-exist", "--after", "openai:m"),
         workspace=True, stderr="no such model folder", max_lines=1, timeout=10),
    Case("bench-before-missing-folder-or-hub-id", ("bench", "{ws}/final/babis", "--before",
                                                   "runs/base", "--after", "openai:m"),
         workspace=True, stderr="no such model folder here, and as a hub id", max_lines=1,
         timeout=20),
    Case("bench-missing-dataset", ("bench", "{ws}/final/nope", "--before", "x", "--after", "y"),
         stderr="not a dataset folder"),
    Case("bench-dataset-is-a-file", ("bench", "{ws}/final/babis/train.jsonl", "--before", "x",
                                     "--after", "y"), setup=_ok, stderr="not a dataset folder"),
    Case("bench-no-test-split", ("bench", "{ws}/final/babis", "--before", "openai:m",
                                 "--after", "openai:n"), setup=_no_test,
         stderr="no test.jsonl"),
    Case("bench-empty-test-split", ("bench", "{ws}/final/babis", "--before", "openai:m",
                                    "--after", "openai:n"), setup=_empty_test,
         stderr="no held-out question"),
    Case("bench-binary-test-split", ("bench", "{ws}/final/babis", "--before", "openai:m",
                                     "--after", "openai:n"), setup=_binary_test,
         stderr="test.jsonl"),
    Case("bench-broken-line", ("bench", "{ws}/final/babis", "--before", "openai:m",
                               "--after", "openai:n"), setup=_broken_line,
         stderr="test.jsonl:2: invalid JSON"),
    Case("bench-no-assistant", ("bench", "{ws}/final/babis", "--before", "openai:m",
                                "--after", "openai:n"), setup=_no_assistant,
         stderr="test.jsonl:1"),
    Case("bench-every-question-in-train", ("bench", "{ws}/final/babis", "--before", "openai:m",
                                           "--after", "openai:n"), setup=_all_in_train,
         stderr="no held-out question left (2 occur in train)"),
    Case("bench-no-models", ("bench", "{ws}/final/babis"), setup=_ok,
         stderr="give both --before and --after"),
    Case("bench-no-dataset", ("bench", "--before", "x", "--after", "y"),
         stderr="missing FINAL_DIR"),
    Case("bench-model-folder-without-model", ("bench", "{ws}/final/babis", "--before",
                                              "{ws}/empty-model", "--after", "openai:n"),
         setup=_model_dirs, stderr="no model here"),
    Case("bench-model-is-a-file", ("bench", "{ws}/final/babis", "--before", "{ws}/weights.bin",
                                   "--after", "openai:n"), setup=_model_dirs,
         stderr="a model is a folder"),
    Case("bench-model-missing", ("bench", "{ws}/final/babis", "--before", "./runs/nope",
                                 "--after", "openai:n"), setup=_ok,
         stderr="no such model folder"),
    Case("bench-openai-without-model", ("bench", "{ws}/final/babis", "--before", "openai:",
                                        "--after", "openai:n"), setup=_ok,
         stderr="openai: needs a model name"),
    Case("bench-unknown-persona", ("bench", "{ws}/final/babis", "--before", "openai:m",
                                   "--after", "openai:n", "--persona", "nobody"), setup=_ok,
         stderr="unknown persona"),
    Case("bench-server-down", ("bench", "{ws}/final/babis", "--before", "openai:gpt-4o-mini",
                               "--after", "openai:gpt-4o-mini", "--base-url",
                               "http://127.0.0.1:9/v1"), setup=_ok,
         stderr="cannot connect", timeout=120),
    Case("bench-max-cost-unpriced-model", ("bench", "{ws}/final/babis", "--before",
                                           "openai:my-local-model", "--after", "openai:n",
                                           "--base-url", "http://127.0.0.1:9/v1",
                                           "--max-cost", "1"), setup=_ok,
         stderr="needs the price of model"),
    Case("bench-bad-temperature", ("bench", "{ws}/final/babis", "--before", "x", "--after",
                                   "y", "--temperature", "-1"), stderr="temperature", max_lines=4),
    Case("bench-repetition-penalty-below-one", ("bench", "{ws}/final/babis", "--before", "x",
                                               "--after", "y", "--repetition-penalty", "0.5"),
         stderr="repetition-penalty", max_lines=4),
    Case("bench-repetition-penalty-not-a-number", ("bench", "{ws}/final/babis", "--before",
                                                   "x", "--after", "y",
                                                   "--repetition-penalty", "lots"),
         stderr="repetition-penalty", max_lines=4),
    Case("bench-negative-no-repeat-ngram", ("bench", "{ws}/final/babis", "--before", "x",
                                            "--after", "y", "--no-repeat-ngram", "-1"),
         stderr="no-repeat-ngram", max_lines=4),
    Case("bench-bad-batch-size", ("bench", "{ws}/final/babis", "--before", "x", "--after",
                                  "y", "--batch-size", "0"), stderr="batch-size", max_lines=4),
    Case("bench-embed-model-not-a-folder", ("bench", "{ws}/final/babis", "--before",
                                            "openai:m", "--after", "openai:n",
                                            "--embed-model", "{ws}/nope"), setup=_ok,
         stderr="--embed-model must be a local model folder"),
    Case("bench-neutral-missing", ("bench", "{ws}/final/babis", "--before", "openai:m",
                                   "--after", "openai:n", "--neutral", "{ws}/nope"),
         setup=_ok, stderr="no such neutral dataset"),
    Case("rescore-missing-sheet", ("bench", "--rescore", "{ws}/nope.xlsx"),
         stderr="no such sheet"),
    Case("rescore-directory", ("bench", "--rescore", "{ws}"), stderr="no such sheet"),
    Case("rescore-not-xlsx", ("bench", "--rescore", "{ws}/bench.xlsx"), setup=_sheet_text,
         stderr="not an .xlsx workbook"),
    Case("rescore-no-comparison-sheet", ("bench", "--rescore", "{ws}/bench.xlsx"),
         setup=lambda ws: _sheet(ws, [["a", "q", 5, 6]], sheet="Other"),
         stderr="no 'Comparison' sheet"),
    Case("rescore-missing-columns", ("bench", "--rescore", "{ws}/bench.xlsx"),
         setup=lambda ws: _sheet(ws, [["a", "q"]], header=("id", "question")),
         stderr="'human before'"),
    Case("rescore-not-a-number", ("bench", "--rescore", "{ws}/bench.xlsx"),
         setup=lambda ws: _sheet(ws, [["a", "q", "good", None]]),
         stderr="bench.xlsx:2: human before: expected a number"),
    Case("rescore-unknown-id", ("bench", "--rescore", "{ws}/bench.xlsx"),
         setup=lambda ws: _sheet(ws, [["zzz", "q", 5, 6]]),
         stderr="not in bench.json"),
    Case("rescore-with-models", ("bench", "--rescore", "{ws}/bench.xlsx", "--before", "x"),
         stderr="--rescore takes only the sheet"),
]

B3 = ("bench", "{ws}/final/babis")
CASES += [
    Case("bench-model-without-equals", (*B3, "--model", "runs/base", "--model", "b=openai:n"),
         setup=_ok, stderr="expected NAME=SPEC"),
    Case("bench-model-one-side", (*B3, "--model", "a=openai:m"), setup=_ok,
         stderr="at least two sides"),
    Case("bench-model-name-reserved", (*B3, "--model", "question=openai:m", "--model",
                                       "b=openai:n"), setup=_ok, stderr="a side name is"),
    Case("bench-model-twice", (*B3, "--model", "a=openai:m", "--model", "a=openai:n"),
         setup=_ok, stderr="given twice"),
    Case("bench-model-and-before", (*B3, "--model", "a=openai:m", "--model", "b=openai:n",
                                    "--before", "openai:m"), setup=_ok, stderr="not both"),
    Case("bench-reference-unknown", (*B3, "--model", "a=openai:m", "--model", "b=openai:n",
                                     "--reference", "c"), setup=_ok, stderr="is no side"),
    Case("bench-side-prompt-missing", (*B3, "--model", "a=openai:m", "--model",
                                       "b=openai:m+prompt:nosuch.md"), setup=_ok,
         stderr="no such system prompt file"),
]
