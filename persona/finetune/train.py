"""LoRA / QLoRA fine-tuning of a causal LM on chat JSONL through TRL's SFTTrainer and PEFT.

    persona finetune --data final/babis --base-model tiny --out runs/babis-tiny
    persona finetune --data final/babis --base-model mistralai/Mistral-7B-Instruct-v0.3 \
        --out runs/babis-mistral                       # 4-bit QLoRA on CUDA
    accelerate launch -m persona finetune --config runs/babis.toml   # several GPUs

Order of work: read the data, (build the tiny base), disk preflight, and only then load weights.
Batches are padded per batch after grouping by length on the CPU; on CUDA with flash-attention
the examples are concatenated padding-free with per-example position ids, so no compute goes to
padding and examples never attend to each other. Nothing is packed into shared attention.
"""

from __future__ import annotations

import gc
import json
import logging
import os
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from persona.errors import InputError, WorkspaceError
from persona.finetune import (
    PreflightError,
    TrainingInterrupted,
    quiet_libraries,
    require_train_deps,
)
from persona.finetune.callbacks import Reporter, StopOnInterrupt, TrainingLog, sigint_to
from persona.finetune.config import FinetuneConfig, apply_presets, resume_conflicts
from persona.finetune.data import ChatData, load_chat_data, load_pair_data, tokenize_all
from persona.finetune.dist import Failed, OtherRankFailed, World, failure_code
from persona.finetune.hub import check_base_model
from persona.finetune.outputs import (
    library_versions,
    peak_rss_bytes,
    plot_loss,
    write_card,
    write_summary,
)
from persona.finetune.tiny import build_tiny, is_tiny, tiny_folder
from persona.io import write_json
from persona.workspace import workspace_lock

log = logging.getLogger(__name__)

# How the run was launched (processes, batch); --resume compares it with the new launch.
LAUNCH_FILE = "launch.json"


@dataclass
class Plan:
    """What was decided before any weights are loaded (the CLI prints it)."""

    device: str
    quant: str
    base: str
    attention: str
    padding_free: bool
    preflight: str = ""
    notes: list[str] = field(default_factory=list)
    processes: int = 1  # data-parallel processes (one per device)
    batch_size: int = 1  # examples per device per micro-step
    grad_accum: int = 1
    sharding: str = "none"  # "fsdp" under accelerate's FSDP config

    @property
    def effective_batch(self) -> int:
        """Examples per optimizer step: batch x grad_accum x processes."""
        return self.batch_size * self.grad_accum * self.processes

    def launch(self) -> dict[str, Any]:
        return {"world_size": self.processes, "per_device_batch": self.batch_size,
                "grad_accum": self.grad_accum, "effective_batch": self.effective_batch,
                "sharding": self.sharding}


@dataclass
class FinetuneResult:
    out: Path
    summary: dict[str, Any]
    log: list[dict]
    model: Any = None  # the trained PeftModel, still in memory
    tokenizer: Any = None


def last_checkpoint(out: Path) -> Path | None:
    """The newest complete checkpoint. The Trainer writes trainer_state.json last, so a folder
    without it was cut short (a kill during the save) and cannot be resumed from."""
    ckpts = [p for p in Path(out).glob("checkpoint-*")
             if p.name.split("-")[-1].isdigit() and (p / "trainer_state.json").exists()]
    return max(ckpts, key=lambda p: int(p.name.split("-")[-1]), default=None)


def resolve_quant(requested: str, device: str, sharding: str = "none") -> str:
    """auto = 4bit (QLoRA) on CUDA, none on the CPU, where bitsandbytes 4-bit is ~2x slower;
    under FSDP none (a quantized base is not sharded here: refused in one line)."""
    if sharding == "fsdp":
        if requested in ("4bit", "8bit"):
            raise InputError(f"--quant {requested} cannot be sharded with FSDP here; use --quant "
                             "none (full-precision LoRA, sharded) or launch without the FSDP "
                             "config (QLoRA, one copy per GPU)", field="quant")
        return "none"
    if requested != "auto":
        return requested
    return "4bit" if device == "cuda" else "none"


