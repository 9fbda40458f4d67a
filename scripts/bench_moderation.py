"""Moderation requests and wall time for 3,000 examples: batched vs one input per request.

    PYTHONPATH=. python scripts/bench_moderation.py                 # latency 0.1 s, 8 in flight
    PYTHONPATH=. python scripts/bench_moderation.py --latency 0.25 --concurrency 16

Builds the built-in babis dataset offline (3,000 pairs) with the 30 planted harmful answers,
starts the loopback test server with a fixed latency per request, and moderates all.jsonl
through the OpenAI moderator twice, each time with an empty request cache: `--batch-size`
inputs per request, then one. Also times the offline screen. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from persona.checks.moderation import moderate_file
from persona.moderators.offline import OfflineScreen
from persona.moderators.openai import OpenAIModerator
from tests.moderation_data import build, plant, rows
from tests.servers.openai_compat import serve


def run_once(final: Path, url: str, batch: int, concurrency: int, tmp: Path, srv) -> dict:
    before = srv.stats()["answered_by_kind"].get("moderations", 0)
    mod = OpenAIModerator(base_url=url, batch_size=batch, concurrency=concurrency,
                          cache_dir=tmp / f"cache-{batch}")
    t0 = time.perf_counter()
    outcome = moderate_file(final / "all.jsonl", mod, tmp / f"out-{batch}")
    wall = time.perf_counter() - t0
    return {"batch": batch, "requests": srv.stats()["answered_by_kind"]["moderations"] - before,
            "wall_s": wall, "texts": outcome.texts_checked, "flagged": outcome.flagged}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--latency", type=float, default=0.1, help="server seconds per request")
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--batch-size", type=int, default=32)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        final = build(tmp / "ws", "babis", 3000)
        plant(final, rows("planted.jsonl"))
        t0 = time.perf_counter()
        offline = moderate_file(final / "all.jsonl", OfflineScreen(), tmp / "out-offline")
        offline_s = time.perf_counter() - t0
        with serve(latency=a.latency) as srv:
            batched = run_once(final, srv.url, a.batch_size, a.concurrency, tmp, srv)
            single = run_once(final, srv.url, 1, a.concurrency, tmp, srv)
    print(f"3,000 examples ({batched['texts']:,} distinct texts), test server latency "  # noqa: T201
          f"{a.latency} s per request, concurrency {a.concurrency}\n")
    print("| mode | requests | wall time | flagged |\n|---|---:|---:|---:|")  # noqa: T201
    for r in (batched, single):
        print(f"| {r['batch']} input(s) per request | {r['requests']:,} | "  # noqa: T201
              f"{r['wall_s']:.1f} s | {r['flagged']} |")
    print(f"| offline screen (no server) | 0 | {offline_s:.1f} s | {offline.flagged} |")  # noqa: T201
    print(f"\nbatched: {single['requests'] / batched['requests']:.1f}x fewer requests, "  # noqa: T201
          f"{single['wall_s'] / batched['wall_s']:.1f}x faster")


if __name__ == "__main__":
    main()
