"""Throughput of the OpenAI-compatible provider against the loopback test server.

    .venv/bin/python scripts/bench_llm.py                 # prints and updates docs/benchmarks.md
    .venv/bin/python scripts/bench_llm.py --requests 1280 --no-write   # a shorter run
    .venv/bin/python scripts/bench_llm.py --end-to-end    # whole `persona run`s (see below)

`--end-to-end` times whole `persona run --provider openai` processes (start-up, templates,
fill, questions, merge, report) against the server: with no faults, with faults (errors, 429s,
hangs past --timeout, malformed answers), and under --rpm against a server answering 10 % of
requests 429. Per run: requests the server saw, wall, the ideal (requests x latency /
concurrency) and wall / ideal; for the --rpm run, the most requests the server counted in any
60-second window. The section "## LLM run end to end" of docs/benchmarks.md is updated.

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


def start_server(latency: float, *flags: str) -> tuple[subprocess.Popen, str]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "tests.servers.openai_compat", "--port",
                             str(port), "--latency", str(latency), *flags], cwd=ROOT,
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


def write_section(path: Path, section: str, title: str = "## LLM generation") -> None:
    """Replace (or append) only our section; others belong to others."""
    text = path.read_text(encoding="utf-8") if path.exists() else "# Benchmarks\n"
    pattern = re.compile(rf"^{re.escape(title)}\n.*?(?=^## |\Z)", re.M | re.S)
    if pattern.search(text):
        text = pattern.sub(lambda m: section + "\n", text, count=1)
    else:
        text = text.rstrip("\n") + "\n\n" + section
    path.write_text(text.rstrip("\n") + "\n", encoding="utf-8")


# -- whole runs --------------------------------------------------------------------------------

E2E_RUNS = {  # name -> (server flags, persona run flags)
    "no faults": ((), ()),
    "faults": (("--error-rate", "0.1", "--malformed-rate", "0.2", "--hang", "3"),
               ("--timeout", "2")),
    "rpm 600, 10 % 429": (("--rate-limit-rate", "0.1",), ("--rpm", "600")),
    "only errors": (("--error-rate", "1", "--hang", "0.05"), ()),  # must stop early
}


def server_stats(url: str) -> dict:
    import json

    with urllib.request.urlopen(url.removesuffix("/v1") + "/stats?full=1", timeout=10) as r:
        return json.loads(r.read())


def max_window(times: list[float], window: float = 60.0) -> int:
    """The most arrivals in any `window` seconds (a window starts at an arrival)."""
    times, best, j = sorted(times), 0, 0
    for i, t in enumerate(times):
        while times[j] <= t - window:
            j += 1
        best = max(best, i - j + 1)
    return best


def run_whole(name: str, latency: float, concurrency: int, count: int) -> dict:
    """One `persona run` in a fresh workspace against a fresh server; the server's counts."""
    import os

    server_flags, run_flags = E2E_RUNS[name]
    server, url = start_server(latency, *server_flags)
    env = {**os.environ, "OPENAI_API_KEY": "sk-bench", "PYTHONPATH": str(ROOT)}
    try:
        with tempfile.TemporaryDirectory() as ws:
            t0 = time.time()
            with tempfile.TemporaryFile("w+") as err:
                child = subprocess.Popen([sys.executable, "-m", "persona", "run", "--provider",
                                          "openai", "--base-url", url, "--count", str(count),
                                          "--concurrency", str(concurrency), "--workspace", ws,
                                          "--json", *run_flags], cwd=ROOT, env=env,
                                         stdout=subprocess.DEVNULL, stderr=err)
                _, status, usage = os.wait4(child.pid, 0)  # the child's own peak RSS
                child.returncode = os.waitstatus_to_exitcode(status)
                wall = time.time() - t0
                err.seek(0)
                stderr = err.read()
            if (child.returncode != 0) != (name == "only errors"):
                raise SystemExit(f"{name}: persona run exit {child.returncode}: "
                                 f"{stderr[-2000:]}")
            stats = server_stats(url)
    finally:
        server.terminate()
        server.wait()
    times = sorted(stats["times"])
    n = stats["total"]
    rpm = float(run_flags[run_flags.index("--rpm") + 1]) if "--rpm" in run_flags else None
    return {"run": name, "flags": " ".join((*server_flags, *run_flags)), "requests": n,
            "wall_s": wall, "ideal_s": max(n * latency / concurrency, n * 60 / rpm if rpm else 0),
            "first_request_s": times[0] - t0, "last_request_s": t0 + wall - times[-1],
            "statuses": stats["by_status"], "max_60s": max_window(times),
            "span_s": times[-1] - times[0], "exit": child.returncode,
            "last_line": stderr.strip().splitlines()[-1] if stderr.strip() else "",
            "rss_mb": usage.ru_maxrss / 1024, "load": os.getloadavg()[0]}


