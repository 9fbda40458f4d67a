from pathlib import Path

import pytest

from disk_manager import caches
from disk_manager.errors import DiskManagerError
from disk_manager.units import format_size, parse_duration, parse_margin, parse_size


@pytest.mark.parametrize("text,expected", [
    ("30GB", 30 * 10**9), ("512MiB", 512 * 2**20), ("1.5T", int(1.5 * 2**40)),
    ("100", 100), ("2 kb", 2000), ("1gib", 2**30), (42, 42)])
def test_parse_size(text, expected):
    assert parse_size(text) == expected


@pytest.mark.parametrize("bad", ["30XB", "GB", "-1GB", "", "1.2.3G"])
def test_parse_size_rejects_with_examples(bad):
    with pytest.raises(DiskManagerError, match="examples"):
        parse_size(bad)


def test_durations_and_margins():
    assert parse_duration("30d") == 30 * 86400
    assert parse_duration("12h") == 12 * 3600
    assert parse_margin("10%") == pytest.approx(0.10)
    assert parse_margin("0.25") == pytest.approx(0.25)
    with pytest.raises(DiskManagerError):
        parse_duration("soon")
    assert format_size(14_483_000_000) == "14.5 GB"


def test_caches_follow_env_precedence(tmp_path):
    env = {"HF_HUB_CACHE": str(tmp_path / "a"), "HF_HOME": str(tmp_path / "b"),
           "XDG_CACHE_HOME": str(tmp_path / "x")}
    assert caches.hf_hub_cache(env) == caches.Cache("hf", tmp_path / "a", "HF_HUB_CACHE")
    del env["HF_HUB_CACHE"]
    assert caches.hf_hub_cache(env).path == tmp_path / "b" / "hub"
    del env["HF_HOME"]
    assert caches.hf_hub_cache(env).path == tmp_path / "x" / "huggingface" / "hub"
    assert caches.pip_cache(env).path == tmp_path / "x" / "pip"
    assert caches.torch_cache(env).path == tmp_path / "x" / "torch"
    assert caches.pip_cache({"PIP_CACHE_DIR": "/p", **env}).path == Path("/p")
    assert caches.torch_cache({"TORCH_HOME": "/t"}).path == Path("/t")
    conda = caches.conda_caches({"CONDA_PKGS_DIRS": "/c1,/c2"})
    assert [c.path for c in conda] == [Path("/c1"), Path("/c2")]


def test_default_locations_are_under_home(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    assert caches.hf_hub_cache({}).path == tmp_path / ".cache" / "huggingface" / "hub"


def test_locate_uses_the_test_env(cache_env):
    found = {c.name: c.path for c in caches.locate_caches()}
    assert found["hf"] == cache_env["HF_HUB_CACHE"]
    assert found["pip"] == cache_env["PIP_CACHE_DIR"]
    assert found["conda"] == cache_env["CONDA_PKGS_DIRS"]
