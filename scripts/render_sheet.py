"""Render bench.xlsx the way LibreOffice prints it, into one PNG for the docs: the Summary
page, the top-left of the first Comparison page and the Config page(s).

    python scripts/render_sheet.py OUT/bench/bench.xlsx docs/img/bench-sheet.png

Needs soffice and pdftoppm (poppler-utils); Pillow joins the pages.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

from PIL import Image, ImageChops, ImageDraw

WIDTH = 1540


def _labelled(img: Image.Image, label: str) -> Image.Image:
    out = Image.new("RGB", (img.width, img.height + 30), "white")
    out.paste(img, (0, 30))
    ImageDraw.Draw(out).text((8, 8), label, fill="black")
    return out


def _trim(img: Image.Image) -> Image.Image:
    """The page without its white margins."""
    box = ImageChops.difference(img, Image.new("RGB", img.size, "white")).getbbox()
    return img.crop(box) if box else img


def render(xlsx: Path, png: Path) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(["soffice", "--headless", "--convert-to", "pdf", "--outdir", tmp,
                        str(xlsx)], check=True, capture_output=True)
        pdf = Path(tmp) / (xlsx.stem + ".pdf")
        subprocess.run(["pdftoppm", "-png", "-r", "110", str(pdf), f"{tmp}/page"], check=True)
        pages = [Image.open(p).convert("RGB") for p in sorted(Path(tmp).glob("page-*.png"))]
    summary = _trim(pages[0])
    comparison = _trim(pages[1]).crop((0, 0, pages[1].width * 45 // 100, pages[1].height // 4))
    config = [_trim(p) for p in (pages[-2:] if len(pages) > 3 else pages[-1:])]
    cfg = Image.new("RGB", (max(p.width for p in config), sum(p.height for p in config)), "white")
    y = 0
    for p in config:
        cfg.paste(p, (0, y))
        y += p.height
    parts = [_labelled(summary, "Summary"),
             _labelled(comparison, "Comparison (first rows, left part)"),
             _labelled(cfg, "Config")]
    parts = [p.resize((WIDTH, round(p.height * WIDTH / p.width))) for p in parts]
    sheet = Image.new("RGB", (WIDTH, sum(p.height for p in parts)), "white")
    y = 0
    for p in parts:
        sheet.paste(p, (0, y))
        y += p.height
    sheet.save(png, optimize=True)
    return len(pages)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: python scripts/render_sheet.py BENCH_XLSX OUT_PNG")
    n = render(Path(sys.argv[1]), Path(sys.argv[2]))
    print(f"{sys.argv[2]} ({n} pages)")  # noqa: T201
