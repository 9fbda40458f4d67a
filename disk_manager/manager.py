"""`DiskManager`: the whole package behind one object, for scripts and notebooks.

    dm = DiskManager()
    if not dm.check_disk_space(need="30GB"):
        dm.cleanup_cache(dry_run=False)
        dm.setup_network_storage("/workspace")
"""

from __future__ import annotations

import os
from collections.abc import Iterable

from disk_manager import caches as caches_mod
from disk_manager.caches import Cache
from disk_manager.check import CheckResult, check_space
from disk_manager.clean import CleanReport, Selector, clean
from disk_manager.estimate import Estimate, estimate
from disk_manager.preflight import Preflight, preflight
from disk_manager.relocate import RelocateReport, relocate
from disk_manager.status import Status, status
from disk_manager.units import parse_duration, parse_margin, parse_size


class DiskManager:
    def __init__(self, caches: list[Cache] | None = None):
        """`caches`: the caches to manage; by default located from the environment each call."""
        self._caches = caches

    @property
    def caches(self) -> list[Cache]:
        return list(self._caches) if self._caches is not None else caches_mod.locate_caches()

    def hf_cache_dir(self) -> str:
        return next((str(c.path) for c in self.caches if c.name == "hf"),
                    str(caches_mod.hf_hub_cache().path))

    def status(self, *, top: int = 10) -> Status:
        return status(self.caches, top=top)

    def check(self, need: int | str, path: str | os.PathLike | None = None,
              margin: float | str = 0.10) -> CheckResult:
        return check_space(parse_size(need, what="need"), path or self.hf_cache_dir(),
                           margin=parse_margin(margin), caches=self.caches)

    def check_disk_space(self, need: int | str, path: str | os.PathLike | None = None,
                         margin: float | str = 0.10) -> bool:
        """True when `need` (+ margin) fits on the volume of `path` (default: the HF cache)."""
        return self.check(need, path, margin).fits

    def cleanup_cache(self, *, dry_run: bool = True, caches: Iterable[str] = caches_mod.CLEANABLE,
                      older_than: str | float | None = None, larger_than: str | int | None = None,
                      models: Iterable[str] = (), keep: Iterable[str] = ()) -> CleanReport:
        """Clean the caches (a dry run unless dry_run=False); returns what went and bytes freed."""
        sel = Selector(set(caches),
                       parse_duration(older_than) if older_than is not None else None,
                       parse_size(larger_than) if larger_than is not None else None,
                       list(models), list(keep))
        return clean(self.caches, sel, dry_run=dry_run)

    def setup_network_storage(self, dest: str | os.PathLike, *, link: bool = False,
                              write_env: str | os.PathLike | None = None) -> RelocateReport:
        """Move the caches to `dest` (e.g. /workspace) and point this process's env there."""
        report = relocate(dest, link=link, write_env=write_env)
        if self._caches is not None:   # managed caches follow the move
            self._caches = caches_mod.locate_caches()
        return report

    def estimate(self, model: str, **kwargs) -> Estimate:
        kwargs.setdefault("cache_dir", self.hf_cache_dir())
        return estimate(model, **kwargs)

    def preflight(self, model: str, *, out_dir: str | os.PathLike, **kwargs) -> Preflight:
        kwargs.setdefault("cache_dir", self.hf_cache_dir())
        return preflight(model, out_dir=out_dir, **kwargs)
