"""Plan and carry out the cleaning of caches — safely.

Safety rules, each covered by a test:
- only paths strictly inside a cache root are deleted, never a root itself;
- symlinks are never followed: a link is removed as a link, its target stays (os.lstat,
  os.walk(followlinks=False), and a path whose parent resolves outside the root is refused);
- anything a running process holds open is skipped (psutil);
- the bytes freed are measured (`du -sb` of each root before minus after), not estimated.
The HF hub cache is read and emptied through huggingface_hub (`scan_cache_dir`,
`delete_revisions(...).execute()`); pip, torch and conda caches file by file (conda: only
its package tarballs, since environments may link to the extracted packages).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from huggingface_hub.utils import HFCacheInfo

from disk_manager import hf, openfiles
from disk_manager.caches import Cache
from disk_manager.sizes import dir_size, is_inside

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Candidate:
    cache: str
    root: Path
    label: str                  # what a person recognises: repo + revision, or a relative path
    paths: tuple[Path, ...]     # what would be deleted (checked against roots and open files)
    bytes: int
    last_used: float
    revision: str | None = None  # HF commit hash, deleted through huggingface_hub
    reason: str = ""             # why it is kept although selected

    def to_dict(self) -> dict:
        return {"cache": self.cache, "root": str(self.root), "label": self.label,
                "bytes": self.bytes, "last_used": self.last_used, "revision": self.revision,
                "reason": self.reason}


@dataclass
class Selector:
    """Which cached items go. Empty fields select everything."""

    caches: set[str] = field(default_factory=lambda: {"hf", "pip", "torch", "conda"})
    older_than: float | None = None    # seconds since last use
    larger_than: int | None = None     # bytes
    models: list[str] = field(default_factory=list)
    keep: list[str] = field(default_factory=list)
    now: float = field(default_factory=time.time)

    def wants(self, size: int, last_used: float) -> bool:
        if self.older_than is not None and self.now - last_used < self.older_than:
            return False
        return self.larger_than is None or size > self.larger_than


@dataclass
class CleanReport:
    dry_run: bool
    items: list[Candidate]      # what would go (dry run) or went
    skipped: list[Candidate]    # selected but kept, with the reason
    bytes_freed: int            # measured: size of the roots before minus after; 0 on a dry run

    @property
    def planned_bytes(self) -> int:
        return sum(c.bytes for c in self.items)

    def to_dict(self) -> dict:
        return {"dry_run": self.dry_run, "planned_bytes": self.planned_bytes,
                "bytes_freed": self.bytes_freed, "items": [c.to_dict() for c in self.items],
                "skipped": [c.to_dict() for c in self.skipped]}


def _match(repo_id: str, ids: list[str]) -> bool:
    return repo_id.lower() in {i.lower() for i in ids}


def plan_hf(cache: Cache, info: HFCacheInfo, sel: Selector) -> list[Candidate]:
    out: list[Candidate] = []
    for repo in sorted(info.repos, key=lambda r: r.repo_id):
        if sel.models and not _match(repo.repo_id, sel.models):
            continue
        kept = "kept by --keep" if _match(repo.repo_id, sel.keep) else ""
        for rev in sorted(repo.revisions, key=lambda r: r.commit_hash):
            used = max((f.blob_last_accessed for f in rev.files), default=rev.last_modified)
            if not sel.wants(rev.size_on_disk, used):
                continue
            refs = ",".join(sorted(rev.refs)) or "detached"
            paths = (rev.snapshot_path, *sorted({f.blob_path for f in rev.files}))
            out.append(Candidate("hf", cache.path, f"{repo.repo_id} @ {rev.commit_hash[:8]} "
                                 f"({refs})", paths, rev.size_on_disk, used,
                                 rev.commit_hash, kept))
    if not sel.models:
        for inc in sorted(info.incomplete_files, key=lambda f: str(f.file_path)):
            st = os.lstat(inc.file_path)
            if sel.wants(inc.size_on_disk, max(st.st_atime, st.st_mtime)):
                out.append(Candidate("hf", cache.path, "incomplete download "
                                     + str(inc.file_path.relative_to(info.cache_dir)),
                                     (inc.file_path,), inc.size_on_disk, st.st_mtime))
    return out


def plan_files(cache: Cache, sel: Selector) -> list[Candidate]:
    """Every file and symlink below the root (conda: its top-level tarballs only)."""
    out: list[Candidate] = []
    for dirpath, dirnames, filenames in os.walk(cache.path, followlinks=False):
        names = filenames + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]
        for name in sorted(names):
            p = Path(dirpath) / name
            if cache.name == "conda" and not (p.parent == cache.path
                                               and name.endswith((".conda", ".tar.bz2"))):
                continue
            st = os.lstat(p)
            # Resolving a symlink bumps its atime (our own walk does): trust only its mtime.
            used = st.st_mtime if p.is_symlink() else max(st.st_atime, st.st_mtime)
            if sel.wants(st.st_size, used):
                out.append(Candidate(cache.name, cache.path,
                                     str(p.relative_to(cache.path)), (p,), st.st_size, used))
    return out


def plan(caches: list[Cache], sel: Selector, opened: set[str] | None = None
         ) -> tuple[list[Candidate], list[Candidate], dict[Path, HFCacheInfo]]:
    """(to delete, kept with a reason, HF scans by root) for the selected caches."""
    opened = openfiles.open_paths() if opened is None else opened
    found: list[Candidate] = []
    scans: dict[Path, HFCacheInfo] = {}
    for cache in caches:
        if cache.name not in sel.caches or not cache.exists:
            continue
        if cache.name == "hf":
            info = hf.scan(cache.path)
            if info is not None:
                scans[cache.path] = info
                found += plan_hf(cache, info, sel)
        elif not sel.models:   # --model selects HF repos only
            found += plan_files(cache, sel)
    go, kept = [], []
    for c in found:
        if not c.reason and (hit := openfiles.touches_open_file([str(p) for p in c.paths],
                                                                 opened)):
            c = dataclasses.replace(c, reason=f"open by a running process ({hit})")
        (kept if c.reason else go).append(c)
    return go, kept, scans


def safe_target(path: Path, root: Path) -> bool:
    """Inside the root for real: lexically, and with its parent folders resolved."""
    real_root = os.path.realpath(root)
    physical = os.path.join(os.path.realpath(os.path.dirname(path)), os.path.basename(path))
    return is_inside(physical, real_root)


def _unlink(path: Path, root: Path) -> None:
    if not safe_target(path, root):
        log.warning("refusing to delete %s: outside the cache root %s", path, root)
        return
    if os.path.islink(path) or not os.path.isdir(path):
        path.unlink(missing_ok=True)   # a link goes as a link; its target stays
    parent, real_root = path.parent, os.path.realpath(root)
    while (is_inside(os.path.realpath(parent), real_root) and parent.is_dir()
           and not any(parent.iterdir())):
        parent.rmdir()   # folders we emptied; the root itself is never reached
        parent = parent.parent


def _delete_hf(info: HFCacheInfo, root: Path, items: list[Candidate]) -> None:
    revisions = [c.revision for c in items if c.revision]
    if revisions:
        strategy = info.delete_revisions(*revisions)
        # A repo or snapshot folder that is a symlink is unlinked, never rmtree'd through.
        linked = {p for p in strategy.repos | strategy.snapshots if os.path.islink(p)}
        ok = {name: frozenset(p for p in getattr(strategy, name)
                              if safe_target(p, root) and p not in linked)
              for name in ("blobs", "refs", "repos", "snapshots", "files")}
        dropped = {p for name in ok for p in getattr(strategy, name)} - set().union(*ok.values())
        for p in sorted(dropped - linked):
            log.warning("not deleting %s: it lies outside the cache root %s", p, root)
        ok["files"] = ok["files"] | frozenset(p for p in linked if safe_target(p, root))
        dataclasses.replace(strategy, **ok).execute()
    for c in items:
        if not c.revision:
            _unlink(c.paths[0], root)


def execute(items: list[Candidate], scans: dict[Path, HFCacheInfo]) -> int:
    """Delete the planned items; return the bytes freed, measured on each root."""
    roots = sorted({c.root for c in items})
    before = {r: dir_size(os.path.realpath(r)) for r in roots}
    for root in roots:
        mine = [c for c in items if c.root == root]
        if root in scans:
            _delete_hf(scans[root], root, mine)
        else:
            for c in mine:
                _unlink(c.paths[0], root)
    return sum(before[r] - dir_size(os.path.realpath(r)) for r in roots)


def clean(caches: list[Cache], sel: Selector, *, dry_run: bool = True,
          opened: set[str] | None = None) -> CleanReport:
    go, kept, scans = plan(caches, sel, opened)
    freed = 0 if dry_run else execute(go, scans)
    return CleanReport(dry_run, go, kept, freed)
