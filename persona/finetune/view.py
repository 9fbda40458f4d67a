"""Rich output of `persona finetune`: the plan, a progress bar (loss, tokens/s, ETA), a summary."""

from __future__ import annotations

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

console = Console(stderr=True)


def print_plan(plan) -> None:
    why = {"none": "full-precision base + LoRA", "4bit": "QLoRA: NF4 + double quantization",
           "8bit": "LLM.int8 base + LoRA"}[plan.quant]
    batching = ("padding-free (flash-attention keeps examples apart)" if plan.padding_free
                else "length-grouped dynamic padding, no packing")
    console.print(f"[bold]device[/] {plan.device}  [bold]quantization[/] {plan.quant} ({why})")
    console.print(f"[bold]base[/] {plan.base}  [bold]batching[/] {batching}")
    if plan.processes > 1:
        shard = " (FSDP: weights sharded)" if plan.sharding == "fsdp" else " (DDP)"
        console.print(f"[bold]processes[/] {plan.processes}{shard}  [bold]effective batch[/] "
                      f"{plan.batch_size} × {plan.grad_accum} × {plan.processes} = "
                      f"{plan.effective_batch}")
    if plan.preflight:
        console.print(f"[bold]preflight[/] {plan.preflight}")
    for note in plan.notes:
        console.print(f"[bold]note[/] {note}")


class RichReporter:
    """Implements persona.finetune.callbacks.Reporter with a rich progress bar on stderr."""

    def __init__(self):
        self.progress: Progress | None = None
        self.task = None
        self.fields = {"loss": "–", "tps": "–"}

    def start(self, total_steps: int, first_step: int,
              batch: tuple[int, int, int] = (1, 1, 1)) -> None:
        processes, per_device, accum = batch
        label = (f"[bold]training[/] {processes} proc × {per_device} × {accum} = "
                 f"{processes * per_device * accum}/step" if processes > 1
                 else "[bold]training")
        self.progress = Progress(
            TextColumn(label), BarColumn(), MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]}"), TextColumn("{task.fields[tps]} tok/s"),
            TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
            console=console, transient=False)
        self.task = self.progress.add_task("train", total=total_steps, completed=first_step,
                                           **self.fields)
        self.progress.start()

    def step(self, step: int, metrics: dict) -> None:
        if self.progress is None:
            return
        if "loss" in metrics:
            self.fields["loss"] = f"{metrics['loss']:.3f}"
            self.fields["tps"] = f"{metrics['tokens_per_s']:.0f}"
        self.progress.update(self.task, completed=step, **self.fields)

    def finish(self) -> None:
        if self.progress is not None:
            self.progress.stop()


def print_summary(summary: dict) -> None:
    final = summary["final"]
    table = Table(title="finetune summary", show_header=False)
    rows = [
        ("base model", summary["base_model"]),
        ("method", summary.get("method", "sft")),
        ("quantization", summary["quant"]),
        ("steps", str(summary["steps"])),
        *([("processes, effective batch",
            f"{summary['world_size']}, {summary['per_device_batch']} × {summary['grad_accum']}"
            f" × {summary['world_size']} = {summary['effective_batch']}")]
          if summary.get("world_size", 1) > 1 else []),
        ("train loss", f"{final['first_loss']:.4f} → {final['loss']:.4f}"
         if final["loss"] is not None else "–"),
        ("eval loss", f"{final['eval_loss']:.4f}" if final["eval_loss"] is not None else "–"),
        *([("reward margin (chosen - rejected)",
            f"{final['first_reward_margin']:.3f} → {final['reward_margin']:.3f}"
            + (f", eval {final['eval_reward_margin']:.3f}"
               if "eval_reward_margin" in final else ""))]
          if "reward_margin" in final else []),
        ("tokens/s (mean)", str(summary["tokens_per_s_mean"])),
        ("duration", f"{summary['duration_s']} s"),
        ("peak RSS", f"{summary['peak_rss_bytes'] / 2**30:.2f} GiB"),
        ("adapter", summary["out"]),
    ]
    if summary.get("merged"):
        rows.append(("merged weights", summary["merged"]))
    for k, v in rows:
        table.add_row(k, v)
    Console().print(table)
