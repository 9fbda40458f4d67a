"""Bad inputs of the training commands: finetune, chat (each case imports torch: a few s)."""

from __future__ import annotations

from tests.bad_inputs import BINARY, Case, hold_lock, mkdir, write

FT = ("finetune", "--data", "{data}", "--out", "runs/x")

CASES: list[Case] = [
    Case("finetune-data-missing", ("finetune", "--data", "nosuch", "--base-model", "tiny",
                                   "--out", "runs/x"), stderr="nosuch"),
    Case("finetune-data-binary", ("finetune", "--data", "bin.jsonl", "--base-model", "tiny",
                                  "--out", "runs/x"),
         setup=write("bin.jsonl", BINARY), stderr="binary"),
    Case("finetune-data-empty-folder", ("finetune", "--data", "adir", "--base-model", "tiny",
                                        "--out", "runs/x"), setup=mkdir("adir"), stderr="adir"),
    Case("finetune-no-base-model", ("finetune", "--data", "{data}", "--out", "runs/x"),
         stderr="--base-model"),
    Case("finetune-unknown-base-model", (*FT, "--base-model", "nosuch/model"),
         stderr="nosuch/model", timeout=60),
    # a hub id that is not in the local cache, the hub unreachable: at once, one line
    Case("finetune-uncached-hub-id", (*FT, "--base-model", "fake-org/fake-model-xyz"),
         stderr="HF_HUB_OFFLINE", timeout=30),
    Case("finetune-uncached-hub-id-offline", (*FT, "--base-model", "fake-org/fake-model-xyz"),
         env={"HF_HUB_OFFLINE": "1"}, stderr="not in the local", timeout=30),
    Case("finetune-base-model-missing-folder", (*FT, "--base-model", "./nosuch-model"),
         stderr="nosuch-model"),
    Case("finetune-quant-bogus", (*FT, "--base-model", "tiny", "--quant", "2bit"),
         stderr="--quant"),
    Case("finetune-lora-r-zero", (*FT, "--base-model", "tiny", "--lora-r", "0"),
         stderr="lora_r"),
    Case("finetune-lr-malformed", (*FT, "--base-model", "tiny", "--lr", "fast"),
         stderr="--lr"),
    Case("finetune-config-missing", ("finetune", "--config", "nosuch.toml"),
         stderr="nosuch.toml"),
    Case("finetune-config-unknown-key", ("finetune", "--config", "c.toml"),
         setup=write("c.toml", "data = \"x\"\nlora_rank = 8\n"),
         stderr="unknown key `lora_rank` (did you mean `lora_r`?)"),
    Case("finetune-config-binary", ("finetune", "--config", "c.toml"),
         setup=write("c.toml", BINARY), stderr="c.toml"),
    Case("finetune-out-is-a-file", ("finetune", "--data", "{data}", "--base-model", "tiny",
                                    "--out", "afile"), setup=write("afile", "x"),
         stderr="afile"),
    Case("finetune-out-in-proc", ("finetune", "--data", "{data}", "--base-model", "tiny",
                                  "--out", "/proc/x"), stderr="/proc/x"),
    # another finetune writes that --out: at once, naming it, nothing of it touched
    Case("finetune-out-in-use", (*FT, "--base-model", "tiny"),
         setup=hold_lock("persona finetune", under="runs/x"), stderr="in use by pid",
         max_lines=4),
    Case("chat-model-missing", ("chat", "--model", "nosuch", "-q", "Ahoj?"), stderr="nosuch"),
    Case("chat-model-not-a-run", ("chat", "--model", "adir", "-q", "Ahoj?"),
         setup=mkdir("adir"), stderr="no adapter"),
    Case("chat-max-new-tokens-zero", ("chat", "--model", "adir", "--max-new-tokens", "0"),
         stderr="--max-new-tokens"),
    Case("chat-no-model", ("chat", "-q", "Ahoj?"), stderr="--model"),
]

PAIR_LINE = ('{"prompt": [{"role": "user", "content": "Co dálnice?"}], '
             '"chosen": [{"role": "assistant", "content": "Makáme!"}], '
             '"rejected": [{"role": "assistant", "content": "Stavba pokračuje."}]}\n')


def _pairs(ws) -> None:
    for split in ("train", "val"):
        write(f"p/{split}.jsonl", PAIR_LINE)(ws)


CASES += [
    Case("finetune-sft-on-pairs", ("finetune", "--data", "p", "--base-model", "tiny",
                                   "--out", "runs/x"), setup=_pairs,
         stderr="holds preference pairs (prompt, chosen, rejected): train them with --method"),
    Case("finetune-dpo-on-chat-data", (*FT, "--base-model", "tiny", "--method", "dpo"),
         stderr="make them with `persona pairs FINAL_DIR`"),
    Case("finetune-dpo-pair-without-rejected", ("finetune", "--data", "q", "--base-model",
                                                "tiny", "--out", "runs/x", "--method", "orpo"),
         setup=lambda ws: [write(f"q/{s}.jsonl", PAIR_LINE.split(', "rejected"')[0] + "}\n")(ws)
                           for s in ("train", "val")],
         stderr="train.jsonl:1: rejected:"),
    Case("finetune-method-bogus", (*FT, "--base-model", "tiny", "--method", "ppo"),
         stderr="--method", max_lines=4),
]

CASES += [
    Case("finetune-beta-zero", (*FT, "--base-model", "tiny", "--method", "dpo", "--beta", "0"),
         stderr="beta"),
]

CASES += [
    # accelerate's FSDP config on a machine without a GPU: refused, not run as plain DDP
    Case("finetune-fsdp-without-gpu", (*FT, "--base-model", "tiny"),
         env={"ACCELERATE_USE_FSDP": "true"}, stderr="FSDP shards over GPUs"),
    Case("finetune-deepspeed-launch", (*FT, "--base-model", "tiny"),
         env={"ACCELERATE_USE_DEEPSPEED": "true"}, stderr="DeepSpeed launches are not"),
]