def render_whole(latency: float, concurrency: int, count: int, rows: list[dict]) -> str:
    lines = ["## LLM run end to end", "",
             f"`scripts/bench_llm.py --end-to-end`: whole `persona run --provider openai "
             f"--count {count} --concurrency {concurrency}` processes (start-up, templates, "
             f"fill, questions, merge and report included) in a fresh workspace against the "
             f"loopback test server at {latency * 1000:.0f} ms per answer, in its own process. "
             f"Ideal = requests × {latency:g} s / {concurrency} (under --rpm: requests / rpm, "
             f"if longer). Machine: {_cpus()} CPU cores "
             f"(shared), Python {sys.version.split()[0]}.", "",
             "| run | server / run flags | requests | wall s | ideal s | wall / ideal | "
             "start-up s | after last request s | most requests in 60 s | peak RSS MB | "
             "load avg |", "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        if r["exit"]:  # a run that must stop: its time to stop, below
            continue
        lines.append(f"| {r['run']} | `{r['flags'] or '-'}` | {r['requests']:,} | "
                     f"{r['wall_s']:.1f} | {r['ideal_s']:.1f} | "
                     f"{r['wall_s'] / r['ideal_s']:.2f}× | "
                     f"{r['first_request_s']:.1f} | {r['last_request_s']:.1f} | "
                     f"{r['max_60s']:,} | {r['rss_mb']:.0f} | {r['load']:.1f} |")
    for r in rows:
        if r["exit"]:
            lines += ["", f"{r['run']}: stopped after {r['wall_s']:.1f} s, exit {r['exit']}, "
                      f"stderr's last line: `{r['last_line']}`"]
    clean = next((r for r in rows if r["run"] == "no faults"), None)
    faulty = next((r for r in rows if r["run"] == "faults"), None)
    if clean and faulty:
        lines += ["", f"With faults: {faulty['wall_s'] / clean['wall_s']:.2f}× the fault-free "
                  "run's wall time."]
    return "\n".join(lines) + "\n"


def main_whole(a) -> None:
    rows = []
    for name in a.runs or list(E2E_RUNS):
        count = a.rpm_count if name.startswith("rpm") else a.count
        row = run_whole(name, a.latency, a.concurrency, count)
        sys.stderr.write(f"{row}\n")
        rows.append(row)
    section = render_whole(a.latency, a.concurrency, a.count, rows)
    sys.stdout.write(section)
    if not a.no_write:
        write_section(ROOT / "docs" / "benchmarks.md", section, "## LLM run end to end")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--latency", type=float, default=0.25)
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--requests", type=int, default=2560,
                    help="at --concurrency (2,560: 40 rounds, so the 0.3-0.5 s start-up of the "
                    "first rounds is not most of what is measured)")
    ap.add_argument("--sequential", type=int, default=20, help="requests one at a time")
    ap.add_argument("--no-write", action="store_true", help="do not update docs/benchmarks.md")
    ap.add_argument("--end-to-end", action="store_true",
                    help="time whole `persona run`s instead of one stage's fill")
    ap.add_argument("--count", type=int, default=3000, help="pairs per whole run")
    ap.add_argument("--rpm-count", type=int, default=600,
                    help="pairs of the --rpm run (600: about two minutes at 600 rpm)")
    ap.add_argument("--runs", nargs="*", choices=list(E2E_RUNS), help="whole runs to make")
    a = ap.parse_args()
    if a.end_to_end:
        main_whole(a)
        return
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
