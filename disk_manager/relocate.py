"""Move the caches to a bigger volume (e.g. /workspace on a rented GPU machine).

Layout under DIR: huggingface/ (HF_HOME, with hub/ and datasets/ inside), pip/, torch/, tmp/.
Safe to run twice: a cache already at its destination (or a symlink to it) is not moved
again, the environment comes out the same, and the env file keeps one block of exports.
Conda's package folders stay where they are: environments may link into them.
Note: huggingface_hub reads HF_HOME/HF_HUB_CACHE when it is imported; a process that already
imported it keeps its old paths, so start training in a new shell after `source FILE`.
"""

from __future__ import annotations

import os
import shlex
import shutil
import tempfile
from collections.abc import MutableMapping
from dataclasses import dataclass, field
from pathlib import Path

from disk_manager.caches import hf_home, hf_hub_cache, locate_caches, pip_cache, torch_cache
from disk_manager.errors import DiskManagerError
from disk_manager.sizes import is_inside

BEGIN, END = "# >>> disk-manager relocate >>>", "# <<< disk-manager relocate <<<"


@dataclass
class Move:
    name: str
    src: str
    dst: str
    action: str    # "moved", "merged", "already there", "nothing to move"
    linked: bool = False


@dataclass
class RelocateReport:
    dest: str
    moves: list[Move] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    env_file: str | None = None

    def exports(self) -> list[str]:
        return [f"export {k}={shlex.quote(v)}" for k, v in self.env.items()]

    def to_dict(self) -> dict:
        return {"dest": self.dest, "moves": [m.__dict__ for m in self.moves], "env": self.env,
                "env_file": self.env_file, "exports": self.exports()}


def target_env(dest: Path) -> dict[str, str]:
    hf = dest / "huggingface"
    return {"HF_HOME": str(hf), "HF_HUB_CACHE": str(hf / "hub"),
            "HF_DATASETS_CACHE": str(hf / "datasets"), "PIP_CACHE_DIR": str(dest / "pip"),
            "TORCH_HOME": str(dest / "torch"), "TMPDIR": str(dest / "tmp")}


def _same(a: Path, b: Path) -> bool:
    return os.path.realpath(a) == os.path.realpath(b)


def _merge_move(src: Path, dst: Path) -> None:
    """Move src's content into dst; entries dst already has stay in src (never overwritten)."""
    for child in sorted(src.iterdir()):
        target = dst / child.name
        if not os.path.lexists(target):
            shutil.move(child, target)
        elif child.is_dir() and not child.is_symlink() and target.is_dir():
            _merge_move(child, target)
    if not any(src.iterdir()):
        src.rmdir()


def move_cache(name: str, src: Path, dst: Path, *, link: bool) -> Move:
    if not os.path.lexists(src) or (src.is_symlink() and not src.exists()):
        return Move(name, str(src), str(dst), "nothing to move")
    if _same(src, dst):
        return Move(name, str(src), str(dst), "already there", src.is_symlink())
    if is_inside(os.path.realpath(dst), os.path.realpath(src)):
        raise DiskManagerError(f"relocate: {dst} lies inside the cache {src} it would receive")
    real = Path(os.path.realpath(src))
    dst.parent.mkdir(parents=True, exist_ok=True)
    if os.path.lexists(dst):
        _merge_move(real, dst)
        action = "merged"
    else:
        shutil.move(real, dst)   # a rename on one volume, copy (symlinks kept) + delete across
        action = "moved"
    if src.is_symlink():
        src.unlink()
    if link and not os.path.lexists(src):
        src.symlink_to(dst, target_is_directory=True)
    return Move(name, str(src), str(dst), action, link and src.is_symlink())


def write_env_file(path: Path, exports: list[str]) -> None:
    """Replace our block in `path` (or append it), atomically: temp file + rename."""
    if path.exists() and not path.is_file():  # the rename would replace a device or folder
        raise DiskManagerError(f"--write-env: not a regular file: {path}")
    old = path.read_text().splitlines() if path.exists() else []
    keep, inside = [], False
    for line in old:
        if line == BEGIN:
            inside = True
        elif line == END:
            inside = False
        elif not inside:
            keep.append(line)
    while keep and not keep[-1].strip():
        keep.pop()
    text = "\n".join(keep + ([""] if keep else []) + [BEGIN, *exports, END]) + "\n"
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        f.write(text)
    # mkstemp makes 0600: keep an existing file's mode, give a new one what open() would.
    os.chmod(tmp, path.stat().st_mode & 0o777 if path.exists() else new_file_mode())
    os.replace(tmp, path)


def new_file_mode() -> int:
    """0o666 minus the umask, the mode any tool's new file gets (0644 under umask 022)."""
    mask = os.umask(0o022)  # the portable way to read it is to set it and put it back
    os.umask(mask)
    return 0o666 & ~mask


def relocate(dest: str | os.PathLike, *, link: bool = False,
             write_env: str | os.PathLike | None = None,
             env: MutableMapping[str, str] | None = None) -> RelocateReport:
    """Move the HF, pip and torch caches under `dest` and point the environment there."""
    env = os.environ if env is None else env
    dest = Path(dest).expanduser().absolute()
    if not dest.exists() and not dest.parent.is_dir():
        raise DiskManagerError(f"relocate: no such folder: {dest.parent}")
    if dest.exists() and not dest.is_dir():
        raise DiskManagerError(f"relocate: not a folder: {dest}")
    new = target_env(dest)
    home, _ = hf_home(env)
    hub = hf_hub_cache(env).path
    datasets = next(c.path for c in locate_caches(env) if c.name == "hf-datasets")
    plan = [("hf-home", home, Path(new["HF_HOME"]))]
    # Caches an env var put outside HF_HOME move on their own; inside it they travel with it.
    for name, src, var in (("hf", hub, "HF_HUB_CACHE"), ("hf-datasets", datasets,
                                                         "HF_DATASETS_CACHE")):
        if not is_inside(src, home):
            plan.append((name, src, Path(new[var])))
    plan += [("pip", pip_cache(env).path, Path(new["PIP_CACHE_DIR"])),
             ("torch", torch_cache(env).path, Path(new["TORCH_HOME"]))]
    report = RelocateReport(str(dest))
    for name, src, dst in plan:
        report.moves.append(move_cache(name, src.expanduser().absolute(), dst, link=link))
    Path(new["TMPDIR"]).mkdir(parents=True, exist_ok=True)
    env.update(new)
    report.env = new
    if write_env is not None:
        report.env_file = str(Path(write_env).expanduser().absolute())
        write_env_file(Path(report.env_file), report.exports())
    return report
