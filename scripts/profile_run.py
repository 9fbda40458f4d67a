"""Profile one offline `persona run` (3,000 pairs) in one process: where its CPU goes.

    python scripts/profile_run.py                       # this checkout, top 15 by own time
    python scripts/profile_run.py --source /tmp/old --top 25   # another checkout

The run goes through the real CLI in a subprocess under cProfile with PERSONA_WORKERS=1 (so
the forked workers' share is in the one profile; cProfile's overhead inflates every figure
about twofold, the shares stay). Prints the total, the stages' cumulative times and the
functions with the most time of their own. For the issue-18 before/after in
docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import os
import pstats
import subprocess
import sys
import tempfile

# (label, [(file, function)]): the first that the profile has (older checkouts named them
# otherwise: stages/fill.py run was the stage itself before stages/run.py drove it)
STAGES = [("fill stage", [("stages/run.py", "fill_stage"), ("stages/fill.py", "run")]),
          ("questions stage", [("stages/run.py", "questions_stage"),
                               ("stages/questions.py", "run")]),
          ("merge", [("stages/merge.py", "run")]),
          ("report", [("report.py", "measure")]),
          ("spec load", [("spec.py", "load_spec")])]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--source", help="a persona checkout to profile instead (PYTHONPATH)")
    ap.add_argument("--count", type=int, default=3000)
    ap.add_argument("--top", type=int, default=15)
    args = ap.parse_args()
    env = {**os.environ, "PERSONA_WORKERS": "1",
           **({"PYTHONPATH": args.source} if args.source else {})}
    with tempfile.TemporaryDirectory() as ws:
        out = os.path.join(ws, "profile.out")
        subprocess.run([sys.executable, "-m", "cProfile", "-o", out, "-m", "persona", "run",
                        "--persona", "babis", "--count", str(args.count), "--workspace", ws],
                       check=True, env=env, cwd=ws, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        stats = pstats.Stats(out)
    total = stats.total_tt
    print(f"total {total:.2f} s under cProfile (one process)")
    for label, names in STAGES:
        cum = next((c for c in (sum(v[3] for k, v in stats.stats.items()
                                    if k[0].endswith(file) and k[2] == func)
                                for file, func in names) if c), 0)
        if cum:
            print(f"  {label:<16} {cum:6.2f} s  {100 * cum / total:5.1f} %")
    print(f"top {args.top} by own time:")
    rows = sorted(stats.stats.items(), key=lambda kv: -kv[1][2])[: args.top]
    for (file, line, func), (_, calls, own, cum, _) in rows:
        where = f"{os.path.basename(file)}:{line}" if line else "built-in"
        print(f"  {own:6.2f} s own {cum:6.2f} s cum {calls:>8} calls  {func} ({where})")


if __name__ == "__main__":
    main()
