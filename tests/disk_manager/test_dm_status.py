import json
import subprocess

from click.testing import CliRunner

from disk_manager.cli import cli
from disk_manager.sizes import dir_size


def du_sb(path) -> int:
    out = subprocess.run(["du", "-sb", str(path)], capture_output=True, text=True, check=True)
    return int(out.stdout.split()[0])


def test_status_sizes_match_du(filled):
    res = CliRunner().invoke(cli, ["status", "--json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.output)
    by_name = {c["name"]: c for c in data["caches"]}
    for name, var in (("hf", "HF_HUB_CACHE"), ("pip", "PIP_CACHE_DIR"), ("torch", "TORCH_HOME"),
                      ("conda", "CONDA_PKGS_DIRS")):
        assert by_name[name]["exists"]
        assert by_name[name]["bytes"] == du_sb(filled[var]), name
    assert not by_name["hf-datasets"]["exists"]


def test_dir_size_counts_symlinks_as_links_like_du(tmp_path):
    (tmp_path / "d").mkdir()
    big = tmp_path / "big"
    big.write_bytes(b"x" * 100_000)
    (tmp_path / "d" / "link").symlink_to(big)
    (tmp_path / "d" / "hard").hardlink_to(tmp_path / "big")
    (tmp_path / "d" / "hard2").hardlink_to(tmp_path / "big")
    assert dir_size(tmp_path / "d") == du_sb(tmp_path / "d")


def test_status_lists_models_with_revisions(filled):
    data = json.loads(CliRunner().invoke(cli, ["status", "--json"]).output)
    models = {m["repo_id"]: m for m in data["models"]}
    assert set(models) == {"org/tiny-llama", "org/other"}
    assert models["org/tiny-llama"]["revisions"] == ["aaaaaaaa (main)"]
    assert models["org/other"]["bytes"] == 5000 + len(b'{"x": 1}')
    assert models["org/tiny-llama"]["last_accessed"] > 0
    assert data["volumes"], "psutil sees at least one volume"


def test_status_table_renders(filled):
    res = CliRunner().invoke(cli, ["status"])
    assert res.exit_code == 0
    assert "org/tiny-llama" in res.output and "Volumes" in res.output