def finetune(cfg: FinetuneConfig, *, resume: bool = False, reporter: Reporter | None = None,
             on_plan=None) -> FinetuneResult:
    """Train a LoRA adapter as `cfg` says; write adapter, logs, plots and summary into cfg.out.

    Under torchrun / accelerate launch (one process per device), rank 0 alone takes the lock,
    runs the preflight, builds the tiny base and writes the files; the other ranks train with
    the plan it shares (persona.finetune.dist) and return a result without a summary.
    """
    require_train_deps()
    cfg = cfg.model_copy()  # presets fill in unset fields; the caller's object stays as given
    notes = apply_presets(cfg, is_tiny(cfg.base_model))
    world = World.current()
    if world.distributed:
        import torch

        world.start(cpu=not torch.cuda.is_available())
    try:
        with ExitStack() as held:  # rank 0's --out lock, held until the files are written
            if world.main:
                try:
                    data, plan = _set_up(cfg, resume, notes, world, held)
                except BaseException as e:
                    world.share(Failed(failure_code(e)))
                    raise
                world.share(plan)
                if on_plan:
                    on_plan(plan)
            else:
                plan = world.share(None)
                if isinstance(plan, Failed):
                    raise OtherRankFailed(plan.exit_code)
                data, reporter = _load_data(cfg), None
            result = _train(cfg, plan, data, world, resume, reporter)
    except BaseException:
        world.stop(wait=False)  # the others may sit in a collective this rank never reaches
        raise
    world.stop()
    return result


def _load_data(cfg: FinetuneConfig):
    return (load_chat_data(Path(cfg.data), val_fraction=cfg.val_fraction, seed=cfg.seed)
            if cfg.method == "sft" else load_pair_data(Path(cfg.data)))


def _set_up(cfg: FinetuneConfig, resume: bool, notes: list[str], world: World,
            held: ExitStack):
    """Rank 0's part before training: checks, lock (entered into `held`), plan, preflight."""
    out = _check_out(cfg, resume)
    # Bad data, --out or base model fail before the heavy imports (seconds on a CPU).
    data = _load_data(cfg)
    hub_note = None if is_tiny(cfg.base_model) else check_base_model(cfg.base_model)
    _make_out(out)
    # One run per --out: a second one fails at once naming this one (pid, since when).
    held.enter_context(workspace_lock(out, "persona finetune"))
    _check_out(cfg, resume)  # again, under the lock: another run may have saved since
    quiet_libraries()
    plan = make_plan(cfg, data, out, world)
    plan.notes[:0] = notes + ([hub_note] if hub_note else [])
    plan.notes += _launch_notes(out, plan, resume)
    write_json(out / "config.json", cfg.hyperparameters())
    write_json(out / LAUNCH_FILE, plan.launch())
    return data, plan


def _launch_notes(out: Path, plan: Plan, resume: bool) -> list[str]:
    """On --resume: say so when the processes (and so the effective batch) differ from the
    run that made the checkpoint; the remaining steps then see the data in another order."""
    saved_file = out / LAUNCH_FILE
    if not resume or not saved_file.exists():
        return []
    saved = json.loads(saved_file.read_text(encoding="utf-8"))
    if saved.get("world_size", 1) == plan.processes:
        return [f"resuming with the same {plan.processes} process(es) as the checkpoint"]
    return [f"resuming with {plan.processes} process(es); the checkpoint was made with "
            f"{saved.get('world_size', 1)} (effective batch {saved.get('effective_batch')} → "
            f"{plan.effective_batch}): a step now covers a different number of examples and "
            "the data order differs from an unbroken run"]


