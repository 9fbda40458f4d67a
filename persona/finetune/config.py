"""The fine-tuning config: typed fields with help text; default < TOML file < flag.

The defaults suit a few thousand short chat examples (see docs/finetune.md for why each one).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from persona.errors import InputError, from_validation, unknown_key
from persona.io import read_toml


class FinetuneConfig(BaseModel):
    """Everything that decides a fine-tuning run; written to OUT/config.json with every run."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    data: str | None = Field(None, description="Dataset folder (train.jsonl + val.jsonl) or one "
                             "chat JSONL file (a seeded validation part is split off).")
    base_model: str | None = Field(None, description="Local model folder, hub id, or 'tiny' / "
                                   "'tiny-mistral' (a small model built offline from the data).")
    out: str | None = Field(None, description="Output folder: adapter, logs, checkpoints, summary.")
    quant: Literal["auto", "4bit", "8bit", "none"] = Field(
        "auto", description="Base weights: 4bit (QLoRA, NF4), 8bit, or none; auto = 4bit on "
        "CUDA, none on the CPU.")
    method: Literal["sft", "dpo", "orpo"] = Field(
        "sft", description="sft: learn the answers (chat data); dpo / orpo: prefer the chosen "
        "answer over the rejected one (preference pairs from `persona pairs`; DPO's reference "
        "is the base with the adapter switched off, no second copy).")
    beta: float = Field(0.1, gt=0, description="DPO: how far the policy may move from the "
                        "reference; ORPO: weight of the odds-ratio term.")
    lora_r: int = Field(16, gt=0, description="LoRA rank.")
    lora_alpha: int = Field(32, gt=0, description="LoRA alpha (scale = alpha / r).")
    lora_dropout: float = Field(0.05, ge=0, lt=1, description="Dropout on the LoRA input.")
    target_modules: str = Field("all-linear", description="Modules that get LoRA: 'all-linear' "
                                "or a comma-separated list of names (q_proj,v_proj).")
    lr: float = Field(2e-4, gt=0, description="Peak learning rate.")
    lr_scheduler: str = Field("cosine", description="Learning-rate schedule (transformers name).")
    warmup_ratio: float = Field(0.03, ge=0, lt=1, description="Fraction of steps to warm up.")
    weight_decay: float = Field(0.0, ge=0, description="AdamW weight decay.")
    epochs: float = Field(2.0, gt=0, description="Passes over the training data.")
    max_steps: int = Field(-1, description="Stop after this many optimizer steps (-1: epochs).")
    batch_size: int = Field(8, gt=0, description="Examples per device per step.")
    grad_accum: int = Field(2, gt=0, description="Steps of gradient accumulation.")
    max_length: int = Field(1024, gt=8, description="Longest example in tokens (cut at the end).")
    save_steps: int = Field(100, gt=0, description="Save a checkpoint every N steps.")
    save_total_limit: int = Field(2, gt=0, description="Checkpoints kept (the best is kept too).")
    eval_steps: int = Field(50, gt=0, description="Evaluate on the validation split every N steps.")
    logging_steps: int = Field(10, gt=0, description="Log loss, lr and tokens/s every N steps.")
    val_fraction: float = Field(0.05, gt=0, lt=1, description="Validation share when --data is "
                                "one file.")
    gradient_checkpointing: bool | None = Field(None, description="Recompute activations to save "
                                                "memory; default on with CUDA, off on the CPU.")
    train_embeddings: bool | None = Field(
        None, description="Also train the input embeddings and the output head in full (PEFT "
        "modules_to_save; the base files stay untouched); default: on for the tiny bases, "
        "off otherwise.")
    merge: bool = Field(False, description="Also write merged full weights to OUT/merged.")
    seed: int = Field(42, description="Seed for the split, the init and the data order.")

    def hyperparameters(self) -> dict[str, Any]:
        return self.model_dump()


# The tiny bases are random: their embeddings and output head encode nothing, and a LoRA on the
# attention/MLP of a random model cannot make up for that (loss 7.1 -> 6.0 in 300 steps, empty
# answers). For them only, the settings a user did not give take these values (printed before
# training; see docs/finetune.md). Real models keep the defaults above.
TINY_PRESET: dict[str, Any] = {"train_embeddings": True, "lr": 2e-3}

# Settings that may differ between a run and its --resume: they change cadence, bookkeeping or
# memory use, not what is learned from which data in which order.
RESUME_SAFE = frozenset({"out", "save_steps", "save_total_limit", "eval_steps", "logging_steps",
                         "merge", "gradient_checkpointing"})


def apply_presets(cfg: FinetuneConfig, tiny: bool) -> list[str]:
    """Fill the settings the user left unset for a tiny base; say what changed, one line each.

    `train_embeddings` left unset resolves to off for every other base, silently (the default).
    """
    notes = []
    for name, value in TINY_PRESET.items():
        if not tiny or name in cfg.model_fields_set:
            continue
        default = FinetuneConfig.model_fields[name].default
        setattr(cfg, name, value)
        notes.append(f"tiny preset: {name} = {value} (default {default})")
    if cfg.train_embeddings is None:
        cfg.train_embeddings = False
    return notes


def resume_conflicts(saved: dict[str, Any], cfg: FinetuneConfig) -> list[str]:
    """The settings (other than RESUME_SAFE ones) in which `cfg` differs from a saved run's."""
    now = cfg.hyperparameters()
    return sorted(k for k in now.keys() | saved.keys()
                  if k not in RESUME_SAFE and saved.get(k) != now.get(k))


def field_help(name: str) -> str:
    """The help text of one field, for the CLI (one source of truth)."""
    info = FinetuneConfig.model_fields[name]
    default = info.default
    return f"{info.description} [default: {default}]" if default is not None else info.description


def load_config(path: Path | None = None,
                overrides: dict[str, Any] | None = None) -> FinetuneConfig:
    """Resolve a config: defaults < TOML file at `path` < `overrides` (flags; None = not given).

    Unknown keys in the file are rejected with their name, so a typo never trains silently with
    a default.
    """
    values: dict[str, Any] = {}
    if path is not None:
        values.update(_read_toml(Path(path)))
    values.update({k: v for k, v in (overrides or {}).items() if v is not None})
    try:
        return FinetuneConfig(**values)
    except ValidationError as e:
        raise from_validation(e, file=str(path) if path else None, cls=InputError,
                              model=FinetuneConfig) from None


def _read_toml(path: Path) -> dict[str, Any]:
    data = read_toml(path)
    # Accept the keys at the top level or under a [finetune] table; dashes as in the flags.
    data = data.get("finetune", data)
    values = {k.replace("-", "_"): v for k, v in data.items()}
    unknown = sorted(set(values) - set(FinetuneConfig.model_fields))
    if unknown:
        more = f" (+{len(unknown) - 1} more)" if len(unknown) > 1 else ""
        raise InputError(unknown_key(unknown[0], FinetuneConfig.model_fields) + more,
                         file=str(path))
    return values
