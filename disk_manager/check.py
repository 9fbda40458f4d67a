"""Will `need` bytes fit on the volume that receives `path`? And if not, what to do."""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, field

from disk_manager import volumes
from disk_manager.caches import Cache
from disk_manager.sizes import dir_size
from disk_manager.units import format_size


@dataclass
class CheckResult:
    path: str
    mount: str
    need: int
    margin: float
    free: int
    suggestions: list[str] = field(default_factory=list)

    @property
    def required(self) -> int:
        """The need plus the safety margin."""
        return math.ceil(self.need * (1 + self.margin))

    @property
    def fits(self) -> bool:
        return self.free >= self.required

    @property
    def missing(self) -> int:
        return max(self.required - self.free, 0)

    def message(self) -> str:
        head = (f"{self.mount}: {format_size(self.free)} free, need {format_size(self.need)}"
                f" + {self.margin:.0%} margin = {format_size(self.required)}")
        if self.fits:
            return f"OK — {head}."
        return f"Not enough space — {head}: {format_size(self.missing)} missing."

    def to_dict(self) -> dict:
        return {**asdict(self), "required": self.required, "fits": self.fits,
                "missing": self.missing}


def check_space(need: int, path: str | os.PathLike, *, margin: float = 0.10,
                caches: list[Cache] | None = None) -> CheckResult:
    """Compare free space on `path`'s volume (nearest existing parent) with need + margin."""
    result = CheckResult(str(path), volumes.mount_point(path), need, margin,
                         volumes.free_bytes(path))
    if not result.fits:
        result.suggestions = suggestions(result.mount, result.missing, result.required,
                                         caches or [])
    return result


def suggestions(mount: str, missing: int, required: int, caches: list[Cache]) -> list[str]:
    """Caches on the full volume that could be cleaned, and volumes with room for it all."""
    out: list[str] = []
    flags = {"hf": "--hf", "pip": "--pip", "torch": "--torch", "conda": "--conda"}
    for cache in caches:
        if not (cache.exists and cache.cleanable and volumes.mount_point(cache.path) == mount):
            continue
        size = dir_size(cache.path)
        if size:
            out.append(f"clean the {cache.name} cache at {cache.path} ({format_size(size)}): "
                       f"disk-manager clean {flags[cache.name]} (dry run first, then --yes)")
    for vol in volumes.list_volumes():
        free = volumes.free_bytes(vol.mount)
        if vol.mount != mount and free >= required:
            out.append(f"move the caches to {vol.mount} ({format_size(free)} free): "
                       f"disk-manager relocate {vol.mount} --link")
    if not out:
        out.append(f"free {format_size(missing)} on {mount} or choose a path on another volume")
    return out