def _train(cfg: FinetuneConfig, plan: Plan, data, world: World, resume: bool,
           reporter: Reporter | None) -> FinetuneResult:
    """Every rank: load the base, train, save (the Trainer writes on rank 0 only)."""
    t0 = time.time()
    out = Path(cfg.out)
    quiet_libraries()
    tok, model = load_base(plan.base, plan.quant, plan.device, plan.attention)
    trainer, stopper, tlog = build_trainer(cfg, plan, data, tok, model, out, reporter)
    stopper.world = world
    with sigint_to(stopper):
        trainer.train(resume_from_checkpoint=str(last_checkpoint(out)) if resume else None)
    if stopper.stopped_at is not None:
        raise TrainingInterrupted(f"interrupted at step {stopper.stopped_at}; checkpoint saved "
                                  f"in {out}, continue with --resume")
    # A collective under sharding (the full adapter is gathered), rank 0 writes; the
    # tokenizer goes with it (the Trainer's processing_class).
    trainer.save_model(str(out))
    if world.main:
        (out / "training_args.bin").unlink(missing_ok=True)  # a pickle; config.json says it
    model = trainer.model
    if not world.main:
        return FinetuneResult(out, {}, tlog.rows, model, tok)
    summary = _finish(cfg, plan, data, trainer, tlog.rows, out, time.time() - t0)
    if cfg.merge:
        summary["merged"] = str(merge_adapter(out, plan.base, plan.device))
        write_summary(out / "summary.json", summary)
    return FinetuneResult(out, summary, tlog.rows, model, tok)


def _make_out(out: Path) -> None:
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise InputError(f"cannot create the output folder: {e.strerror or e}",
                         file=str(out), field="out") from None


def _check_out(cfg: FinetuneConfig, resume: bool) -> Path:
    for name in ("data", "base_model", "out"):
        if getattr(cfg, name) is None:
            raise InputError(f"missing --{name.replace('_', '-')}", field=name)
    out = Path(cfg.out)
    if out.exists() and not out.is_dir():
        raise InputError("not a folder", file=str(out), field="out")
    last = last_checkpoint(out)
    if resume and last is None:
        raise WorkspaceError(f"no checkpoint in {out} to resume from")
    if not resume and last is not None:
        raise WorkspaceError(f"{out} already holds checkpoints: pass --resume to continue, "
                             "or choose another --out")
    if resume:
        _check_same_settings(cfg, out)
    return out


def _check_same_settings(cfg: FinetuneConfig, out: Path) -> None:
    """A resumed run must learn what the saved one would have: refuse other settings, naming
    them, unless they only change cadence or bookkeeping (config.RESUME_SAFE)."""
    saved_file = out / "config.json"
    if not saved_file.exists():
        return  # a run from before config.json was written: nothing to compare with
    saved = json.loads(saved_file.read_text(encoding="utf-8"))
    differ = resume_conflicts(saved, cfg)
    if differ:
        now = cfg.hyperparameters()
        what = ", ".join(f"{k} (saved {saved.get(k)!r}, now {now.get(k)!r})" for k in differ)
        raise WorkspaceError(f"--resume with other settings than the run in {out}: {what}; "
                             "pass the saved ones (OUT/config.json) or choose another --out")


