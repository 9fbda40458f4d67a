"""What `disk-manager status` shows: volumes, caches with their sizes, the largest HF models."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from disk_manager import hf, volumes
from disk_manager.caches import Cache
from disk_manager.sizes import dir_size


@dataclass
class CacheStatus:
    name: str
    path: str
    basis: str
    exists: bool
    bytes: int      # `du -sb` of the root (apparent sizes, symlinks as links)
    mount: str


@dataclass
class ModelStatus:
    repo_id: str
    repo_type: str
    bytes: int
    revisions: list[str]      # "abc12345 (main)"
    last_accessed: float
    path: str


@dataclass
class Status:
    volumes: list[volumes.Volume]
    caches: list[CacheStatus]
    models: list[ModelStatus] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"volumes": [v.to_dict() for v in self.volumes],
                "caches": [asdict(c) for c in self.caches],
                "models": [asdict(m) for m in self.models], "warnings": self.warnings}


def cache_status(cache: Cache) -> CacheStatus:
    return CacheStatus(cache.name, str(cache.path), cache.basis, cache.exists,
                       dir_size(cache.path) if cache.exists else 0,
                       volumes.mount_point(cache.path))


def status(caches: list[Cache], *, top: int = 10) -> Status:
    result = Status(volumes.list_volumes(), [cache_status(c) for c in caches])
    for cache in caches:
        if cache.name != "hf" or not cache.exists:
            continue
        info = hf.scan(cache.path)
        result.warnings += [str(w) for w in info.warnings]
        for repo in info.repos:
            revs = [f"{r.commit_hash[:8]} ({','.join(sorted(r.refs)) or 'detached'})"
                    for r in sorted(repo.revisions, key=lambda r: -r.last_modified)]
            result.models.append(ModelStatus(repo.repo_id, repo.repo_type, repo.size_on_disk,
                                             revs, repo.last_accessed, str(repo.repo_path)))
    result.models = sorted(result.models, key=lambda m: -m.bytes)[:top]
    return result
