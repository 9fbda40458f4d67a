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
TEXT_COLS = ("question", "reference")  # and every side's answer column
# Colour-scale ends of the scores whose range is known (by header prefix).
FIXED_SCALES = {"style probability": (0, 1), "signature": (0, 1), "relevance": (0, 1),
                "distinct-2": (0, 1), "repetition": (0, 1), "embedding similarity": (0, 1),
                "judge score": (1, 10)}


def sides(result: dict) -> tuple[list[str], str]:
    """The bench's sides in order and its reference side (before/after for older results)."""
    c = result["config"]
    names = c.get("sides") or ["before", "after"]
    return list(names), c.get("reference") or names[0]


def columns(result: dict) -> list[tuple[str, Any]]:
    """(header, getter) of every Comparison column, in order: one answer column per side,
    each score per side, a judge verdict per side compared with the reference, a human
    score column per side."""
    names, ref = sides(result)
    others = [s for s in names if s != ref]
    present = set()
    for r in result["rows"]:
        present |= {k for k, v in r["scores"].items() if v is not None}
    cols: list[tuple[str, Any]] = [
        ("id", lambda r: r["id"]), ("split", lambda r: r["split"]),
        ("question", lambda r: r["question"]),
        *[(side, lambda r, side=side: r[side]) for side in names],
    ]
    for key, header, _better in S.SCORES:
        for side in names:
            k = f"{key}_{side}"
            if k in present:
                cols.append((f"{header} {side}", lambda r, k=k: r["scores"].get(k)))
    if any(r.get("judge") for r in result["rows"]):
        for side in others:
            head = "judge verdict" if len(others) == 1 else f"judge verdict {side} vs {ref}"
            cols.append((head, lambda r, side=side:
                         ((r.get("judge") or {}).get(side) or {}).get("outcome")))
    cols += [(f"human {side}", lambda r, side=side: r.get(f"human_{side}")) for side in names]
    cols.append(("reference", lambda r: r["reference"]))
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
    """A row per score: every side's mean, each side's delta against the reference."""
    s = result["summary"]
    names, ref = sides(result)
    others = [x for x in names if x != ref]
    deltas = ["delta"] if len(others) == 1 else [f"delta {x} - {ref}" for x in others]
    rows: list[list[Any]] = [["score", *[f"{x} (mean)" for x in names], *deltas, "n",
                              "higher is better"]]
    for m in s["means"].values():
        better = {True: "yes", False: "no", None: "-"}[m["higher_is_better"]]
        d = m.get("deltas") or {others[0]: m.get("delta")}
        rows.append([m["header"], *[m.get(x) for x in names], *[d.get(x) for x in others],
                     m["n"], better])
    return rows


