"""Local generation throughput: batched (left padding, KV cache) vs one answer at a time.

    python scripts/bench_generate.py --model runs/babis --questions final/babis/test.jsonl
    python scripts/bench_generate.py                     # a random tiny Llama, built here

Both variants answer the same questions greedily with the same model through the same
function `persona.bench.generate.generate_local`; only the batch size differs. Prints
answers/s and generated tokens/s of each and their ratio (markdown). On a CUDA machine it
runs on the GPU.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path


def questions_from(path: Path | None, n: int) -> list[str]:
    if path is None:
        base = ["Pane Babiši, jak chcete řešit inflaci?", "Co uděláte s cenami energií?",
                "Proč se o důchodech tolik mluví právě teď?", "Jaký je váš plán pro dálnice?"]
        return [f"{base[i % len(base)]} ({i})" for i in range(n)]
    out = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        msgs = json.loads(line)["messages"]
        out.append(next(m["content"] for m in msgs if m["role"] == "user"))
    return (out * (n // max(1, len(out)) + 1))[:n]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", help="model folder or finetune --out folder (default: a random "
                    "tiny Llama built in a temporary folder)")
    ap.add_argument("--questions", type=Path, help="chat JSONL whose user turns are asked")
    ap.add_argument("-n", type=int, default=64, help="questions for the batched run")
    ap.add_argument("--n-single", type=int, default=16, help="questions answered one at a time")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--max-new-tokens", type=int, default=64)
    a = ap.parse_args()

    import torch

    from persona.bench.generate import Decoding, generate_local, load_local, parse_model
    from persona.finetune.tiny import build_tiny

    tmp = None
    if a.model is None:
        tmp = tempfile.TemporaryDirectory()
        texts = questions_from(None, 200) + ["Já makám, oni kecají. Andrej Babiš"] * 50
        a.model = str(build_tiny("tiny", texts, Path(tmp.name) / "tiny", seed=0))
    model, tok = load_local(parse_model(a.model))
    system = "Odpovídej jako politik."
    qs = questions_from(a.questions, a.n)
    generate_local(model, tok, system, qs[:2], Decoding(max_new_tokens=4, batch_size=2))  # warm

    def timed(questions: list[str], batch: int) -> dict:
        t = time.perf_counter()
        answers = generate_local(model, tok, system, questions,
                                 Decoding(max_new_tokens=a.max_new_tokens, batch_size=batch))
        dt = time.perf_counter() - t
        toks = sum(len(tok(x, add_special_tokens=False)["input_ids"]) for x in answers)
        return {"answers": len(questions), "seconds": round(dt, 2),
                "answers_per_s": round(len(questions) / dt, 2),
                "tokens_per_s": round(toks / dt, 1)}

    single = timed(qs[:a.n_single], 1)
    batched = timed(qs, a.batch_size)
    device = "cuda " + torch.cuda.get_device_name(0) if torch.cuda.is_available() else \
        f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"
    params = sum(p.numel() for p in model.parameters())
    print(f"model {a.model} ({params / 1e6:.1f} M parameters), {device}, greedy, "
          f"max_new_tokens {a.max_new_tokens}\n")
    print("| variant | answers | seconds | answers/s | generated tokens/s |")
    print("|---|---|---|---|---|")
    for name, r in (("one at a time", single), (f"batched ({a.batch_size})", batched)):
        print(f"| {name} | {r['answers']} | {r['seconds']} | {r['answers_per_s']} | "
              f"{r['tokens_per_s']} |")
    print(f"\nbatched / one at a time: {batched['answers_per_s'] / single['answers_per_s']:.1f}x "
          "answers/s")
    if tmp:
        tmp.cleanup()


if __name__ == "__main__":
    main()
