"""What a finished run leaves in OUT besides the adapter: loss.png, summary.json, README.md."""

from __future__ import annotations

import platform
import resource
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from persona.io import write_json, write_text

LIBRARIES = ("persona", "torch", "transformers", "trl", "peft", "accelerate", "datasets",
             "bitsandbytes", "tokenizers")


def library_versions() -> dict[str, str | None]:
    found: dict[str, str | None] = {"python": platform.python_version()}
    for name in LIBRARIES:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = None
    return found


def peak_rss_bytes() -> int:
    """Peak resident memory of this process (ru_maxrss is KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


def plot_loss(log: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")  # no display needed; safe in CI and over ssh
    import matplotlib.pyplot as plt

    def series(key: str) -> list[tuple[int, float]]:
        return [(r["step"], r[key]) for r in log if key in r]

    def panel(ax, lines: list[tuple[str, str, str]], ylabel: str) -> None:
        for key, style, label in lines:
            points = series(key)
            if points:
                ax.plot(*zip(*points, strict=True), style, label=label)
        ax.set_xlabel("step")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        ax.legend()

    margins = bool(series("rewards_margins"))  # DPO / ORPO: a second panel
    fig, axes = plt.subplots(1, 2 if margins else 1, figsize=(12 if margins else 7, 4))
    panel(axes[0] if margins else axes,
          [("loss", "-", "train loss"), ("eval_loss", "o-", "eval loss")], "loss")
    if margins:  # the chosen answers' reward above the rejected ones'
        panel(axes[1], [("rewards_margins", "-", "train reward margin"),
                        ("eval_rewards_margins", "o-", "eval reward margin")],
              "chosen - rejected reward")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write_summary(path: Path, summary: dict[str, Any]) -> None:
    write_json(path, summary)


def model_card(summary: dict[str, Any]) -> str:
    hp = summary["hyperparameters"]
    final = summary.get("final", {})
    lines = [
        f"# {Path(summary['out']).name}",
        "",
        f"A LoRA adapter for `{summary['base_model']}` trained with `persona finetune` on "
        f"{summary['data']['train_examples']} chat examples "
        f"(data sha256 `{summary['data']['sha256'][:16]}…`).",
        "",
        "## Use",
        "```",
        f"persona chat --model {summary['out']} --question \"…\"",
        "```",
        "",
        "## Training",
        "",
        "| setting | value |",
        "|---|---|",
        f"| quantization | {summary['quant']} |",
        f"| LoRA r / alpha / dropout | {hp['lora_r']} / {hp['lora_alpha']} / "
        f"{hp['lora_dropout']} |",
        f"| target modules | {hp['target_modules']} |",
        f"| embeddings and head trained in full | {bool(hp.get('train_embeddings'))} |",
        f"| learning rate | {hp['lr']} ({hp['lr_scheduler']}) |",
        f"| batch x accumulation | {hp['batch_size']} x {hp['grad_accum']} |",
        f"| steps | {summary['steps']} |",
        f"| final train loss | {final.get('loss')} |",
        f"| final eval loss | {final.get('eval_loss')} |",
        *([f"| method, reward margin (chosen - rejected) | {summary.get('method')}, "
           f"{final.get('first_reward_margin')} → {final['reward_margin']} |"]
          if "reward_margin" in final else []),
        f"| duration | {summary['duration_s']} s |",
        "",
        "Loss on assistant tokens only; see `training_log.jsonl` and `loss.png`.",
        "",
    ]
    if summary.get("notes"):
        lines += ["## Notes", "", *[f"- {n}" for n in summary["notes"]], ""]
    return "\n".join(lines)


def write_card(path: Path, summary: dict[str, Any]) -> None:
    write_text(path, model_card(summary))
