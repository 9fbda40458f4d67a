"""Benchmark the offline pipeline: wall time, pairs/s and peak RSS of `persona run` per count.

    python scripts/bench_pipeline.py                      # 3,000 / 30,000 / 100,000 pairs
    python scripts/bench_pipeline.py --counts 3000 30000  # a subset
    python scripts/bench_pipeline.py --counts 3000 --runs 5 --warm-up   # median of five
    python scripts/bench_pipeline.py --counts 3000 --runs 5 --source /tmp/old-checkout
    python scripts/bench_pipeline.py --counts 3000 --runs 9 --against /tmp/old-checkout

Each count runs `python -m persona run` in a fresh process (start-up included) in a fresh
temporary workspace; peak RSS is that process's own maximum resident set (getrusage of the
child; with forked workers, the largest of them). Goals: 3,000 pairs at most 3.5 s wall
(median of five runs, issue 18) on an idle 2-core machine, and peak RSS at 30,000 pairs at
most 1.5x the peak at 3,000 (the stages stream; memory must stay flat). `--source DIR` runs
another checkout of persona (PYTHONPATH), to compare two versions on one machine and day;
`--against DIR` runs this checkout and DIR in turns (one run of each, then the next pair), so
that the machine's drift (~10-50 % within minutes on a shared host) falls on both alike, and
prints both medians and their ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

PROBE = """
import resource, subprocess, sys
subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
"""


def measure(count: int, source: str | None = None) -> dict:
    env = {**os.environ, **({"PYTHONPATH": source} if source else {})}
    with tempfile.TemporaryDirectory() as ws:
        cmd = [sys.executable, "-m", "persona", "run", "--persona", "babis", "--count",
               str(count), "--workspace", ws]
        start = time.perf_counter()
        out = subprocess.run([sys.executable, "-c", PROBE, *cmd], check=True,
                             capture_output=True, text=True, env=env, cwd=ws).stdout
        wall = time.perf_counter() - start
        with open(f"{ws}/final/babis/report.json", encoding="utf-8") as fh:
            delivered = json.load(fh)["count"]
    return {"count": count, "delivered": delivered, "wall_s": round(wall, 2),
            "pairs_per_s": round(delivered / wall), "peak_rss_mb": round(int(out) / 1024, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--counts", type=int, nargs="+", default=[3000, 30000, 100000])
    ap.add_argument("--runs", type=int, default=1, help="runs per count; the median is shown")
    ap.add_argument("--warm-up", action="store_true", help="one unmeasured run first")
    ap.add_argument("--source", help="a persona checkout to run instead (PYTHONPATH)")
    ap.add_argument("--against", metavar="DIR",
                    help="another checkout, run in turns with this one (3,000 pairs or the "
                         "first count): both medians and their ratio")
    args = ap.parse_args()
    if args.against:
        return compare(args.counts[0], args.runs, args.against, args.source, args.warm_up)
    if args.warm_up:
        measure(min(args.counts), args.source)
    rows = []
    for c in args.counts:
        runs = [measure(c, args.source) for _ in range(args.runs)]
        walls = [r["wall_s"] for r in runs]
        row = min(runs, key=lambda r: abs(r["wall_s"] - statistics.median(walls)))
        rows.append({**row, "wall_s": round(statistics.median(walls), 2), "walls": walls,
                     "pairs_per_s": round(row["delivered"] / statistics.median(walls)),
                     "peak_rss_mb": max(r["peak_rss_mb"] for r in runs)})
    print(f"load average {os.getloadavg()[0]:.2f} (1 min) · {os.cpu_count()} cores")
    print(f"{'pairs':>8} {'wall s':>8} {'pairs/s':>8} {'peak RSS MB':>12}")
    for r in rows:
        print(f"{r['delivered']:>8} {r['wall_s']:>8} {r['pairs_per_s']:>8} {r['peak_rss_mb']:>12}")
    by = {r["count"]: r for r in rows}
    if 3000 in by:
        print(f"3,000 pairs: median {by[3000]['wall_s']} s of {by[3000]['walls']} "
              f"(goal <= 3.5 s): {'yes' if by[3000]['wall_s'] <= 3.5 else 'NO'}")
    if 3000 in by and 30000 in by:
        ratio = by[30000]["peak_rss_mb"] / by[3000]["peak_rss_mb"]
        print(f"peak RSS 30,000 / 3,000: {ratio:.2f}x (goal <= 1.5x): "
              f"{'yes' if ratio <= 1.5 else 'NO'}")
    print(json.dumps(rows))


def compare(count: int, runs: int, other: str, source: str | None, warm_up: bool) -> None:
    here = source or os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    if warm_up:
        measure(count, here), measure(count, other)
    walls: dict[str, list[float]] = {here: [], other: []}
    for _ in range(runs):
        for side in (here, other):
            walls[side].append(measure(count, side)["wall_s"])
    print(f"load average {os.getloadavg()[0]:.2f} (1 min) · {os.cpu_count()} cores · "
          f"{count:,} pairs, {runs} runs each, in turns")
    for side, w in walls.items():
        print(f"{statistics.median(w):6.2f} s median  {' '.join(map(str, w))}  {side}")
    ratio = statistics.median(walls[here]) / statistics.median(walls[other])
    pairs = sorted(a / b for a, b in zip(walls[here], walls[other], strict=True))
    print(f"ratio {ratio:.3f} (this / other; per pair {pairs[0]:.3f} .. {pairs[-1]:.3f})")
    print(json.dumps({"count": count, "walls": walls, "ratio": round(ratio, 3)}))


if __name__ == "__main__":
    main()
