"""Count the CPU instructions of one offline `persona run`: a figure a busy machine cannot move.

    python scripts/bench_instructions.py                          # this checkout, 3,000 pairs
    python scripts/bench_instructions.py --against /tmp/old /tmp/older --count 3000

Wall times on a shared 2-core host drift by 10-50 % within minutes (the hypervisor takes the
CPU: `st` in vmstat), so a change of a few per cent cannot be told from noise by timing.
The instructions a run executes do not drift: this runs `python -m persona run` under
valgrind's cachegrind (`--cache-sim=no`: instruction counts only) with PERSONA_WORKERS=1, so
all of the run's work is in one process, and prints the total per checkout (each one
`--against` DIR by PYTHONPATH, all at once, one per core). Start-up and imports are in it;
how the work spreads over the cores is not (that is what scripts/bench_pipeline.py
--against measures). Needs valgrind (`apt-get install -y valgrind`); ~6 min per 3,000-pair
run on this project's machine.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor


def instructions(source: str, count: int) -> int:
    env = {**os.environ, "PYTHONPATH": source, "PERSONA_WORKERS": "1"}
    with tempfile.TemporaryDirectory() as ws:
        out = os.path.join(ws, "cachegrind.out")
        done = subprocess.run(
            ["valgrind", "--tool=cachegrind", "--cache-sim=no", f"--cachegrind-out-file={out}",
             sys.executable, "-m", "persona", "run", "--persona", "babis", "--count",
             str(count), "--workspace", ws],
            env=env, cwd=ws, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        if done.returncode != 0:
            sys.exit(f"error: the run of {source} failed: {done.stderr.strip().splitlines()[-1]}")
        found = re.search(r"I\s+refs:\s+([\d,]+)", done.stderr)
        if not found:
            sys.exit("error: valgrind printed no instruction count")
        return int(found.group(1).replace(",", ""))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--count", type=int, default=3000)
    ap.add_argument("--against", nargs="*", default=[], metavar="DIR",
                    help="other persona checkouts to count too")
    args = ap.parse_args()
    if shutil.which("valgrind") is None:
        sys.exit("error: valgrind not found (apt-get install -y valgrind)")
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    sources = [here, *args.against]
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        counts = list(pool.map(lambda s: instructions(s, args.count), sources))
    print(f"{args.count:,} pairs, one process (PERSONA_WORKERS=1), instructions:")
    for source, n in zip(sources, counts, strict=True):
        ratio = f"  {n / counts[0]:.3f}x this" if source != here else ""
        print(f"{n / 1e9:8.2f} G  {source}{ratio}")


if __name__ == "__main__":
    main()
