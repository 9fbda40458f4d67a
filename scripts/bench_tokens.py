"""Input tokens per pair and pacing under a tokens-per-minute limit (issue 19).

    .venv/bin/python scripts/bench_tokens.py                     # K = 1 and 8, 3,000 pairs
    .venv/bin/python scripts/bench_tokens.py --k 1 4 8 12 --count 300
    .venv/bin/python scripts/bench_tokens.py --baseline /path/to/older/checkout
    .venv/bin/python scripts/bench_tokens.py --tpm 200000 --tpm-count 3000 --k 8

Each run is a whole `persona run --provider openai` process with the committed template bank
against the loopback server in its own process. Tokens are what the server counted (its
`usage`, tiktoken o200k_base in the chat format, as OpenAI counts), summed from the report;
the dry run's estimate of the same run is printed beside them. `--baseline SRC` runs another
checkout of persona (PYTHONPATH=SRC) the same way: the "today" to compare with.

`--tpm T`: one more run with the server's token bucket at T tokens per minute (charged
prompt + max_tokens on arrival, `--tpm-depth` seconds deep) and `--tpm T` on the client;
printed: wall time of the requests (first to last arrival), tokens charged / T (the least
time the limit allows), their ratio and the 429s.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from scripts.bench_llm import start_server  # noqa: E402


def stats(url: str, full: bool = False) -> dict:
    base = url.removesuffix("/v1")
    with urllib.request.urlopen(f"{base}/stats" + ("?full=1" if full else ""),
                                timeout=10) as r:
        return json.load(r)


def run(url: str, ws: Path, count: int, k: int | None, src: Path, *extra: str,
        dry: bool = False) -> tuple[subprocess.CompletedProcess, float]:
    (ws / "templates").mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / "templates" / "babis.jsonl", ws / "templates" / "babis.jsonl")
    env = {**os.environ, "OPENAI_API_KEY": "sk-bench", "PYTHONPATH": str(src)}
    args = [sys.executable, "-m", "persona", "run", "--provider", "openai", "--base-url", url,
            "--count", str(count), "--workspace", str(ws), "--concurrency", "32", "--json",
            *(["--per-request", str(k)] if k is not None else []), *extra,
            *(["--dry-run"] if dry else [])]
    t0 = time.monotonic()
    proc = subprocess.run(args, capture_output=True, text=True, env=env, cwd=ws)
    if proc.returncode:
        raise SystemExit(f"{' '.join(args)}: exit {proc.returncode}\n{proc.stderr[-2000:]}")
    return proc, time.monotonic() - t0


def tokens_row(label: str, count: int, k: int | None, src: Path) -> dict:
    server, url = start_server(0.0)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            ws = Path(tmp)
            dry = json.loads(run(url, ws, count, k, src, dry=True)[0].stdout)
            proc, wall = run(url, ws, count, k, src)
            report = json.loads(proc.stdout)
            seen = stats(url)
    finally:
        server.terminate()
        server.wait()
    usage = report["stages"]["llm_usage"]
    kinds = [s for s in ("fill", "rephrase", "questions") if s in usage]
    counted = sum(usage[s]["prompt_tokens"] for s in kinds)
    estimated = sum(r["input_tokens"] for r in dry if r["stage"] in ("fill", "questions"))
    return {"run": label, "pairs": report["count"], "requests": seen["total"],
            "in_per_pair": counted / report["count"],
            "out_per_pair": sum(usage[s]["completion_tokens"] for s in kinds) / report["count"],
            "dry_per_pair": estimated / count, "wall": wall,
            "fill_retried": report["stages"]["fill"]["retried"],
            "questions_retried": report["stages"]["questions"]["retried"]}


def tpm_row(count: int, k: int, tpm: float, depth: float) -> dict:
    server, url = start_server(0.0, "--tpm", str(tpm), "--tpm-depth", str(depth))
    try:
        with tempfile.TemporaryDirectory() as tmp:
            _, wall = run(url, Path(tmp), count, k, ROOT, "--tpm", str(tpm))
            seen = stats(url, full=True)
    finally:
        server.terminate()
        server.wait()
    times = seen["times"]
    span = times[-1] - times[0]
    ideal = seen["tpm_charged"] / tpm * 60
    return {"k": k, "tpm": tpm, "pairs": count, "requests": seen["total"],
            "limited": seen["by_status"].get("429", 0), "charged": seen["tpm_charged"],
            "span": span, "ideal": ideal, "wall": wall}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--count", type=int, default=3000)
    ap.add_argument("--k", type=int, nargs="*", default=[1, 8])
    ap.add_argument("--baseline", type=Path, help="another checkout to run as 'today'")
    ap.add_argument("--tpm", type=float, help="one run under this tokens-per-minute limit")
    ap.add_argument("--tpm-count", type=int, default=300)
    ap.add_argument("--tpm-depth", type=float, default=60.0)
    a = ap.parse_args()
    rows = []
    if a.baseline:
        rows.append(tokens_row(f"baseline ({a.baseline.name})", a.count, None, a.baseline))
    for k in a.k:
        rows.append(tokens_row(f"--per-request {k}", a.count, k, ROOT))
    print(f"| run ({a.count:,} pairs) | requests | input tokens / pair (server) | dry run "
          "| output / pair | fill / questions retried | wall |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['run']} | {r['requests']:,} | {r['in_per_pair']:,.1f} | "
              f"{r['dry_per_pair']:,.1f} | {r['out_per_pair']:,.1f} | "
              f"{r['fill_retried']} / {r['questions_retried']} | {r['wall']:.1f} s |")
    if a.tpm:
        t = tpm_row(a.tpm_count, a.k[-1], a.tpm, a.tpm_depth)
        print(f"\n--tpm {t['tpm']:,.0f}, --per-request {t['k']}, {t['pairs']:,} pairs: "
              f"{t['requests']:,} requests, {t['limited']} answered 429; "
              f"{t['charged']:,} tokens charged, least time {t['ideal']:.1f} s; requests "
              f"from first to last {t['span']:.1f} s ({t['span'] / t['ideal']:.2f} x), "
              f"whole process {t['wall']:.1f} s ({t['wall'] / t['ideal']:.2f} x)")


if __name__ == "__main__":
    main()
