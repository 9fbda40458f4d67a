"""`persona bench --rescore bench.xlsx`: read the human scores a person typed into the sheet.

Rows are matched by their `id` cell, not by position, so a person may sort, filter, hide or
delete rows (or move the columns: they are found by their header). bench.json next to the
sheet is updated and every output is written again; the person's own file is kept as
`<name>.human.xlsx` when it is the one being rewritten.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from persona.errors import InputError


def read_human_scores(path: Path, sides: list[str] | tuple[str, ...] = ("before", "after")
                      ) -> dict[str, dict[str, float | None]]:
    """{row id: {"human_<side>": x, …}} from the sheet's Comparison table (one "human <side>"
    column per side of the bench)."""
    from zipfile import BadZipFile

    from openpyxl import load_workbook
    from openpyxl.utils.exceptions import InvalidFileException

    path = Path(path)
    if not path.is_file():
        raise InputError("no such sheet", file=str(path))
    try:
        wb = load_workbook(path, read_only=True, data_only=True)
    except (InvalidFileException, BadZipFile, OSError, KeyError, ValueError) as e:
        raise InputError(f"not an .xlsx workbook: {str(e).splitlines()[0][:120]}",
                         file=str(path)) from None
    ws = wb["Comparison"] if "Comparison" in wb.sheetnames else None
    if ws is None:
        raise InputError("no 'Comparison' sheet (is this a bench.xlsx?)", file=str(path))
    human = {f"human {side}".casefold(): f"human_{side}" for side in sides}
    rows = ws.iter_rows(values_only=True)
    header = next(rows, None) or ()
    names = [str(h).strip().casefold() if h is not None else "" for h in header]
    if "id" not in names or not all(h in names for h in human):
        raise InputError("the Comparison sheet's first row needs the columns 'id', "
                         + ", ".join(f"'human {side}'" for side in sides), file=str(path))
    at = {h: names.index(h) for h in ("id", *human)}
    out: dict[str, dict[str, float | None]] = {}
    for rownum, row in enumerate(rows, start=2):
        rid = row[at["id"]] if at["id"] < len(row) else None
        if rid is None or str(rid).strip() == "":
            continue
        rid = str(rid).strip()
        if rid in out:
            raise InputError(f"id {rid!r} appears twice", file=str(path), line=rownum)
        got = {}
        for h, key in human.items():
            v = row[at[h]] if at[h] < len(row) else None
            got[key] = _number(v, path, rownum, h)
        out[rid] = got
    wb.close()
    return out


def _number(v, path: Path, rownum: int, header: str) -> float | None:
    if v is None or (isinstance(v, str) and not v.strip()):
        return None
    if isinstance(v, bool):
        raise InputError(f"expected a number, got {v!r}", file=str(path), line=rownum,
                         field=header)
    try:
        return float(str(v).replace(",", ".")) if isinstance(v, str) else float(v)
    except ValueError:
        raise InputError(f"expected a number, got {v!r}", file=str(path), line=rownum,
                         field=header) from None


def rescore(sheet: Path, out: Path | None = None) -> dict:
    """Merge the sheet's human scores into bench.json (next to the sheet), write all again."""
    from persona.bench.run import summarize
    from persona.bench.sheet import write_all

    sheet = Path(sheet)
    read_human_scores(sheet, [])  # a sheet that is no bench.xlsx fails first, naming itself
    bench_json = sheet.parent / "bench.json"
    if not bench_json.is_file():
        raise InputError("no bench.json next to the sheet (rescore needs the bench's own "
                         "results)", file=str(bench_json))
    try:
        result = json.loads(bench_json.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise InputError(f"broken JSON: {e.msg}", file=str(bench_json), line=e.lineno) from None
    sides = result["config"].get("sides") or ["before", "after"]
    ref_side = result["config"].get("reference") or sides[0]
    human = read_human_scores(sheet, sides)
    known = {r["id"] for r in result["rows"]}
    unknown = sorted(set(human) - known)
    if unknown:
        raise InputError(f"{len(unknown)} row id(s) of the sheet are not in bench.json "
                         f"(first: {unknown[0]!r})", file=str(sheet))
    for r in result["rows"]:
        got = human.get(r["id"], {})
        for side in sides:
            r[f"human_{side}"] = got.get(f"human_{side}")
    judged = any(r.get("judge") for r in result["rows"])
    result["summary"] = summarize(result["rows"], judged, sides, ref_side)
    out = Path(out) if out else sheet.parent
    target = out / "bench.xlsx"
    if target.resolve() == sheet.resolve():
        shutil.copy2(sheet, sheet.with_name(sheet.stem + ".human.xlsx"))
    write_all(result, out)
    return result
