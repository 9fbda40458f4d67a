"""The base model is checked before anything slow: a missing folder, a hub id that is not in
the local cache while offline or while the hub cannot be reached, fail at once, in one line."""

from __future__ import annotations

import time

import pytest

from persona.errors import InputError
from persona.finetune.hub import check_base_model


@pytest.fixture
def hub_cache(tmp_path, monkeypatch):
    """An HF hub cache holding one model (config.json only), as huggingface_hub lays it out."""
    from huggingface_hub import constants

    cache = tmp_path / "hub"
    snap = cache / "models--org--cached" / "snapshots" / ("a" * 40)
    snap.mkdir(parents=True)
    (snap / "config.json").write_text("{}")
    (cache / "models--org--cached" / "refs").mkdir()
    (cache / "models--org--cached" / "refs" / "main").write_text("a" * 40)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    return cache


def test_local_paths(tmp_path):
    assert check_base_model(str(tmp_path)) is None
    (tmp_path / "f").write_text("x")
    with pytest.raises(InputError, match="not a folder"):
        check_base_model(str(tmp_path / "f"))
    with pytest.raises(InputError, match="no such folder, and not a hub id"):
        check_base_model("./nosuch-model")


def test_uncached_id_offline_fails_at_once(hub_cache, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(InputError) as e:
        check_base_model("fake-org/fake-model")
    assert "not in the local Hugging Face cache" in str(e.value)
    assert "HF_HUB_OFFLINE is set" in str(e.value) and "hf download" in str(e.value)
    assert check_base_model("org/cached") is None


def test_uncached_id_without_a_hub_fails_fast_with_what_to_do(hub_cache):
    # This machine reaches no hub: one request, then one line (no five HEAD retries).
    start = time.monotonic()
    with pytest.raises(InputError) as e:
        check_base_model("fake-org/fake-model", timeout=3)
    assert time.monotonic() - start < 10
    msg = str(e.value)
    assert msg.startswith("base_model: cannot reach the Hugging Face hub (")
    for what in ("hf download fake-org/fake-model", "HF_HUB_OFFLINE=1", "local folder"):
        assert what in msg


def test_cached_id_without_a_hub_loads_offline(hub_cache):
    from huggingface_hub import constants

    note = check_base_model("org/cached", timeout=3)
    assert note.startswith("hub unreachable (") and "using the cached copy" in note
    assert constants.HF_HUB_OFFLINE is True  # so loading does not retry the network per file


def test_disk_manager_errors_become_one_preflight_line(monkeypatch, tmp_path):
    import importlib

    from disk_manager.errors import DiskManagerError
    from persona.finetune import PreflightError
    from persona.finetune.config import FinetuneConfig
    from persona.finetune.train import run_preflight

    def cannot(*a, **k):
        raise DiskManagerError("cannot estimate nosuch/model: not a local folder")

    # disk_manager re-exports the function under the module's name: patch the module itself.
    monkeypatch.setattr(importlib.import_module("disk_manager.preflight"), "preflight", cannot)
    cfg = FinetuneConfig(data="d", base_model="nosuch/model", out=str(tmp_path))
    with pytest.raises(PreflightError, match="disk preflight: cannot estimate nosuch/model"):
        run_preflight("nosuch/model", tmp_path, "none", cfg)
