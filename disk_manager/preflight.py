"""One call before a fine-tuning run: will the download, checkpoints and export fit?

    pf = preflight("mistralai/Mistral-7B-Instruct-v0.3", out_dir="runs/x", checkpoints=2)
    if not pf.fits:
        raise SystemExit(pf.summary())

The download lands on the volume of `cache_dir` (the HF hub cache by default); the adapter,
checkpoints and merged export on the volume of `out_dir`. When both are the same volume the
needs add up. Free space is read through `volumes.free_bytes` (tests patch it there).
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, field

from disk_manager import volumes
from disk_manager.caches import hf_hub_cache, locate_caches
from disk_manager.check import suggestions
from disk_manager.estimate import Estimate, estimate
from disk_manager.units import format_size


@dataclass(frozen=True)
class Item:
    name: str
    bytes: int
    path: str    # mount point of the volume it lands on
    basis: str   # what the figure is based on


@dataclass
class Preflight:
    fits: bool
    reasons: list[str]
    items: list[Item]
    needs: dict[str, int]
    free: dict[str, int]
    margin: float
    model: str
    memory: str = ""     # the quantized load: memory, not disk, reported for information
    estimate: Estimate | None = field(default=None, repr=False)

    def summary(self) -> str:
        verdict = "fits" if self.fits else "does NOT fit"
        lines = [f"Preflight for {self.model}: {verdict} (margin {self.margin:.0%})"]
        for it in self.items:
            lines.append(f"  {it.name:<15} {format_size(it.bytes):>10}  on {it.path}  — {it.basis}")
        for mount, need in self.needs.items():
            lines.append(f"  volume {mount}: need {format_size(need)}, "
                         f"free {format_size(self.free[mount])}")
        if self.memory:
            lines.append(f"  memory: {self.memory}")
        if self.estimate is not None and self.estimate.facts.notes:
            lines.append(f"  note: {'; '.join(self.estimate.facts.notes)}")
        lines += [f"  ✗ {r}" for r in self.reasons]
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return {"fits": self.fits, "reasons": list(self.reasons),
                "items": [asdict(i) for i in self.items], "needs": dict(self.needs),
                "free": dict(self.free), "margin": self.margin, "model": self.model,
                "memory": self.memory}


def preflight(model: str, *, out_dir: str | os.PathLike, quant: str = "4bit",
              checkpoints: int = 2, merge: bool = False, lora_rank: int = 16,
              cache_dir: str | os.PathLike | None = None, margin: float = 0.10,
              online: bool | None = None, full_params: int = 0) -> Preflight:
    """Say whether a run fits on disk, and if not, why and what to do about it."""
    cache = os.fspath(cache_dir) if cache_dir is not None else os.fspath(hf_hub_cache().path)
    est = estimate(model, quant=quant, checkpoints=checkpoints, merge=merge,
                   lora_rank=lora_rank, cache_dir=cache, online=online,
                   full_params=full_params)
    where = {"cache": volumes.mount_point(cache), "out": volumes.mount_point(out_dir)}
    items = [Item(f.name, f.bytes, where[f.lands], f.basis)
             for f in est.figures if f.lands != "memory"]
    needs: dict[str, int] = {}
    for it in items:
        needs[it.path] = needs.get(it.path, 0) + it.bytes
    probe = {where["cache"]: cache, where["out"]: os.fspath(out_dir)}
    free = {mount: volumes.free_bytes(probe[mount]) for mount in needs}
    reasons = [_reason(mount, need, free[mount], margin, items)
               for mount, need in needs.items() if free[mount] < math.ceil(need * (1 + margin))]
    memory = next((f"{f.name}: {format_size(f.bytes)} — {f.basis}"
                   for f in est.figures if f.lands == "memory"), "")
    return Preflight(not reasons, reasons, items, needs, free, margin, model, memory, est)


def _reason(mount: str, need: int, free: int, margin: float, items: list[Item]) -> str:
    required = math.ceil(need * (1 + margin))
    parts = ", ".join(f"{i.name} {format_size(i.bytes)}" for i in items
                      if i.path == mount and i.bytes)
    todo = suggestions(mount, required - free, required, locate_caches())
    return (f"{mount} has {format_size(free)} free but this run needs {format_size(need)} there "
            f"({parts}) + {margin:.0%} margin = {format_size(required)}; "
            f"{format_size(required - free)} missing. To fix: " + "; or ".join(todo) + ".")