def win_rows(result: dict) -> list[list[Any]]:
    """A row per side and comparison (style per question, the judge) against the
    reference."""
    s = result["summary"]
    names, ref = sides(result)
    rows: list[list[Any]] = [["comparison", "side wins", f"{ref} wins", "ties",
                              "inconsistent", "win rate (side)", "95 % CI low",
                              "95 % CI high"]]
    for side, vs in s.get("vs_reference", {}).items():
        st = vs["style"]
        rows.append([f"style probability, per question: {side} vs {ref}", st["wins"],
                     st["losses"], st["ties"], "-", st["win_rate"], *st["ci95"]])
    for side, vs in s.get("vs_reference", {}).items():
        if "judge" in vs:
            j = vs["judge"]
            rows.append([f"LLM judge, both orders: {side} vs {ref}", j["wins"], j["losses"],
                         j["tie"], j["inconsistent"], j["win_rate"], *j["ci95"]])
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
    names, ref = sides(result)
    human_cols = {f"human {x}" for x in names}
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
        wide = h in TEXT_COLS or h in names
        cmp_ws.column_dimensions[letter].width = 48 if wide else (14 if h != "id" else 18)
        for i in range(2, n + 2):
            cmp_ws.cell(i, j).alignment = Alignment(wrap_text=True, vertical="top")
        values = {cmp_ws.cell(i, j).value for i in range(2, n + 2)} - {None}
        if len(values) > 1 and h not in (*TEXT_COLS, *names, "id", "split", *human_cols) \
                and not h.startswith("judge verdict"):
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
        if h in human_cols:
            for i in range(2, n + 2):
                cmp_ws.cell(i, j).fill = PatternFill("solid", fgColor="FFF7D6")
    cmp_ws.freeze_panes = "C2"
    cmp_ws.auto_filter.ref = f"A1:{get_column_letter(len(cols))}{n + 1}"
    for i in range(2, n + 2):
        cmp_ws.row_dimensions[i].height = 96

    # -- Summary
    summ.append([f"{_title(result)}: {result['config']['persona']} "
                 f"({result['summary']['questions']} held-out questions)"])
    summ["A1"].font = Font(bold=True, size=14)
    c = result["config"]["models"]
    summ.append(["    ".join(f"{x}: {c[x]['given']}" for x in names)
                 + (f"    (compared with {ref})" if len(names) > 2 else "")])
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
    summ.append(["human score (typed into Comparison)", *[f"{x} (mean)" for x in names],
                 *[f"scored {x}" for x in names]])
    for cell in summ[htop]:
        cell.font, cell.fill = bold, head_fill
    letters = {h: get_column_letter(j) for j, (h, _) in enumerate(cols, start=1)}
    hl = [letters[f"human {x}"] for x in names]
    end = n + 1
    summ.append(["live formulas",
                 *[f'=IFERROR(AVERAGE(Comparison!{x}2:{x}{end}),"")' for x in hl],
                 *[f"=COUNT(Comparison!{x}2:{x}{end})" for x in hl]])
    h = result["summary"]["human"]
    summ.append(["read back by --rescore", *[h.get(x) for x in names],
                 *[h.get(f"n_{x}") for x in names]])
    summ.column_dimensions["A"].width = 34
    for j in range(2, 3 + 2 * len(names) + 2):
        summ.column_dimensions[get_column_letter(j)].width = 14
    # chart of the 0-1 scores
    chart_rows = [i for i in range(top + 1, means_end + 1)
                  if _key_of(result, summ.cell(i, 1).value) in CHART_KEYS]
    if chart_rows:
        ctop = summ.max_row + 3
        summ.cell(ctop, 1, "score (0-1)").font = bold
        for j, x in enumerate(names, start=2):
            summ.cell(ctop, j, x).font = bold
        for k, i in enumerate(chart_rows, start=1):
            summ.cell(ctop + k, 1, summ.cell(i, 1).value)
            for j in range(2, len(names) + 2):
                letter = get_column_letter(j)
                summ.cell(ctop + k, j, f"={letter}{i}").number_format = "0.00"
        chart = BarChart()
        chart.type = "col"
        chart.title = f"{' vs '.join(names)} (means, 0-1 scores)"
        chart.y_axis.title = "mean"
        chart.y_axis.scaling.min, chart.y_axis.scaling.max = 0, 1
        data = Reference(summ, min_col=2, max_col=len(names) + 1, min_row=ctop,
                         max_row=ctop + len(chart_rows))
        cats = Reference(summ, min_col=1, min_row=ctop + 1, max_row=ctop + len(chart_rows))
        chart.add_data(data, titles_from_data=True)
        chart.set_categories(cats)
        chart.height, chart.width = 9, 18 + 3 * max(0, len(names) - 2)
        summ.add_chart(chart, f"{get_column_letter(2 * len(names) + 5)}{top}")
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
    names, _ref = sides(result)
    keys = [k for k in CHART_KEYS if k in means and means[k].get(names[0]) is not None]
    fig, ax = plt.subplots(figsize=(7 + max(0, len(names) - 2), 3.6))
    x = range(len(keys))
    width = 0.8 / len(names)
    for j, side in enumerate(names):
        offset = (j - (len(names) - 1) / 2) * width
        ax.bar([i + offset for i in x], [means[k].get(side) or 0 for k in keys], width,
               label=side)
    ax.set_xticks(list(x), [means[k]["header"] for k in keys], rotation=15)
    ax.set_ylim(0, 1)
    ax.set_ylabel("mean over held-out questions")
    ax.set_title(f"{result['config']['persona']}: {' vs '.join(names)} "
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


def _title(result: dict) -> str:
    names, _ref = sides(result)
    return "Before/after benchmark" if names == ["before", "after"] else \
        f"Benchmark of {len(names)} sides"


def report_md(result: dict, plot_name: str, examples: int = 3) -> str:
    c, s = result["config"], result["summary"]
    names, ref = sides(result)
    same = "both sides" if len(names) == 2 else f"all {len(names)} sides"
    lines = [f"# {_title(result)}: {c['persona']}", "",
             *[f"- {x}: `{c['models'][x]['given']}`" + (" (reference)" if x == ref and
                                                       len(names) > 2 else "")
               for x in names],
             f"- {s['questions']} held-out questions ({_pairs(c['held_out']['by_split'])}); "
             f"{c['held_out']['refused_in_train']} refused because they occur in train",
             f"- same system prompt, decoding and seed on {same}: "
             f"{_pairs(c['decoding'], code=True)}",
             f"- style classifier: {c['classifier']['persona_answers']} persona vs "
             f"{c['classifier']['neutral_answers']} neutral answers, held-out accuracy "
             f"{_fmt(c['classifier']['holdout_accuracy'])}", "",
             f"![{' vs '.join(names)}]({plot_name})", ""]
    table = summary_rows(result)
    lines += ["| " + " | ".join(table[0][:-1]) + " |",
              "|" + "---|" * (len(table[0]) - 1)]
    for row in table[1:]:
        lines.append("| " + " | ".join(_fmt(v) for v in row[:-1]) + " |")
    wins = win_rows(result)
    lines += ["", "| comparison | side wins | " + f"{ref} wins | ties | inconsistent | "
              "win rate (side) | 95 % CI |", "|---|---|---|---|---|---|---|"]
    for r in wins[1:]:
        lines.append(f"| {r[0]} | {r[1]} | {r[2]} | {r[3]} | {r[4]} | {_fmt(r[5])} | "
                     f"{_fmt(r[6])}–{_fmt(r[7])} |")
    h = s["human"]
    lines += ["", "Human scores: " + ", ".join(
        f"{x} {_fmt(h.get(x))} ({h.get(f'n_{x}', 0)} scored)" for x in names) + ".", "",
        "## Examples", ""]
    for r in result["rows"][:examples]:
        lines += [f"**{r['id']}** — {r['question']}", ""]
        lines += [f"- {x}: {r[x]!s}".replace("\n", " ") for x in names]
        lines.append("")
    lines.append("Scores are explained in docs/benchmark.md.")
    return "\n".join(lines) + "\n"