def make_plan(cfg: FinetuneConfig, data: ChatData, out: Path,
              world: World | None = None) -> Plan:
    """Decide device, quantization, attention and sharding; build a tiny base; run the disk
    preflight."""
    import importlib.util

    import torch

    world = world or World()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    sharding = sharding_mode()
    if sharding == "fsdp" and device == "cpu":
        # accelerate applies FSDP to GPU processes only; on the CPU it would run plain DDP.
        raise InputError("FSDP shards over GPUs and none is visible; on the CPU use data "
                         "parallel (accelerate launch --config_file configs/accelerate/"
                         "ddp-cpu.yaml, or torchrun)", field="accelerate config")
    quant = resolve_quant(cfg.quant, device, sharding)
    flash = device == "cuda" and importlib.util.find_spec("flash_attn") is not None
    base = cfg.base_model
    notes = []
    if is_tiny(base):
        # Tiny is built from the data (its tokenizer is trained on it), a few MB, before the
        # preflight so the preflight can measure a real folder.
        base = str(build_tiny(base, data.texts(), tiny_folder(out, base), seed=cfg.seed))
    elif adapter_base(base) is not None:
        # A finetune --out folder (an SFT adapter): merged into OUT/base-sft, which is the
        # base from here on, so DPO's reference (the adapter switched off) is the SFT model.
        base = str(merge_into_base(base, Path(out) / SFT_BASE, device))
        notes.append(f"the adapter {cfg.base_model} was merged into {base}: training starts "
                     "from it (and DPO's reference is it)")
    plan = Plan(device, quant, base, "flash_attention_2" if flash else "sdpa", padding_free=flash,
                processes=world.size, batch_size=cfg.batch_size, grad_accum=cfg.grad_accum,
                sharding=sharding)
    plan.notes += notes
    if sharding == "fsdp" and cfg.quant == "auto":
        plan.notes.append("FSDP shards a full-precision base: quant auto = none")
    plan.preflight = run_preflight(base, out, quant, cfg)
    return plan


def sharding_mode() -> str:
    """'fsdp' when `accelerate launch` runs with an FSDP config, else 'none' (each process
    holds a full copy: plain data parallel). DeepSpeed is refused: the shipped configs use
    FSDP, which needs nothing beyond torch and which PEFT documents for LoRA."""
    if _env_true("ACCELERATE_USE_DEEPSPEED"):
        raise InputError("DeepSpeed launches are not supported; use FSDP for sharding "
                         "(accelerate launch --config_file configs/accelerate/fsdp.yaml)",
                         field="accelerate config")
    return "fsdp" if _env_true("ACCELERATE_USE_FSDP") else "none"


def _env_true(name: str) -> bool:
    return os.environ.get(name, "").lower() in ("1", "true", "yes")


def run_preflight(model: str, out: Path, quant: str, cfg: FinetuneConfig) -> str:
    """Refuse (PreflightError, exit 2) when model, checkpoints and outputs won't fit on disk."""
    try:
        from disk_manager.preflight import preflight
    except ImportError:
        raise PreflightError("disk_manager is missing: install with pip install -e .") from None
    from disk_manager.errors import DiskManagerError

    try:
        pf = preflight(model, out_dir=out, quant=quant, checkpoints=cfg.save_total_limit,
                       merge=cfg.merge, lora_rank=cfg.lora_r, cache_dir=None, margin=0.10,
                       full_params=embedding_params(model) if cfg.train_embeddings else 0)
    except DiskManagerError as e:  # e.g. a model it cannot size: one line like ours
        raise PreflightError(f"disk preflight: {e}") from None
    if not pf.fits:
        raise PreflightError("will not fit on disk: " + "; ".join(pf.reasons))
    return pf.summary()


def embedding_params(model: str) -> int:
    """Parameters of the embedding and output-head copies that --train-embeddings saves with
    the adapter (one matrix when they are tied)."""
    from transformers import AutoConfig

    try:
        config = AutoConfig.from_pretrained(model)
    except (OSError, ValueError) as e:
        raise PreflightError(f"cannot read the config of {model} to size the trained "
                             f"embeddings: {e}") from None
    size = config.vocab_size * config.hidden_size
    return size if getattr(config, "tie_word_embeddings", False) else 2 * size


