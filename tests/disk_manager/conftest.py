"""Fixtures for disk_manager: every cache lives in tmp_path, never in the user's real caches.

The caches are built in the real layouts: an HF hub cache (`models--org--name/{blobs/<sha>,
snapshots/<rev>/file -> ../../blobs/<sha>, refs/main}`, refs without a trailing newline), a
pip cache (`http-v2/...`, `wheels/...`), a torch hub cache (`hub/checkpoints/*.pth`) and a
conda pkgs folder.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
from pathlib import Path
from types import SimpleNamespace

import pytest

ENV_VARS = ("HF_HOME", "HF_HUB_CACHE", "PIP_CACHE_DIR", "TORCH_HOME", "XDG_CACHE_HOME",
            "CONDA_PKGS_DIRS")
CLEARED = ("HF_DATASETS_CACHE", "HF_XET_CACHE", "TMPDIR", "HF_HUB_OFFLINE")


TINY_CONFIG = {"architectures": ["LlamaForCausalLM"], "hidden_size": 16,
               "intermediate_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4,
               "num_key_value_heads": 2, "vocab_size": 50, "tie_word_embeddings": False,
               "torch_dtype": "bfloat16"}


def safetensors_bytes(shapes: dict[str, list[int]]) -> bytes:
    """A real safetensors file of zeros (BF16) with these tensor shapes."""
    header, offset = {}, 0
    for name, shape in shapes.items():
        n = 2
        for d in shape:
            n *= d
        header[name] = {"dtype": "BF16", "shape": shape, "data_offsets": [offset, offset + n]}
        offset += n
    raw = json.dumps(header).encode()
    return struct.pack("<Q", len(raw)) + raw + b"\0" * offset


def tiny_llama_shapes(c: dict = TINY_CONFIG) -> dict[str, list[int]]:
    h, i, v = c["hidden_size"], c["intermediate_size"], c["vocab_size"]
    hd = h // c["num_attention_heads"]
    hkv = c["num_key_value_heads"] * hd
    shapes = {"model.embed_tokens.weight": [v, h], "model.norm.weight": [h],
              "lm_head.weight": [v, h]}
    for n in range(c["num_hidden_layers"]):
        p = f"model.layers.{n}."
        shapes |= {p + "self_attn.q_proj.weight": [h, h], p + "self_attn.k_proj.weight": [hkv, h],
                   p + "self_attn.v_proj.weight": [hkv, h], p + "self_attn.o_proj.weight": [h, h],
                   p + "mlp.gate_proj.weight": [i, h], p + "mlp.up_proj.weight": [i, h],
                   p + "mlp.down_proj.weight": [h, i], p + "input_layernorm.weight": [h],
                   p + "post_attention_layernorm.weight": [h]}
    return shapes


def add_hf_repo(hub: Path, repo_id: str, files: dict[str, bytes], *,
                revision: str = "a" * 40, ref: str | None = "main") -> Path:
    """One revision of a model repo in the hub cache's real layout; returns the repo folder."""
    repo = hub / ("models--" + repo_id.replace("/", "--"))
    (repo / "blobs").mkdir(parents=True, exist_ok=True)
    snap = repo / "snapshots" / revision
    for name, content in files.items():
        sha = hashlib.sha256(content).hexdigest()
        blob = repo / "blobs" / sha
        blob.write_bytes(content)
        link = snap / name
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath(blob, link.parent))
    snap.mkdir(parents=True, exist_ok=True)
    if ref:
        (repo / "refs").mkdir(exist_ok=True)
        (repo / "refs" / ref).write_text(revision)   # no trailing newline, as the hub writes it
    return repo


def tiny_model_files(config: dict = TINY_CONFIG) -> dict[str, bytes]:
    return {"config.json": json.dumps(config).encode(),
            "model.safetensors": safetensors_bytes(tiny_llama_shapes(config)),
            "tokenizer.json": b'{"version": "1.0"}'}


def tree(root: Path) -> dict[str, tuple]:
    """Every entry below root: (kind, size or link target) — to compare states exactly."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            rel = str(p.relative_to(root))
            if p.is_symlink():
                out[rel] = ("link", os.readlink(p))
            elif p.is_dir():
                out[rel] = ("dir",)
            else:
                out[rel] = ("file", p.stat().st_size)
    return out


@pytest.fixture(autouse=True)
def cache_env(tmp_path, monkeypatch) -> dict[str, Path]:
    """Point every cache variable at tmp dirs; relocate's env changes are undone afterwards."""
    home = tmp_path / "home"
    paths = {"HF_HOME": home / "hf", "HF_HUB_CACHE": home / "hf" / "hub",
             "PIP_CACHE_DIR": home / "pip", "TORCH_HOME": home / "torch",
             "XDG_CACHE_HOME": home / "xdg", "CONDA_PKGS_DIRS": home / "conda" / "pkgs"}
    for var in CLEARED:
        monkeypatch.delenv(var, raising=False)
    for var, path in paths.items():
        monkeypatch.setenv(var, str(path))
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")   # the hub is unreachable here; never try it
    monkeypatch.setenv("TMPDIR", os.environ.get("TMPDIR", "/tmp"))
    return paths


@pytest.fixture
def filled(cache_env) -> dict[str, Path]:
    """All caches with content: two HF models, pip http-v2 + wheels, torch checkpoints, conda."""
    hub = cache_env["HF_HUB_CACHE"]
    add_hf_repo(hub, "org/tiny-llama", tiny_model_files())
    add_hf_repo(hub, "org/other", {"config.json": b'{"x": 1}', "weights.bin": b"w" * 5000},
                revision="b" * 40)
    pip = cache_env["PIP_CACHE_DIR"]
    for n, sub in enumerate(("http-v2/a/b/c/d/e", "http-v2/f/0/1/2/3")):
        (pip / sub).mkdir(parents=True)
        (pip / sub / f"{n}abcdef.body").write_bytes(b"p" * (1000 + n))
    (pip / "wheels/3f/aa").mkdir(parents=True)
    (pip / "wheels/3f/aa/pkg-1.0-py3-none-any.whl").write_bytes(b"z" * 3000)
    torch = cache_env["TORCH_HOME"]
    (torch / "hub" / "checkpoints").mkdir(parents=True)
    (torch / "hub" / "checkpoints" / "resnet18-f37072fd.pth").write_bytes(b"t" * 7000)
    conda = cache_env["CONDA_PKGS_DIRS"]
    (conda / "numpy-2.0-py311_0" / "lib").mkdir(parents=True)
    (conda / "numpy-2.0-py311_0" / "lib" / "x.so").write_bytes(b"c" * 900)
    (conda / "numpy-2.0-py311_0.conda").write_bytes(b"c" * 800)
    return cache_env


@pytest.fixture
def helpers() -> SimpleNamespace:
    """The builders above, for tests (conftest is not importable under --import-mode=importlib)."""
    return SimpleNamespace(add_hf_repo=add_hf_repo, tiny_model_files=tiny_model_files,
                           safetensors_bytes=safetensors_bytes, tree=tree,
                           tiny_llama_shapes=tiny_llama_shapes, TINY_CONFIG=TINY_CONFIG)
