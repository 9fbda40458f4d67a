"""Trainer callbacks: the JSONL training log, Ctrl-C → checkpoint, and progress reporting.

They are duck-typed rather than subclasses of transformers.TrainerCallback so that this module
imports without transformers: the Trainer only calls `on_<event>(args, state, control, **kw)`,
and every event we do not handle is a no-op here.
"""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol


def _noop(*args, **kwargs) -> None:
    return None


class Callback:
    def __getattr__(self, name: str):
        if name.startswith("on_"):
            return _noop
        raise AttributeError(name)


class Reporter(Protocol):
    """What the CLI's progress display implements (a library caller may pass None)."""

    def start(self, total_steps: int, first_step: int,
              batch: tuple[int, int, int] = (1, 1, 1)) -> None:
        """batch: (processes, per-device batch, gradient accumulation)."""
    def step(self, step: int, metrics: dict[str, float]) -> None: ...
    def finish(self) -> None: ...


class TrainingLog(Callback):
    """Append one JSON line per logging step (loss, lr, tokens/s) and per evaluation.

    Tokens/s counts non-padding tokens (TRL's `num_tokens`: the attention mask's sum). On resume
    the lines after the checkpoint's step are dropped, so the file reads as one run.
    """

    def __init__(self, path: Path, reporter: Reporter | None = None):
        self.path = Path(path)
        self.reporter = reporter
        self.rows: list[dict[str, Any]] = []
        self._t = self._tokens = 0.0

    def on_train_begin(self, args, state, control, **kw):
        if not state.is_world_process_zero:  # data parallel: rank 0 writes and reports
            self.reporter = None
            return
        self.rows = [r for r in read_log(self.path) if r["step"] <= state.global_step]
        self.path.write_text("".join(json.dumps(r) + "\n" for r in self.rows), encoding="utf-8")
        self._t, self._tokens = time.perf_counter(), 0.0
        if self.reporter:
            self.reporter.start(state.max_steps, state.global_step,
                                batch=(args.world_size, args.per_device_train_batch_size,
                                       args.gradient_accumulation_steps))

    def on_step_end(self, args, state, control, **kw):
        if self.reporter:
            self.reporter.step(state.global_step, {})

    def on_log(self, args, state, control, logs=None, **kw):
        if not state.is_world_process_zero:
            return
        logs = logs or {}
        row: dict[str, Any] = {"step": state.global_step, "epoch": round(state.epoch or 0, 4)}
        if "loss" in logs:
            now, tokens = time.perf_counter(), float(logs.get("num_tokens", 0))
            row.update(loss=logs["loss"], lr=logs.get("learning_rate"),
                       grad_norm=logs.get("grad_norm"), tokens=int(tokens),
                       tokens_per_s=round((tokens - self._tokens) / max(now - self._t, 1e-9), 1))
            self._t, self._tokens = now, tokens
        elif "eval_loss" in logs:
            row["eval_loss"] = logs["eval_loss"]
        else:
            return
        # DPO / ORPO: how far the chosen answers' reward is above the rejected ones'
        for key in ("rewards/margins", "rewards/accuracies", "eval_rewards/margins",
                    "eval_rewards/accuracies"):
            if key in logs:
                row[key.replace("/", "_")] = logs[key]
        self.rows.append(row)
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(row) + "\n")
        if self.reporter:
            self.reporter.step(state.global_step, row)

    def on_train_end(self, args, state, control, **kw):
        if self.reporter:
            self.reporter.finish()


def read_log(path: Path) -> list[dict]:
    path = Path(path)
    if not path.exists():
        return []
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:  # the half-written last line of a killed run
            continue
    return rows


class StopOnInterrupt(Callback):
    """After Ctrl-C, finish the current step, save a checkpoint and stop the loop cleanly."""

    def __init__(self):
        self.requested = False
        self.stopped_at: int | None = None
        self.world = None  # persona.finetune.dist.World: every rank must stop at one step

    def on_step_end(self, args, state, control, **kw):
        if self.world is not None and self.world.any(self.requested):
            self.requested = True
        if self.requested:
            control.should_save = True
            control.should_training_stop = True
            self.stopped_at = state.global_step
        return control


@contextmanager
def sigint_to(callback: StopOnInterrupt) -> Iterator[None]:
    """Route the first Ctrl-C to `callback`; a second one interrupts at once."""
    previous = signal.getsignal(signal.SIGINT)

    def handler(signum, frame):
        if callback.requested:
            raise KeyboardInterrupt
        callback.requested = True

    try:
        signal.signal(signal.SIGINT, handler)
    except ValueError:  # not the main thread (e.g. a notebook worker): keep the default
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
