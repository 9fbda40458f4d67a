"""The Hugging Face hub cache, read through `huggingface_hub.scan_cache_dir` (never by hand)."""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from huggingface_hub import scan_cache_dir
from huggingface_hub.utils import CachedRepoInfo, CachedRevisionInfo, HFCacheInfo

log = logging.getLogger(__name__)


def scan(root: str | os.PathLike) -> HFCacheInfo | None:
    """The scan of a hub cache, or None when the folder does not exist yet."""
    if not Path(root).is_dir():
        return None
    info = scan_cache_dir(root)
    for w in info.warnings:  # a corrupted repo is skipped by the scan: say so, don't hide it
        log.warning("HF cache: %s", w)
    return info


def find_model(info: HFCacheInfo | None, model_id: str) -> CachedRepoInfo | None:
    if info is None:
        return None
    for repo in info.repos:
        if repo.repo_type == "model" and repo.repo_id.lower() == model_id.lower():
            return repo
    return None


def current_revision(repo: CachedRepoInfo) -> CachedRevisionInfo | None:
    """The revision `main` points to, else the most recently modified one."""
    revisions = sorted(repo.revisions, key=lambda r: r.last_modified, reverse=True)
    for rev in revisions:
        if "main" in rev.refs:
            return rev
    return revisions[0] if revisions else None


@dataclass(frozen=True)
class Snapshot:
    """What a cached revision holds, as far as loading the model is concerned."""

    path: Path
    commit: str
    complete: bool
    present_bytes: int            # bytes of its files already on disk
    safetensors: list[Path]       # weight files present
    config: dict | None
    missing: list[str]            # shards named by the index but absent


def snapshot_of(repo: CachedRepoInfo) -> Snapshot | None:
    rev = current_revision(repo)
    if rev is None:
        return None
    names = {f.file_name: f for f in rev.files}
    rel = {f.file_path.relative_to(rev.snapshot_path).as_posix(): f for f in rev.files}
    config = _read_json(rev.snapshot_path / "config.json") if "config.json" in rel else None
    shards = [f.file_path for f in rev.files if f.file_name.endswith(".safetensors")]
    missing: list[str] = []
    if "model.safetensors.index.json" in rel:
        index = _read_json(rev.snapshot_path / "model.safetensors.index.json") or {}
        wanted = set(index.get("weight_map", {}).values())
        missing = sorted(w for w in wanted if w not in rel)
        shards = [rev.snapshot_path / w for w in sorted(wanted) if w in rel]
        complete = bool(wanted) and not missing
    else:
        complete = "model.safetensors" in names or any(
            n.endswith(".safetensors") for n in names)
    return Snapshot(rev.snapshot_path, rev.commit_hash, complete and config is not None,
                    rev.size_on_disk, shards, config, missing)


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as e:
        log.warning("cannot read %s: %s", path, e)
        return None
