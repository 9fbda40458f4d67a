"""Volumes: which mount a path lands on, and how much is free there.

`free_bytes` and `mount_point` are the only readings of the file system's capacity; the rest of
the package calls them through this module (`volumes.free_bytes(...)`), so tests monkeypatch
them here to simulate a full disk.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path

import psutil

# Pseudo and container-plumbing file systems nobody writes a model to.
_SKIP_FSTYPES = {"proc", "sysfs", "devtmpfs", "devpts", "cgroup", "cgroup2", "securityfs",
                 "pstore", "debugfs", "tracefs", "mqueue", "hugetlbfs", "configfs", "fusectl",
                 "binfmt_misc", "autofs", "bpf", "nsfs", "squashfs", "ramfs", "rpc_pipefs"}


@dataclass(frozen=True)
class Volume:
    mount: str
    device: str
    fstype: str
    total: int
    used: int
    free: int

    @property
    def percent_used(self) -> float:
        return 100.0 * self.used / self.total if self.total else 0.0

    def to_dict(self) -> dict:
        return {**asdict(self), "percent_used": round(self.percent_used, 1)}


def existing_parent(path: str | os.PathLike) -> Path:
    """The path itself if it exists, else its nearest existing ancestor (where it would be made)."""
    p = Path(path).expanduser().absolute()
    while not p.exists():
        if p.parent == p:
            break
        p = p.parent
    return p


def mount_point(path: str | os.PathLike) -> str:
    """The mount point of the volume that holds (or would hold) `path`."""
    p = Path(os.path.realpath(existing_parent(path)))
    while not os.path.ismount(p) and p.parent != p:
        p = p.parent
    return str(p)


def free_bytes(path: str | os.PathLike) -> int:
    """Bytes an unprivileged user can still write on the volume of `path`."""
    return psutil.disk_usage(str(existing_parent(path))).free


def list_volumes() -> list[Volume]:
    """Real, readable volumes, one per mount point (bind mounts of one device kept apart)."""
    volumes: dict[str, Volume] = {}
    for part in psutil.disk_partitions(all=False):
        if part.fstype in _SKIP_FSTYPES or part.mountpoint in volumes:
            continue
        try:
            usage = psutil.disk_usage(part.mountpoint)
        except OSError:  # a stale network mount or one we may not read: not a place to write
            continue
        volumes[part.mountpoint] = Volume(part.mountpoint, part.device, part.fstype,
                                          usage.total, usage.used, usage.free)
    return sorted(volumes.values(), key=lambda v: v.mount)
