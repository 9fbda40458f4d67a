"""Local fine-tuning: LoRA/QLoRA through TRL + PEFT on chat JSONL, guarded by a disk preflight.

Nothing here imports torch at module level; `persona --help` stays fast.
"""

from __future__ import annotations

from persona.errors import PersonaError


class PreflightError(PersonaError):
    """The disk preflight says the model, checkpoints and outputs would not fit."""


class TrainDepsMissing(PersonaError):
    """The [train] extra (torch, transformers, trl, peft, ...) is not installed."""


class TrainingInterrupted(PersonaError):
    """Ctrl-C during training: a checkpoint was saved, `--resume` continues from it."""

    exit_code = 130


def require_train_deps() -> None:
    """Raise TrainDepsMissing (one line, exit 2) unless the training stack imports."""
    import importlib.util

    missing = [m for m in ("torch", "transformers", "trl", "peft", "datasets", "matplotlib")
               if importlib.util.find_spec(m) is None]
    if missing:
        raise TrainDepsMissing(
            f"missing {', '.join(missing)}: install with pip install -e '.[train]'")


def quiet_libraries() -> None:
    """Our own progress display replaces the libraries' bars and per-file chatter."""
    import logging
    import warnings

    # Before peft/bitsandbytes import: a harmless "Failed to load CPU gemm_4bit_forward" line.
    logging.getLogger("bitsandbytes").setLevel(logging.ERROR)
    import datasets
    import transformers

    datasets.disable_progress_bars()
    transformers.utils.logging.disable_progress_bar()
    transformers.utils.logging.set_verbosity_error()
    # Raised from inside transformers' own Trainer (v5 renames it activation checkpointing).
    warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*",
                            category=FutureWarning)