def load_base(base: str, quant: str, device: str, attention: str = "sdpa"):
    """Tokenizer and model; 4-/8-bit through BitsAndBytesConfig (bf16 compute on CUDA)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(base)
    _ensure_pad(tok)
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    kwargs: dict[str, Any] = {"dtype": dtype, "attn_implementation": attention}
    if quant != "none":
        kwargs["quantization_config"] = bnb_config(quant, dtype)
        if device == "cuda":
            from accelerate import PartialState

            # One full copy per process under `accelerate launch` (DDP), not sharded.
            kwargs["device_map"] = {"": PartialState().local_process_index}
    model = AutoModelForCausalLM.from_pretrained(base, **kwargs)
    if model.config.pad_token_id is None:
        model.config.pad_token_id = tok.pad_token_id
    return tok, model


def bnb_config(quant: str, compute_dtype):
    from transformers import BitsAndBytesConfig

    if quant == "8bit":
        return BitsAndBytesConfig(load_in_8bit=True)
    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4",
                              bnb_4bit_use_double_quant=True,
                              bnb_4bit_compute_dtype=compute_dtype)


def _ensure_pad(tok) -> None:
    """Pad must differ from EOS, else EOS labels get masked and the model never learns to stop.

    Reuse an existing spare token (unk) rather than adding one: a new token resizes the
    embeddings, and PEFT then saves the whole embedding matrix into the adapter.
    """
    if tok.pad_token is not None and tok.pad_token_id != tok.eos_token_id:
        return
    if tok.unk_token is not None and tok.unk_token_id != tok.eos_token_id:
        tok.pad_token = tok.unk_token
        return
    raise InputError("the tokenizer has no pad token distinct from EOS and no unk token to "
                     "reuse; add a pad token to the base model first")


def build_trainer(cfg, plan: Plan, data: ChatData, tok, model, out: Path,
                  reporter: Reporter | None):
    if cfg.method != "sft":
        return build_pair_trainer(cfg, plan, data, tok, model, out, reporter)
    from datasets import Dataset
    from transformers import PrinterCallback
    from trl import SFTTrainer

    model = _kbit_ready(cfg, plan, model)
    train = Dataset.from_list(tokenize_all(tok, data.train, cfg.max_length))
    val = Dataset.from_list(tokenize_all(tok, data.val, cfg.max_length))
    tlog, stopper = TrainingLog(out / "training_log.jsonl", reporter), StopOnInterrupt()
    trainer = SFTTrainer(model=model, args=sft_config(cfg, plan, out), train_dataset=train,
                         eval_dataset=val, processing_class=tok,
                         peft_config=lora_config(cfg, _tied(model)),
                         callbacks=[tlog, stopper])
    # disable_tqdm swaps the bar for a callback that prints raw log dicts; we report ourselves.
    trainer.remove_callback(PrinterCallback)
    return trainer, stopper, tlog


def build_pair_trainer(cfg, plan: Plan, data, tok, model, out: Path,
                       reporter: Reporter | None):
    """TRL's DPOTrainer or ORPOTrainer on the same LoRA set-up. DPO's reference model is
    the policy with its adapter switched off (TRL does so when given a peft_config and no
    ref_model): no second copy of the weights. ORPO needs no reference at all."""
    import os

    from datasets import Dataset
    from transformers import PrinterCallback

    model = _kbit_ready(cfg, plan, model)
    common = _trainer_args(cfg, plan, out)
    if cfg.method == "dpo":
        from trl import DPOConfig, DPOTrainer

        args, trainer_cls = DPOConfig(**common, beta=cfg.beta), DPOTrainer
    else:
        os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
        from trl.experimental.orpo import ORPOConfig, ORPOTrainer

        args, trainer_cls = ORPOConfig(**common, beta=cfg.beta,
                                       remove_unused_columns=False), ORPOTrainer
    tlog, stopper = TrainingLog(out / "training_log.jsonl", reporter), StopOnInterrupt()
    trainer = trainer_cls(model=model, args=args, train_dataset=Dataset.from_list(data.train),
                          eval_dataset=Dataset.from_list(data.val), processing_class=tok,
                          peft_config=lora_config(cfg, _tied(model)),
                          callbacks=[tlog, stopper])
    trainer.remove_callback(PrinterCallback)
    return trainer, stopper, tlog


def _kbit_ready(cfg, plan: Plan, model):
    """A quantized base made trainable for LoRA (casts, input grads); others as they are."""
    if plan.quant == "none":
        return model
    from peft import prepare_model_for_kbit_training

    return prepare_model_for_kbit_training(
        model, use_gradient_checkpointing=_grad_ckpt(cfg, plan),
        gradient_checkpointing_kwargs={"use_reentrant": False})


def _trainer_args(cfg, plan: Plan, out: Path) -> dict:
    """The training arguments SFT, DPO and ORPO share."""
    import torch

    cuda = plan.device == "cuda"
    return dict(
        output_dir=str(out), seed=cfg.seed, data_seed=cfg.seed, report_to="none",
        disable_tqdm=True, use_cpu=not cuda, bf16=cuda and torch.cuda.is_bf16_supported(),
        learning_rate=cfg.lr, lr_scheduler_type=cfg.lr_scheduler, warmup_steps=cfg.warmup_ratio,
        weight_decay=cfg.weight_decay, num_train_epochs=cfg.epochs, max_steps=cfg.max_steps,
        per_device_train_batch_size=cfg.batch_size, per_device_eval_batch_size=cfg.batch_size,
        gradient_accumulation_steps=cfg.grad_accum, max_length=cfg.max_length,
        activation_checkpointing=_grad_ckpt(cfg, plan),
        activation_checkpointing_kwargs={"use_reentrant": False},
        # Paged 8-bit AdamW keeps optimizer state small and spills to CPU on spikes (QLoRA).
        optim="paged_adamw_8bit" if cuda and plan.quant != "none" else "adamw_torch",
        logging_steps=cfg.logging_steps, save_strategy="steps", save_steps=cfg.save_steps,
        save_total_limit=cfg.save_total_limit, eval_strategy="steps", eval_steps=cfg.eval_steps,
        metric_for_best_model="eval_loss", greater_is_better=False,
        # Data parallel: every LoRA weight takes part in each forward pass; searching the
        # graph for unused ones costs a traversal per step.
        ddp_find_unused_parameters=False,
    )


def _tied(model) -> bool:
    return bool(getattr(model.config, "tie_word_embeddings", False))


def lora_config(cfg: FinetuneConfig, tied: bool = False):
    from peft import LoraConfig

    targets = cfg.target_modules
    return LoraConfig(
        r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout, bias="none",
        task_type="CAUSAL_LM",
        # Full trainable copies of these; the base model's own weights stay frozen and unchanged,
        # and the copies are saved in the adapter (vocab x hidden x 2 more values).
        modules_to_save=["embed_tokens", "lm_head"] if cfg.train_embeddings else None,
        ensure_weight_tying=bool(cfg.train_embeddings and tied),
        target_modules=targets if targets == "all-linear" else
        [t.strip() for t in targets.split(",") if t.strip()],
    )


def _grad_ckpt(cfg: FinetuneConfig, plan: Plan) -> bool:
    if cfg.gradient_checkpointing is not None:
        return cfg.gradient_checkpointing
    return plan.device == "cuda"


def sft_config(cfg: FinetuneConfig, plan: Plan, out: Path):
    from trl import SFTConfig

    return SFTConfig(
        **_trainer_args(cfg, plan, out),
        # No packing: without flash-attention, packed examples attend to each other.
        packing=False, padding_free=plan.padding_free,
        train_sampling_strategy="random" if plan.padding_free else "group_by_length",
    )


def _finish(cfg, plan: Plan, data: ChatData, trainer, rows: list[dict], out: Path,
            duration: float) -> dict[str, Any]:
    plot_loss(rows, out / "loss.png")
    summary = build_summary(cfg, plan, data, trainer, rows, out, duration)
    write_summary(out / "summary.json", summary)
    write_card(out / "README.md", summary)
    return summary


def build_summary(cfg, plan: Plan, data: ChatData, trainer, rows: list[dict], out: Path,
                  duration: float) -> dict[str, Any]:
    import torch

    losses = [r for r in rows if "loss" in r]
    evals = [r for r in rows if "eval_loss" in r]
    tps = [r["tokens_per_s"] for r in losses if r.get("tokens_per_s")]
    return {
        "out": str(out), "base_model": cfg.base_model, "base_path": plan.base,
        "device": plan.device, "quant": plan.quant, "attention": plan.attention,
        "padding_free": plan.padding_free, "steps": trainer.state.global_step,
        "epoch": round(trainer.state.epoch or 0, 4), **plan.launch(),
        "data": {"path": cfg.data, "sha256": data.sha256(), "files": [str(f) for f in data.files],
                 "train_examples": len(data.train), "val_examples": len(data.val),
                 "system_prompt": data.system_prompt()},
        "hyperparameters": cfg.hyperparameters(),
        "method": cfg.method,
        "final": {"loss": losses[-1]["loss"] if losses else None,
                  "eval_loss": evals[-1]["eval_loss"] if evals else None,
                  "first_loss": losses[0]["loss"] if losses else None,
                  **_margins(rows)},
        "tokens_per_s_mean": round(sum(tps) / len(tps), 1) if tps else None,
        "duration_s": round(duration, 1),
        "peak_rss_bytes": peak_rss_bytes(),
        "peak_gpu_bytes": torch.cuda.max_memory_allocated() if plan.device == "cuda" else None,
        "versions": library_versions(),
        "preflight": plan.preflight,
        "notes": plan.notes,
    }


def _margins(rows: list[dict]) -> dict[str, float]:
    """DPO / ORPO: the reward margin (chosen - rejected) at the first and last log, and on
    the last evaluation; nothing for SFT."""
    train = [r["rewards_margins"] for r in rows if "rewards_margins" in r]
    evals = [r["eval_rewards_margins"] for r in rows if "eval_rewards_margins" in r]
    out = {}
    if train:
        out.update(first_reward_margin=train[0], reward_margin=train[-1])
    if evals:
        out["eval_reward_margin"] = evals[-1]
    return out


def merge_adapter(out: Path, base: str, device: str, target: Path | None = None) -> Path:
    """Fold the adapter into full-precision base weights: OUT/merged loads without PEFT."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gc.collect()
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    model = AutoModelForCausalLM.from_pretrained(base, dtype=dtype)
    merged = PeftModel.from_pretrained(model, str(out)).merge_and_unload()
    target = Path(target) if target else Path(out) / "merged"
    merged.save_pretrained(target)
    AutoTokenizer.from_pretrained(str(out)).save_pretrained(target)
    return target


SFT_BASE = "base-sft"


def adapter_base(folder: str) -> str | None:
    """The base model of a finetune --out folder (None when `folder` holds no adapter)."""
    path = Path(folder)
    if not (path / "adapter_config.json").is_file():
        return None
    for name, key in (("summary.json", "base_path"),
                      ("adapter_config.json", "base_model_name_or_path")):
        try:
            value = json.loads((path / name).read_text(encoding="utf-8")).get(key)
        except (OSError, ValueError):
            continue
        if value:
            return str(value)
    raise InputError("the adapter folder names no base model (summary.json base_path or "
                     "adapter_config.json base_model_name_or_path)", file=folder,
                     field="base_model")


def merge_into_base(adapter: str, target: Path, device: str) -> Path:
    """An SFT adapter and its base as one model folder (kept: a resume reuses it)."""
    if (target / "config.json").is_file():
        return target
    base = adapter_base(adapter)
    if not Path(base).exists() and not is_tiny(base):
        check_base_model(base)
    tmp = target.with_name(target.name + ".tmp")
    import shutil

    shutil.rmtree(tmp, ignore_errors=True)
    merge_adapter(Path(adapter), base, device, target=tmp)
    tmp.rename(target)
    return target
