"""Lay out a bench result: bench.xlsx (Summary, Comparison, Config), bench.csv, report.md,
bench.png and bench.json. Only layout here; every number comes from run.py / scores.py.

bench.xlsx is written with openpyxl (it also reads the sheet back for --rescore): wrapped
text, a frozen header, filters and colour scales on the Comparison sheet, a bar chart of the
0-1 scores on Summary, and live AVERAGE formulas over the human-score columns, so the means
update while a person types scores in a spreadsheet program.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

from persona.bench import scores as S
from persona.io import atomic_writer, write_json, write_text

# Scores on a 0-1 scale: the chart shows these side by side.
CHART_KEYS = ("style", "signature", "relevance", "distinct2", "repetition", "embed_sim")
TEXT_COLS = ("question", "reference", "before", "after")
HUMAN_COLS = ("human before", "human after")
# Colour-scale ends of the scores whose range is known (by header prefix).
FIXED_SCALES = {"style probability": (0, 1), "signature": (0, 1), "relevance": (0, 1),
                "distinct-2": (0, 1), "repetition": (0, 1), "embedding similarity": (0, 1),
                "judge score": (1, 10)}


def columns(result: dict) -> list[tuple[str, Any]]:
    """(header, getter) of every Comparison column, in order."""
    present = set()
    for r in result["rows"]:
        present |= {k for k, v in r["scores"].items() if v is not None}
    cols: list[tuple[str, Any]] = [
        ("id", lambda r: r["id"]), ("split", lambda r: r["split"]),
        ("question", lambda r: r["question"]), ("before", lambda r: r["before"]),
        ("after", lambda r: r["after"]),
    ]
    for key, header, _better in S.SCORES:
        for side in ("before", "after"):
            k = f"{key}_{side}"
            if k in present:
                cols.append((f"{header} {side}", lambda r, k=k: r["scores"].get(k)))
    if any(r.get("judge") for r in result["rows"]):
        cols.append(("judge verdict", lambda r: (r.get("judge") or {}).get("outcome")))
    cols += [("human before", lambda r: r.get("human_before")),
             ("human after", lambda r: r.get("human_after")),
             ("reference", lambda r: r["reference"])]
    return cols


def write_all(result: dict, out: Path) -> dict[str, Path]:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / "bench.json", "csv": out / "bench.csv", "xlsx": out / "bench.xlsx",
             "md": out / "report.md", "png": out / "bench.png"}
    write_json(paths["json"], result)
    write_csv(result, paths["csv"])
    plot(result, paths["png"])
    write_xlsx(result, paths["xlsx"])
    write_text(paths["md"], report_md(result, paths["png"].name))
    return paths


def write_csv(result: dict, path: Path) -> None:
    cols = columns(result)
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow([h for h, _ in cols])
    for r in result["rows"]:
        w.writerow(["" if (v := get(r)) is None else v for _, get in cols])
    write_text(path, buf.getvalue())


def summary_rows(result: dict) -> list[list[Any]]:
    s = result["summary"]
    rows: list[list[Any]] = [["score", "before (mean)", "after (mean)", "delta", "n",
                              "higher is better"]]
    for m in s["means"].values():
        better = {True: "yes", False: "no", None: "-"}[m["higher_is_better"]]
        rows.append([m["header"], m["before"], m["after"], m["delta"], m["n"], better])
    return rows


def win_rows(result: dict) -> list[list[Any]]:
    s = result["summary"]
    sw = s["style_wins"]
    rows = [["comparison", "after wins", "before wins", "ties", "inconsistent",
             "win rate (after)", "95 % CI low", "95 % CI high"],
            ["style probability, per question", sw["after"], sw["before"], sw["tie"], "-",
             sw["win_rate_after"], *sw["ci95"]]]
    if "judge" in s:
        j = s["judge"]
        rows.append(["LLM judge, both orders", j["after"], j["before"], j["tie"],
                     j["inconsistent"], j["win_rate_after"], *j["ci95"]])
    return rows


def write_xlsx(result: dict, path: Path) -> None:
    from openpyxl import Workbook
    from openpyxl.chart import BarChart, Reference
    from openpyxl.formatting.rule import ColorScaleRule
    from openpyxl.styles import Alignment, Font, PatternFill
    from openpyxl.utils import get_column_letter

    bold = Font(bold=True)
    head_fill = PatternFill("solid", fgColor="DDE4EE")
    wb = Workbook()
    cmp_ws = wb.active
    cmp_ws.title = "Comparison"
    summ = wb.create_sheet("Summary", 0)
    conf = wb.create_sheet("Config")

    # -- Comparison
    cols = columns(result)
    n = len(result["rows"])
    cmp_ws.append([h for h, _ in cols])
    for r in result["rows"]:
        cmp_ws.append([_cell(get(r)) for _, get in cols])
    for j, (h, _) in enumerate(cols, start=1):
        letter = get_column_letter(j)
        cell = cmp_ws.cell(1, j)
        cell.font, cell.fill = bold, head_fill
        cell.alignment = Alignment(wrap_text=True, vertical="top")
        wide = h in TEXT_COLS
        cmp_ws.column_dimensions[letter].width = 48 if wide else (14 if h != "id" else 18)
        for i in range(2, n + 2):
            cmp_ws.cell(i, j).alignment = Alignment(wrap_text=True, vertical="top")
        values = {cmp_ws.cell(i, j).value for i in range(2, n + 2)} - {None}
        if len(values) > 1 and h not in (*TEXT_COLS, "id", "split", "judge verdict",
                                         *HUMAN_COLS):
            rng = f"{letter}2:{letter}{n + 1}"
            low_good = any(h.startswith(x) for x in ("perplexity", "repetition"))
            lo, hi = ("63BE7B", "F8696B") if low_good else ("F8696B", "63BE7B")
            # Fixed ends where the scale is known, so a column of all 1s is green, not "min".
            ends = next((e for prefix, e in FIXED_SCALES.items() if h.startswith(prefix)), None)
            kind, (a, b) = ("num", ends) if ends else ("min", (None, None))
            cmp_ws.conditional_formatting.add(rng, ColorScaleRule(
                start_type=kind, start_value=a, start_color=lo,
                mid_type="percentile" if not ends else "num",
                mid_value=50 if not ends else (a + b) / 2, mid_color="FFEB84",
                end_type="max" if not ends else "num", end_value=b, end_color=hi))
        if h in HUMAN_COLS:
            for i in range(2, n + 2):
                cmp_ws.cell(i, j).fill = PatternFill("solid", fgColor="FFF7D6")
    cmp_ws.freeze_panes = "C2"
    cmp_ws.auto_filter.ref = f"A1:{get_column_letter(len(cols))}{n + 1}"
    for i in range(2, n + 2):
        cmp_ws.row_dimensions[i].height = 96

    # -- Summary
    summ.append([f"Before/after benchmark: {result['config']['persona']} "
                 f"({result['summary']['questions']} held-out questions)"])
    summ["A1"].font = Font(bold=True, size=14)
    c = result["config"]["models"]
    summ.append([f"before: {c['before']['given']}    after: {c['after']['given']}"])
    summ.append([])
    top = summ.max_row + 1
    for row in summary_rows(result):
        summ.append(row)
    for cell in summ[top]:
        cell.font, cell.fill = bold, head_fill
    means_end = summ.max_row
    summ.append([])
    wtop = summ.max_row + 1
    for row in win_rows(result):
        summ.append(row)
    for cell in summ[wtop]:
        cell.font, cell.fill = bold, head_fill
    summ.append([])
    htop = summ.max_row + 1
    summ.append(["human score (typed into Comparison)", "before (mean)", "after (mean)",
                 "scored before", "scored after"])
    for cell in summ[htop]:
        cell.font, cell.fill = bold, head_fill
    letters = {h: get_column_letter(j) for j, (h, _) in enumerate(cols, start=1)}
    hb, ha = letters["human before"], letters["human after"]
    end = n + 1
    summ.append(["live formulas", f'=IFERROR(AVERAGE(Comparison!{hb}2:{hb}{end}),"")',
                 f'=IFERROR(AVERAGE(Comparison!{ha}2:{ha}{end}),"")',
                 f"=COUNT(Comparison!{hb}2:{hb}{end})", f"=COUNT(Comparison!{ha}2:{ha}{end})"])
    h = result["summary"]["human"]
    summ.append(["read back by --rescore", h["before"], h["after"], h["n_before"],
                 h["n_after"]])
    summ.column_dimensions["A"].width = 34
    for letter in "BCDEFGH":
        summ.column_dimensions[letter].width = 14
    # chart of the 0-1 scores
    chart_rows = [i for i in range(top + 1, means_end + 1)
                  if _key_of(result, summ.cell(i, 1).value) in CHART_KEYS]
    if chart_rows:
        ctop = summ.max_row + 3
        summ.cell(ctop, 1, "score (0-1)").font = bold
        summ.cell(ctop, 2, "before").font = bold
        summ.cell(ctop, 3, "after").font = bold
        for k, i in enumerate(chart_rows, start=1):
            summ.cell(ctop + k, 1, summ.cell(i, 1).value)
            summ.cell(ctop + k, 2, f"=B{i}")
            summ.cell(ctop + k, 3, f"=C{i}")
            summ.cell(ctop + k, 2).number_format = summ.cell(ctop + k, 3).number_format = "0.00"
        chart = BarChart()
        chart.type = "col"
        chart.title = "Before vs after (means, 0-1 scores)"
        chart.y_axis.title = "mean"
        chart.y_axis.scaling.min, chart.y_axis.scaling.max = 0, 1
        data = Reference(summ, min_col=2, max_col=3, min_row=ctop, max_row=ctop + len(chart_rows))
        cats = Reference(summ, min_col=1, min_row=ctop + 1, max_row=ctop + len(chart_rows))
        chart.add_data(data, titles_from_data=True)
        chart.set_categories(cats)
        chart.height, chart.width = 9, 18
        summ.add_chart(chart, f"J{top}")
    for row in summ.iter_rows(min_row=top, max_row=summ.max_row):
        for cell in row:
            if isinstance(cell.value, float):
                cell.number_format = "0.000"

    # -- Config
    conf.append(["setting", "value"])
    for cell in conf[1]:
        cell.font, cell.fill = bold, head_fill
    for k, v in _flatten(result["config"]):
        conf.append([k, v if isinstance(v, (int, float, str)) or v is None else json.dumps(v)])
    conf.column_dimensions["A"].width = 40
    conf.column_dimensions["B"].width = 100
    for row in conf.iter_rows(min_row=2):
        row[0].alignment = Alignment(vertical="top")
        row[1].alignment = Alignment(wrap_text=True, vertical="top", horizontal="left")
        long = len(str(row[1].value or ""))
        if long > 100:  # spreadsheet programs do not grow rows for wrapped text on open
            conf.row_dimensions[row[1].row].height = 15 * (long // 100 + 1)
    # Printing / PDF export: landscape, one page wide; Summary on one page; the Comparison
    # header repeated on every page.
    for ws, tall in ((summ, 1), (cmp_ws, 0), (conf, 0)):
        ws.page_setup.orientation = "landscape"
        ws.page_setup.paperSize = ws.PAPERSIZE_A4
        ws.sheet_properties.pageSetUpPr.fitToPage = True
        ws.page_setup.fitToWidth, ws.page_setup.fitToHeight = 1, tall
    cmp_ws.print_title_rows = "1:1"
    with atomic_writer(path, "wb") as fh:
        wb.save(fh)


def _cell(value: Any) -> Any:
    """Control characters (a small model may write them) cannot live in an xlsx cell: they
    are dropped there; bench.json and bench.csv keep the text as generated."""
    if isinstance(value, str):
        from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

        return ILLEGAL_CHARACTERS_RE.sub("", value)
    return value


def _key_of(result: dict, header: str | None) -> str | None:
    for key, m in result["summary"]["means"].items():
        if m["header"] == header:
            return key
    return None


def _flatten(obj: Any, prefix: str = ""):
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _flatten(v, f"{prefix}.{k}" if prefix else str(k))
    else:
        yield prefix, obj


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    means = result["summary"]["means"]
    keys = [k for k in CHART_KEYS if k in means and means[k]["before"] is not None]
    fig, ax = plt.subplots(figsize=(7, 3.6))
    x = range(len(keys))
    ax.bar([i - 0.2 for i in x], [means[k]["before"] for k in keys], 0.4, label="before")
    ax.bar([i + 0.2 for i in x], [means[k]["after"] or 0 for k in keys], 0.4, label="after")
    ax.set_xticks(list(x), [means[k]["header"] for k in keys], rotation=15)
    ax.set_ylim(0, 1)
    ax.set_ylabel("mean over held-out questions")
    ax.set_title(f"{result['config']['persona']}: before vs after "
                 f"({result['summary']['questions']} questions)")
    ax.legend()
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _fmt(v: Any) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:.3f}"
    return str(v)


def _pairs(d: dict, code: bool = False) -> str:
    """A dict as people read it: "test 300, val (held-out topic) 12" (not a Python repr)."""
    q = "`" if code else ""
    return ", ".join(f"{k} {q}{v}{q}" for k, v in d.items())


def report_md(result: dict, plot_name: str, examples: int = 3) -> str:
    c, s = result["config"], result["summary"]
    lines = [f"# Before/after benchmark: {c['persona']}", "",
             f"- before: `{c['models']['before']['given']}`",
             f"- after: `{c['models']['after']['given']}`",
             f"- {s['questions']} held-out questions ({_pairs(c['held_out']['by_split'])}); "
             f"{c['held_out']['refused_in_train']} refused because they occur in train",
             f"- same system prompt, decoding and seed on both sides: "
             f"{_pairs(c['decoding'], code=True)}",
             f"- style classifier: {c['classifier']['persona_answers']} persona vs "
             f"{c['classifier']['neutral_answers']} neutral answers, held-out accuracy "
             f"{_fmt(c['classifier']['holdout_accuracy'])}", "",
             f"![before vs after]({plot_name})", "",
             "| score | before | after | delta | n |", "|---|---|---|---|---|"]
    for m in s["means"].values():
        lines.append(f"| {m['header']} | {_fmt(m['before'])} | {_fmt(m['after'])} | "
                     f"{_fmt(m['delta'])} | {m['n']} |")
    lines += ["", "| comparison | after wins | before wins | ties | inconsistent | "
              "win rate (after) | 95 % CI |", "|---|---|---|---|---|---|---|"]
    for r in win_rows(result)[1:]:
        lines.append(f"| {r[0]} | {r[1]} | {r[2]} | {r[3]} | {r[4]} | {_fmt(r[5])} | "
                     f"{_fmt(r[6])}–{_fmt(r[7])} |")
    h = s["human"]
    lines += ["", f"Human scores: before {_fmt(h['before'])} ({h['n_before']} scored), "
              f"after {_fmt(h['after'])} ({h['n_after']} scored).", "", "## Examples", ""]
    for r in result["rows"][:examples]:
        lines += [f"**{r['id']}** — {r['question']}", "",
                  f"- before: {r['before']!s}".replace("\n", " "),
                  f"- after: {r['after']!s}".replace("\n", " "), ""]
    lines.append("Scores are explained in docs/benchmark.md.")
    return "\n".join(lines) + "\n"
