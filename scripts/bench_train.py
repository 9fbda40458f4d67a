"""Training throughput: `persona finetune` batching vs the course recipe, same data, same model.

    python scripts/bench_train.py --data final/babis                 # prints a markdown table
    python scripts/bench_train.py --data final/babis --write-docs    # + docs/benchmarks.md

Both variants train the same LoRA (r 16, all linear layers) on the same tiny Llama for the same
number of steps with the same batch size, through the same SFTTrainer:
- persona: length-grouped batches padded to the longest example of the batch, loss on the
  assistant tokens only (what `persona finetune` does on a CPU);
- course:  every example padded to 512 tokens, loss on all tokens (the course material's recipe).
The figure that matters is non-padding tokens per second: useful text learned from per second.
Each variant runs in its own process, so the peak RSS of each is its own.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs" / "benchmarks.md"
COURSE_LENGTH = 512


def run_variant(variant: str, data: Path, steps: int, batch_size: int, work: Path) -> dict:
    import torch

    from persona.finetune import quiet_libraries
    from persona.finetune.config import load_config
    from persona.finetune.data import load_chat_data
    from persona.finetune.outputs import peak_rss_bytes
    from persona.finetune.tiny import build_tiny
    from persona.finetune.train import Plan, build_trainer, load_base

    quiet_libraries()
    torch.manual_seed(0)
    chats = load_chat_data(data)
    # Same seed: same model. The size the figures in docs/benchmarks.md were measured on (the
    # demo-sized default of build_tiny came later).
    base = build_tiny("tiny", chats.texts(), work / "base", seed=0, vocab_size=1024, hidden=128,
                      layers=2, tied=True)
    cfg = load_config(None, dict(data=str(data), base_model="tiny", out=str(work / variant),
                                 max_steps=steps, batch_size=batch_size, grad_accum=1,
                                 logging_steps=steps, eval_steps=10 * steps,
                                 save_steps=10 * steps, max_length=COURSE_LENGTH))
    plan = Plan("cpu", "none", str(base), "sdpa", padding_free=False)
    tok, model = load_base(plan.base, plan.quant, plan.device)
    trainer, _, _ = build_trainer(cfg, plan, chats, tok, model, work / variant, None)
    if variant == "course":
        _pad_everything(trainer, tok.pad_token_id)
    counted = _count_real_tokens(trainer, tok.pad_token_id)
    metrics = trainer.train().metrics
    return {"variant": variant, "steps": steps, "batch_size": batch_size,
            "examples": len(chats.train),
            "real_tokens": counted["real"], "padded_tokens": counted["all"],
            "train_s": round(metrics["train_runtime"], 2),
            "real_tokens_per_s": round(counted["real"] / metrics["train_runtime"], 1),
            "peak_rss_mb": round(peak_rss_bytes() / 2**20)}


def _pad_everything(trainer, pad_id: int) -> None:
    """The course recipe: each example padded to 512, labels = input ids (padding included)."""
    from datasets import Dataset

    rows = []
    for ids in trainer.train_dataset["input_ids"]:
        padded = list(ids) + [pad_id] * (COURSE_LENGTH - len(ids))
        rows.append({"input_ids": padded, "labels": padded})
    trainer.train_dataset = Dataset.from_list(rows)
    trainer.args.train_sampling_strategy = "random"


def _count_real_tokens(trainer, pad_id: int) -> dict:
    counted = {"real": 0, "all": 0}
    collate = trainer.data_collator

    def counting(examples):
        batch = collate(examples)
        counted["real"] += int((batch["input_ids"] != pad_id).sum())
        counted["all"] += batch["input_ids"].numel()
        return batch

    trainer.data_collator = counting
    return counted


def markdown(results: dict[str, dict], data: Path) -> str:
    p, c = results["persona"], results["course"]
    ratio = p["real_tokens_per_s"] / c["real_tokens_per_s"]
    rows = "\n".join(
        f"| {r['variant']} | {r['real_tokens']:,} | {r['padded_tokens']:,} | {r['train_s']} | "
        f"{r['real_tokens_per_s']:,.0f} | {r['peak_rss_mb']} |" for r in (p, c))
    return f"""## Training

`python scripts/bench_train.py --data {data} --write-docs` — CPU (2 shared cores), tiny Llama
(hidden 128, 2 layers, byte-level BPE trained on the data), LoRA r 16 on all linear layers,
{p['examples']} training conversations of the built-in persona (`persona run --persona babis
--count 300`), {p['steps']} steps × batch {p['batch_size']}, the same seed and data for both.

| variant | non-padding tokens | tokens computed | train s | non-padding tokens/s | peak RSS MiB |
|---|---|---|---|---|---|
{rows}

**persona finetune / course recipe: {ratio:.1f}× the non-padding tokens per second.** The course
recipe pads every example to 512 tokens, so most of its compute goes to padding; persona groups
examples by length and pads each batch only to its longest example (and learns from assistant
tokens only, which changes the loss, not the speed). The ratio grows with the gap between 512
and the typical example length; on CUDA with flash-attention persona goes padding-free.

The GPU QLoRA benchmark on a Mistral-7B-shaped model was not run: no device was lent to this
task. `scripts/bench_qlora_gpu.py` runs it (4-bit QLoRA vs bf16 LoRA, sequence length 1024,
tokens/s and peak GPU memory) on a machine with a CUDA GPU.
"""


def write_section(text: str, path: Path = DOCS) -> None:
    """Replace the '## Training' section (up to the next '## ') and leave the others alone."""
    old = path.read_text(encoding="utf-8") if path.exists() else "# Benchmarks\n"
    start = old.find("## Training\n")
    if start < 0:
        new = old.rstrip("\n") + "\n\n" + text
    else:
        end = old.find("\n## ", start + 1)
        new = old[:start] + text + (old[end + 1:] if end >= 0 else "")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(new, encoding="utf-8")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, required=True, help="dataset folder or chat JSONL")
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--write-docs", action="store_true", help="update docs/benchmarks.md")
    ap.add_argument("--variant", choices=["persona", "course"], help=argparse.SUPPRESS)
    ap.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.variant:  # child process: one variant, JSON on stdout
        result = run_variant(args.variant, args.data, args.steps, args.batch_size, args.work)
        sys.stdout.write(json.dumps(result) + "\n")
        return
    results = {}
    with tempfile.TemporaryDirectory() as work:
        for variant in ("persona", "course"):
            proc = subprocess.run(
                [sys.executable, __file__, "--data", str(args.data), "--steps", str(args.steps),
                 "--batch-size", str(args.batch_size), "--variant", variant, "--work", work],
                capture_output=True, text=True, check=True)
            results[variant] = json.loads(proc.stdout.strip().splitlines()[-1])
    text = markdown(results, args.data)
    sys.stdout.write(text)
    if args.write_docs:
        write_section(text)


if __name__ == "__main__":
    main()
