"""QLoRA vs bf16 LoRA on a Mistral-7B-shaped model: tokens/s and peak GPU memory (needs CUDA).

    python scripts/bench_qlora_gpu.py                      # both variants, 20 steps each
    python scripts/bench_qlora_gpu.py --layers 8 --steps 10   # a quicker, smaller check
    python scripts/bench_qlora_gpu.py --processes 4        # QLoRA data parallel on 4 GPUs

`--processes N` runs the QLoRA variant on 1 GPU and then under torchrun on N GPUs (one
process and one full quantized copy per GPU, DDP over NCCL, as `persona finetune` does under
torchrun / accelerate launch) and prints tokens/s per GPU and the scaling efficiency
(N-process total / (N x one process)).

The model is built from Mistral-7B-v0.3's config with random weights (nothing is downloaded;
speed and memory do not depend on the values). Each variant runs in its own process so the
peak-memory figures do not mix: 4-bit NF4 + double quantization with bf16 compute and paged
8-bit AdamW (what `persona finetune` does on CUDA), against the same LoRA on a bf16 base.
LoRA r 16 / alpha 32 on all linear projections, gradient checkpointing, batch 1 x seq 1024.
Not run in the task that wrote it (no GPU was lent); see docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time

MISTRAL_7B = dict(vocab_size=32768, hidden_size=4096, intermediate_size=14336,
                  num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=8,
                  max_position_embeddings=32768, rope_theta=1e6, sliding_window=None,
                  tie_word_embeddings=False)


def _rank() -> tuple[int, int]:
    import os

    return int(os.environ.get("LOCAL_RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


def build(quant: str, layers: int, folder: str):
    """Save a random bf16 Mistral-7B shape, then load it the way persona finetune would."""
    import torch
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig, MistralConfig

    local, _ = _rank()
    config = MistralConfig(**{**MISTRAL_7B, "num_hidden_layers": layers})
    with torch.device(f"cuda:{local}"):
        model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    model.save_pretrained(folder)  # quantization happens at load time, as with a download
    del model
    torch.cuda.empty_cache()
    kwargs = {}
    if quant == "4bit":
        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=torch.bfloat16)
    return AutoModelForCausalLM.from_pretrained(folder, dtype=torch.bfloat16,
                                                device_map={"": local}, **kwargs)


def run(quant: str, steps: int, seq: int, layers: int) -> dict:
    import torch
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training

    local, world = _rank()
    if world > 1:
        torch.cuda.set_device(local)
        torch.distributed.init_process_group("nccl")
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as folder:
        model = build(quant, layers, folder)
    if quant == "4bit":
        model = prepare_model_for_kbit_training(
            model, gradient_checkpointing_kwargs={"use_reentrant": False})
    else:
        model.gradient_checkpointing_enable({"use_reentrant": False})
        model.enable_input_require_grads()
    model = get_peft_model(model, LoraConfig(r=16, lora_alpha=32, lora_dropout=0.05,
                                             target_modules="all-linear", task_type="CAUSAL_LM"))
    params = [p for p in model.parameters() if p.requires_grad]
    if world > 1:
        model = torch.nn.parallel.DistributedDataParallel(model, device_ids=[local])
    if quant == "4bit":
        import bitsandbytes as bnb

        opt = bnb.optim.PagedAdamW8bit(params, lr=2e-4)
    else:
        opt = torch.optim.AdamW(params, lr=2e-4)
    ids = torch.randint(0, MISTRAL_7B["vocab_size"], (1, seq), device=f"cuda:{local}")
    torch.cuda.reset_peak_memory_stats()
    times = []
    for _ in range(steps):
        torch.cuda.synchronize()
        t = time.perf_counter()
        loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        torch.cuda.synchronize()
        times.append(time.perf_counter() - t)
    warm = times[2:] or times  # the first steps pay for kernel selection and allocation
    per_gpu = seq * len(warm) / sum(warm)
    if world > 1:  # the slowest process sets the pace of all
        t = torch.tensor([per_gpu], device=f"cuda:{local}")
        torch.distributed.all_reduce(t, op=torch.distributed.ReduceOp.MIN)
        per_gpu = t.item()
        torch.distributed.destroy_process_group()
    return {"variant": "QLoRA 4-bit" if quant == "4bit" else "LoRA bf16", "layers": layers,
            "seq": seq, "steps": steps, "processes": world,
            "tokens_per_s": round(per_gpu * world, 1), "tokens_per_s_per_gpu": round(per_gpu, 1),
            "peak_gpu_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2),
            "gpu": torch.cuda.get_device_name(local), "rank": local}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--seq", type=int, default=1024)
    ap.add_argument("--layers", type=int, default=32, help="32 = the full 7B shape")
    ap.add_argument("--processes", type=int, default=0,
                    help="data-parallel scaling on this many GPUs (QLoRA variant only)")
    ap.add_argument("--variant", choices=["4bit", "bf16"], help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.variant:
        row = run(args.variant, args.steps, args.seq, args.layers)
        if row["rank"] == 0:
            sys.stdout.write(json.dumps(row) + "\n")
        return
    import torch

    if not torch.cuda.is_available():
        sys.exit("needs a CUDA GPU (this benchmark measures GPU memory and throughput)")
    if args.processes:
        if args.processes > torch.cuda.device_count():
            sys.exit(f"--processes {args.processes}: only {torch.cuda.device_count()} GPU(s)")
        scaling(args)
        return
    rows = []
    for variant in ("4bit", "bf16"):
        proc = subprocess.run([sys.executable, __file__, "--variant", variant, "--steps",
                               str(args.steps), "--seq", str(args.seq), "--layers",
                               str(args.layers)], capture_output=True, text=True, check=True)
        rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    sys.stdout.write(f"GPU: {rows[0]['gpu']}; Mistral-7B shape, {args.layers} layers, "
                     f"seq {args.seq}, batch 1, LoRA r 16 all-linear, grad checkpointing\n\n"
                     "| variant | tokens/s | peak GPU GiB |\n|---|---|---|\n")
    for r in rows:
        sys.stdout.write(f"| {r['variant']} | {r['tokens_per_s']:,.0f} | {r['peak_gpu_gib']} |\n")


def scaling(args) -> None:
    """QLoRA on one GPU, then on N under torchrun: tokens/s per GPU, scaling efficiency."""
    worker = ["--variant", "4bit", "--steps", str(args.steps), "--seq", str(args.seq),
              "--layers", str(args.layers)]
    rows = []
    for n in (1, args.processes):
        cmd = ([sys.executable, __file__] if n == 1 else
               [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(n),
                __file__])
        proc = subprocess.run(cmd + worker, capture_output=True, text=True, check=True)
        rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    one, many = rows
    sys.stdout.write(f"GPU: {one['gpu']}; QLoRA, Mistral-7B shape, {args.layers} layers, seq "
                     f"{args.seq}, batch 1 per GPU, DDP over NCCL\n\n"
                     "| processes | tokens/s | tokens/s per GPU | peak GPU GiB (rank 0) |\n"
                     "|---|---|---|---|\n")
    for r in rows:
        sys.stdout.write(f"| {r['processes']} | {r['tokens_per_s']:,.0f} | "
                         f"{r['tokens_per_s_per_gpu']:,.0f} | {r['peak_gpu_gib']} |\n")
    eff = many["tokens_per_s"] / (many["processes"] * one["tokens_per_s"])
    sys.stdout.write(f"\nscaling efficiency at {many['processes']} GPUs: {eff:.0%}\n")


if __name__ == "__main__":
    main()
