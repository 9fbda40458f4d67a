"""Throughput of the OpenAI-compatible provider against the loopback test server.

    .venv/bin/python scripts/bench_llm.py                 # prints and updates docs/benchmarks.md
    .venv/bin/python scripts/bench_llm.py --requests 1280 --no-write   # a shorter run

The server runs in its own process (so its CPU is not ours) with a fixed latency per answer;
the provider fills answer slots at --concurrency 64 and one at a time, as the assignment's
sequential scripts did. The ideal at concurrency C and latency L is C / L requests per second.
CPU time is this process's own (user + system) per request: prompt rendering, the SDK, JSON
parsing, the cache writes.
"""

from __future__ import annotations

import argparse
import re
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(latency: float) -> tuple[subprocess.Popen, str]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "tests.servers.openai_compat", "--port",
                             str(port), "--latency", str(latency)], cwd=ROOT,
                            stdout=subprocess.DEVNULL)
    for _ in range(100):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/stats", timeout=1)
            break
        except OSError:
            time.sleep(0.05)
    return proc, f"http://127.0.0.1:{port}/v1"


def measure(url: str, concurrency: int, n: int) -> dict:
    from persona.providers.base import FillRequest
    from persona.providers.openai_compat import OpenAICompatProvider
    from persona.spec import load_spec
    from persona.stages import templates as templates_stage

    spec = load_spec("babis")
    bank = templates_stage.load(ROOT / "templates" / "babis.jsonl", spec)
    styles = list(spec.styles)
    slots = [FillRequest(i, f"babis-a{i + 1:06d}", bank[i % len(bank)], styles[i % len(styles)],
                         i % 7 == 0) for i in range(n)]
    with tempfile.TemporaryDirectory() as cache:
        prov = OpenAICompatProvider(base_url=url, model="gpt-4o-mini", concurrency=concurrency,
                                    cache_dir=cache)
        prov.fill(spec, slots[:2], seed=1)  # warm up imports and the encoder, not counted
        cpu0, t0 = time.process_time(), time.perf_counter()
        results = prov.fill(spec, slots, seed=42)
        wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    ok = sum(1 for r in results if hasattr(r, "text"))
    return {"concurrency": concurrency, "requests": n, "ok": ok, "wall_s": wall,
            "rps": n / wall, "cpu_ms_per_request": 1000 * cpu / n}


def render(latency: float, rows: list[dict]) -> str:
    lines = ["## LLM generation", "",
             f"`scripts/bench_llm.py`: the OpenAI-compatible provider filling answer slots "
             f"(one request each, real `openai` SDK, request cache on) against the loopback "
             f"test server at {latency * 1000:.0f} ms per answer, server in its own process. "
             f"Machine: {_cpus()} CPU cores, Python {sys.version.split()[0]}.", "",
             "| concurrency | requests | wall s | requests/s | ideal/s | of ideal | "
             "CPU ms/request |", "|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        ideal = r["concurrency"] / latency
        lines.append(f"| {r['concurrency']} | {r['requests']} | {r['wall_s']:.2f} | "
                     f"{r['rps']:.1f} | {ideal:.0f} | {100 * r['rps'] / ideal:.1f} % | "
                     f"{r['cpu_ms_per_request']:.2f} |")
    if len(rows) == 2:
        lines += ["", f"Concurrency {rows[0]['concurrency']} is "
                  f"{rows[0]['rps'] / rows[1]['rps']:.0f}× the one-request-at-a-time "
                  "throughput of the assignment's sequential scripts."]
    return "\n".join(lines) + "\n"


def _cpus() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def write_section(path: Path, section: str) -> None:
    """Replace (or append) only the '## LLM generation' section; others belong to others."""
    text = path.read_text(encoding="utf-8") if path.exists() else "# Benchmarks\n"
    pattern = re.compile(r"^## LLM generation\n.*?(?=^## |\Z)", re.M | re.S)
    if pattern.search(text):
        text = pattern.sub(lambda m: section + "\n", text, count=1)
    else:
        text = text.rstrip("\n") + "\n\n" + section
    path.write_text(text.rstrip("\n") + "\n", encoding="utf-8")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--latency", type=float, default=0.25)
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--requests", type=int, default=2560,
                    help="at --concurrency (2,560: 40 rounds, so the 0.3-0.5 s start-up of the "
                    "first rounds is not most of what is measured)")
    ap.add_argument("--sequential", type=int, default=20, help="requests one at a time")
    ap.add_argument("--no-write", action="store_true", help="do not update docs/benchmarks.md")
    a = ap.parse_args()
    server, url = start_server(a.latency)
    try:
        rows = [measure(url, a.concurrency, a.requests), measure(url, 1, a.sequential)]
    finally:
        server.terminate()
        server.wait()
    section = render(a.latency, rows)
    sys.stdout.write(section)
    if not a.no_write:
        write_section(ROOT / "docs" / "benchmarks.md", section)


if __name__ == "__main__":
    main()
