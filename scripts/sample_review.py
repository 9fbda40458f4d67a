"""Print random answers and questions of a dataset for a careful read (Czech review).

    python scripts/sample_review.py final/babis --n 100 --seed 1

Answers and questions are drawn independently (seeded) from all.jsonl and numbered, so a
reviewer can list the errors found by number. The signature is left out.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("final_dir", type=Path, help="folder with all.jsonl")
    ap.add_argument("--n", type=int, default=100, help="answers and questions to print")
    ap.add_argument("--seed", type=int, default=1, help="seed of the random draw")
    args = ap.parse_args()
    path = args.final_dir / "all.jsonl"
    if not path.is_file():
        print(f"error: {path}: no such file", file=sys.stderr)
        return 2
    pairs = [{m["role"]: m["content"] for m in json.loads(x)["messages"]}
             for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]
    rng = random.Random(args.seed)
    n = min(args.n, len(pairs))
    print(f"# {n} answers (seed {args.seed})")
    for i, p in enumerate(rng.sample(pairs, n), 1):
        print(f"A{i:03d}: {p['assistant'].rsplit(chr(10) * 2, 1)[0]}")
    print(f"\n# {n} questions (seed {args.seed})")
    for i, p in enumerate(rng.sample(pairs, n), 1):
        print(f"Q{i:03d}: {p['user']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
