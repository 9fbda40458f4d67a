#!/usr/bin/env bash
# Render bench.xlsx the way LibreOffice prints it, into one PNG for the docs:
# the Summary page, the top-left of the first Comparison page and the Config page(s).
# Usage: scripts/render_sheet.sh BENCH_XLSX OUT_PNG      (needs soffice, pdftoppm, ImageMagick)
set -euo pipefail
XLSX=${1:?usage: scripts/render_sheet.sh BENCH_XLSX OUT_PNG}
PNG=${2:?usage: scripts/render_sheet.sh BENCH_XLSX OUT_PNG}
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
soffice --headless --convert-to pdf --outdir "$TMP" "$XLSX" >/dev/null
pdftoppm -png -r 110 "$TMP/$(basename "${XLSX%.*}").pdf" "$TMP/page"
pages=("$TMP"/page-*.png)
n=${#pages[@]}
label() { convert "$1" -gravity north -background white -splice 0x28 -pointsize 18 \
    -annotate +0+4 "$2" "$3"; }
label "${pages[0]}" "Summary" "$TMP/a.png"
convert "${pages[1]}" -gravity northwest -crop 100%x50%+0+0 +repage "$TMP/b0.png"
label "$TMP/b0.png" "Comparison (first rows, left part)" "$TMP/b.png"
convert "${pages[$((n - 2))]}" "${pages[$((n - 1))]}" -append -trim +repage "$TMP/c0.png"
label "$TMP/c0.png" "Config" "$TMP/c.png"
convert "$TMP/a.png" "$TMP/b.png" "$TMP/c.png" -background white -gravity center -append \
    -resize '1540x>' "$PNG"
echo "$PNG ($n pages)"
