"""Locate the caches the way each tool itself does: its environment variables first.

- Hugging Face hub: HF_HUB_CACHE > HF_HOME/hub > XDG_CACHE_HOME/huggingface/hub > ~/.cache/...
- HF datasets:      HF_DATASETS_CACHE > HF_HOME/datasets;  HF xet: HF_XET_CACHE > HF_HOME/xet
- pip:              PIP_CACHE_DIR > XDG_CACHE_HOME/pip > ~/.cache/pip (macOS: ~/Library/Caches)
- torch:            TORCH_HOME > XDG_CACHE_HOME/torch > ~/.cache/torch
- conda:            CONDA_PKGS_DIRS (comma-separated) > `pkgs_dirs` in ~/.condarc > `conda info`
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

#: Caches `clean` knows how to empty; the others are only shown and relocated.
CLEANABLE = ("hf", "pip", "torch", "conda")


@dataclass(frozen=True)
class Cache:
    name: str      # "hf", "hf-datasets", "hf-xet", "pip", "torch", "conda"
    path: Path     # its root folder; `clean` deletes only below it, never the root itself
    basis: str     # how it was located, e.g. "HF_HUB_CACHE" or "default"

    @property
    def exists(self) -> bool:
        return self.path.is_dir()

    @property
    def cleanable(self) -> bool:
        return self.name in CLEANABLE


def _env(env: Mapping[str, str] | None) -> Mapping[str, str]:
    return os.environ if env is None else env


def _xdg_cache(env: Mapping[str, str]) -> Path:
    return Path(env.get("XDG_CACHE_HOME") or Path.home() / ".cache").expanduser()


def hf_home(env: Mapping[str, str] | None = None) -> tuple[Path, str]:
    env = _env(env)
    if env.get("HF_HOME"):
        return Path(env["HF_HOME"]).expanduser(), "HF_HOME"
    basis = "XDG_CACHE_HOME" if env.get("XDG_CACHE_HOME") else "default"
    return _xdg_cache(env) / "huggingface", basis


def hf_hub_cache(env: Mapping[str, str] | None = None) -> Cache:
    env = _env(env)
    if env.get("HF_HUB_CACHE"):
        return Cache("hf", Path(env["HF_HUB_CACHE"]).expanduser(), "HF_HUB_CACHE")
    home, basis = hf_home(env)
    return Cache("hf", home / "hub", basis)


def _hf_sub(name: str, var: str, sub: str, env: Mapping[str, str]) -> Cache:
    if env.get(var):
        return Cache(name, Path(env[var]).expanduser(), var)
    home, basis = hf_home(env)
    return Cache(name, home / sub, basis)


def pip_cache(env: Mapping[str, str] | None = None) -> Cache:
    env = _env(env)
    if env.get("PIP_CACHE_DIR"):
        return Cache("pip", Path(env["PIP_CACHE_DIR"]).expanduser(), "PIP_CACHE_DIR")
    if sys.platform == "darwin" and not env.get("XDG_CACHE_HOME"):
        return Cache("pip", Path.home() / "Library" / "Caches" / "pip", "default")
    return Cache("pip", _xdg_cache(env) / "pip",
                 "XDG_CACHE_HOME" if env.get("XDG_CACHE_HOME") else "default")


def torch_cache(env: Mapping[str, str] | None = None) -> Cache:
    env = _env(env)
    if env.get("TORCH_HOME"):
        return Cache("torch", Path(env["TORCH_HOME"]).expanduser(), "TORCH_HOME")
    return Cache("torch", _xdg_cache(env) / "torch",
                 "XDG_CACHE_HOME" if env.get("XDG_CACHE_HOME") else "default")


def _condarc_pkgs_dirs() -> list[str]:
    """`pkgs_dirs:` as a YAML block list in ~/.condarc (no YAML dependency for one key)."""
    rc = Path.home() / ".condarc"
    if not rc.is_file():
        return []
    dirs, inside = [], False
    for line in rc.read_text(errors="replace").splitlines():
        if line.startswith("pkgs_dirs:"):
            inside = True
        elif inside and line.strip().startswith("- "):
            dirs.append(line.strip()[2:].strip().strip("'\""))
        elif inside and line.strip():
            break
    return dirs


def _conda_info_pkgs_dirs() -> list[str]:
    exe = shutil.which("conda")
    if not exe:
        return []
    try:
        out = subprocess.run([exe, "info", "--json"], capture_output=True, text=True,
                             timeout=20, check=True).stdout
        return list(json.loads(out).get("pkgs_dirs", []))
    except (OSError, subprocess.SubprocessError, ValueError) as e:
        log.warning("could not ask conda for its pkgs_dirs: %s", e)
        return []


def conda_caches(env: Mapping[str, str] | None = None) -> list[Cache]:
    env = _env(env)
    if env.get("CONDA_PKGS_DIRS"):
        dirs, basis = env["CONDA_PKGS_DIRS"].split(","), "CONDA_PKGS_DIRS"
    elif dirs := _condarc_pkgs_dirs():
        basis = "~/.condarc"
    else:
        dirs, basis = _conda_info_pkgs_dirs(), "conda info"
    return [Cache("conda", Path(d.strip()).expanduser(), basis) for d in dirs if d.strip()]


def locate_caches(env: Mapping[str, str] | None = None) -> list[Cache]:
    """Every cache this package knows, whether or not its folder exists yet."""
    env = _env(env)
    return [
        hf_hub_cache(env),
        _hf_sub("hf-datasets", "HF_DATASETS_CACHE", "datasets", env),
        _hf_sub("hf-xet", "HF_XET_CACHE", "xet", env),
        pip_cache(env),
        torch_cache(env),
        *conda_caches(env),
    ]
