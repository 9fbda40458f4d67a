import json
import os
import subprocess
import time

from click.testing import CliRunner

from disk_manager.caches import locate_caches
from disk_manager.clean import Selector, execute, plan, safe_target
from disk_manager.cli import cli


def du_sb(path) -> int:
    out = subprocess.run(["du", "-sb", str(path)], capture_output=True, text=True, check=True)
    return int(out.stdout.split()[0])


def roots(env):
    return [env[v] for v in ("HF_HUB_CACHE", "PIP_CACHE_DIR", "TORCH_HOME", "CONDA_PKGS_DIRS")]


def run_json(*args):
    res = CliRunner().invoke(cli, [*args, "--json"])
    assert res.exit_code == 0, res.output
    return json.loads(res.output)


def test_dry_run_deletes_nothing(filled, helpers):
    before = {r: helpers.tree(r) for r in roots(filled)}
    data = run_json("clean")
    assert data["dry_run"] and data["bytes_freed"] == 0
    assert data["planned_bytes"] > 20_000 and len(data["items"]) >= 6
    assert {r: helpers.tree(r) for r in roots(filled)} == before


def test_yes_frees_exactly_what_it_reports(filled):
    before = sum(du_sb(r) for r in roots(filled))
    data = run_json("clean", "--yes")
    after = sum(du_sb(r) for r in roots(filled))
    assert data["bytes_freed"] == before - after > 0
    assert data["bytes_freed"] >= data["planned_bytes"]   # + the folders it emptied


def test_roots_survive_and_only_conda_tarballs_go(filled):
    run_json("clean", "--yes")
    for r in roots(filled):
        assert r.is_dir(), r
    conda = filled["CONDA_PKGS_DIRS"]
    assert not (conda / "numpy-2.0-py311_0.conda").exists()
    assert (conda / "numpy-2.0-py311_0" / "lib" / "x.so").exists()   # envs may link here
    assert list(filled["HF_HUB_CACHE"].iterdir()) == []
    assert list(filled["PIP_CACHE_DIR"].iterdir()) == []


def test_symlinks_out_of_a_cache_are_never_followed(filled, helpers, tmp_path):
    outside = tmp_path / "precious"
    outside.mkdir()
    (outside / "data.bin").write_bytes(b"keep me" * 100)
    (outside / "single.bin").write_bytes(b"me too")
    pip = filled["PIP_CACHE_DIR"]
    (pip / "dirlink").symlink_to(outside, target_is_directory=True)
    (pip / "http-v2" / "filelink").symlink_to(outside / "single.bin")
    # An HF snapshot entry pointing out of the cache, in a revision deleted on its own.
    repo = helpers.add_hf_repo(filled["HF_HUB_CACHE"], "org/tiny-llama",
                               {"config.json": b"{}"}, revision="c" * 40, ref="old")
    (repo / "snapshots" / ("c" * 40) / "escape.bin").symlink_to(outside / "data.bin")
    data = run_json("clean", "--yes", "--hf", "--pip")
    assert data["bytes_freed"] > 0
    assert sorted(p.name for p in outside.iterdir()) == ["data.bin", "single.bin"]
    assert (outside / "data.bin").read_bytes() == b"keep me" * 100
    assert not os.path.lexists(pip / "dirlink")
    assert not os.path.lexists(pip / "http-v2" / "filelink")


def test_partial_revision_delete_keeps_outside_blob(filled, helpers, tmp_path):
    outside = tmp_path / "outside.bin"
    outside.write_bytes(b"o" * 1000)
    hub = filled["HF_HUB_CACHE"]
    repo = helpers.add_hf_repo(hub, "org/tiny-llama", {"config.json": b"{}"},
                               revision="c" * 40, ref="old")
    (repo / "snapshots" / ("c" * 40) / "escape.bin").symlink_to(outside)
    # Delete only revision c (revision a stays): huggingface_hub then deletes c's blobs one
    # by one, and the escaping "blob" is outside the root, so it must be dropped.
    caches = locate_caches()
    go, _kept, scans = plan(caches, Selector({"hf"}, models=["org/tiny-llama"]), opened=set())
    assert {c.revision for c in go} == {"a" * 40, "c" * 40}
    execute([c for c in go if c.revision == "c" * 40], scans)
    assert outside.read_bytes() == b"o" * 1000
    assert not (repo / "snapshots" / ("c" * 40)).exists()
    assert (repo / "snapshots" / ("a" * 40) / "config.json").exists()


def test_keep_keeps(filled):
    data = run_json("clean", "--hf", "--keep", "org/tiny-llama", "--yes")
    hub = filled["HF_HUB_CACHE"]
    assert (hub / "models--org--tiny-llama" / "snapshots" / ("a" * 40) / "config.json").exists()
    assert not (hub / "models--org--other").exists()
    assert [s["label"].split()[0] for s in data["skipped"]] == ["org/tiny-llama"]
    assert "--keep" in data["skipped"][0]["reason"]


def test_model_selects_only_that_repo(filled):
    run_json("clean", "--model", "org/other", "--yes")
    hub = filled["HF_HUB_CACHE"]
    assert not (hub / "models--org--other").exists()
    assert (hub / "models--org--tiny-llama").exists()
    assert (filled["PIP_CACHE_DIR"] / "wheels").exists()   # --model means HF only


def test_older_than_and_larger_than(filled):
    old = time.time() - 60 * 86400
    wheel = filled["PIP_CACHE_DIR"] / "wheels/3f/aa/pkg-1.0-py3-none-any.whl"
    os.utime(wheel, (old, old))
    data = run_json("clean", "--pip", "--older-than", "30d")
    assert [i["label"] for i in data["items"]] == ["wheels/3f/aa/pkg-1.0-py3-none-any.whl"]
    data = run_json("clean", "--torch", "--pip", "--larger-than", "2KB")
    assert sorted(i["label"] for i in data["items"]) == [
        "hub/checkpoints/resnet18-f37072fd.pth", "wheels/3f/aa/pkg-1.0-py3-none-any.whl"]


def test_open_files_are_skipped(filled):
    body = next((filled["PIP_CACHE_DIR"] / "http-v2").rglob("*.body"))
    blob = next((filled["HF_HUB_CACHE"] / "models--org--other" / "blobs").iterdir())
    with open(body, "rb"), open(blob, "rb"):
        data = run_json("clean", "--pip", "--hf", "--yes")
    assert body.exists() and blob.exists()
    reasons = {s["label"]: s["reason"] for s in data["skipped"]}
    assert any("open by a running process" in r for r in reasons.values())
    assert len(data["skipped"]) == 2
    assert not (filled["HF_HUB_CACHE"] / "models--org--tiny-llama").exists()


def test_safe_target_refuses_paths_through_a_symlinked_parent(tmp_path):
    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (root / "sub").symlink_to(outside, target_is_directory=True)
    assert not safe_target(root / "sub" / "file", root)
    assert safe_target(root / "sub", root)          # the link itself may go
    assert not safe_target(root, root)               # never the root
    assert not safe_target(tmp_path / "elsewhere", root)


def test_dry_run_table_and_message(filled):
    res = CliRunner().invoke(cli, ["clean", "--pip"])
    assert res.exit_code == 0
    assert "Would delete" in res.output and "--yes" in res.output


def test_bad_size_is_one_line_exit_2(filled):
    res = CliRunner().invoke(cli, ["clean", "--larger-than", "lots"])
    assert res.exit_code == 2
    assert res.output.strip().count("\n") == 0 and "--larger-than" in res.output
    assert "Traceback" not in res.output
