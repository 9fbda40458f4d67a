import json
import os

from click.testing import CliRunner

from disk_manager import DiskManager, volumes
from disk_manager.cli import cli
from disk_manager.relocate import BEGIN, END


def snapshot(paths, helpers):
    return {str(p): (os.path.islink(p), helpers.tree(p) if os.path.isdir(p) else None)
            for p in paths}


def test_relocate_twice_is_the_same_as_once(filled, helpers, tmp_path):
    dest, envfile = tmp_path / "workspace", tmp_path / "env.sh"
    dest.mkdir()
    envfile.write_text("export PATH=/usr/bin\n")
    old = [filled[v] for v in ("HF_HOME", "PIP_CACHE_DIR", "TORCH_HOME")]
    args = ["relocate", str(dest), "--link", "--write-env", str(envfile), "--json"]
    first = CliRunner().invoke(cli, args)
    assert first.exit_code == 0, first.output
    state = (snapshot([dest, *old], helpers), envfile.read_text(), dict(os.environ))
    second = CliRunner().invoke(cli, args)
    assert second.exit_code == 0, second.output
    assert (snapshot([dest, *old], helpers), envfile.read_text(), dict(os.environ)) == state
    assert {m["action"] for m in json.loads(second.output)["moves"]} <= {
        "already there", "nothing to move"}
    moved = json.loads(first.output)
    assert {m["name"]: m["action"] for m in moved["moves"]} == {
        "hf-home": "moved", "pip": "moved", "torch": "moved"}
    text = envfile.read_text()
    assert text.startswith("export PATH=/usr/bin\n") and text.count(BEGIN) == 1
    assert text.count(END) == 1 and f"export HF_HOME={dest}/huggingface" in text


def test_relocate_moves_data_links_and_sets_env(filled, tmp_path):
    dest = tmp_path / "ws"
    hub_file = "models--org--other/refs/main"
    report = DiskManager().setup_network_storage(dest, link=True)
    assert (dest / "huggingface" / "hub" / hub_file).read_text() == "b" * 40
    assert os.path.islink(filled["HF_HOME"]) and os.path.islink(filled["PIP_CACHE_DIR"])
    assert (filled["HF_HUB_CACHE"] / hub_file).exists()   # through the link
    assert os.environ["HF_HUB_CACHE"] == str(dest / "huggingface" / "hub")
    assert os.environ["TMPDIR"] == str(dest / "tmp") and (dest / "tmp").is_dir()
    assert os.environ["HF_DATASETS_CACHE"] == str(dest / "huggingface" / "datasets")
    assert f"export TORCH_HOME={dest}/torch" in report.exports()
    # The snapshots' relative links still resolve after the move.
    snap = dest / "huggingface/hub/models--org--tiny-llama/snapshots" / ("a" * 40)
    assert (snap / "config.json").read_bytes().startswith(b"{")


def test_relocate_without_link_prints_exports_on_stdout(filled, tmp_path):
    res = CliRunner().invoke(cli, ["relocate", str(tmp_path / "ws")])
    assert res.exit_code == 0, res.output
    assert "export PIP_CACHE_DIR=" in res.output
    assert not os.path.lexists(filled["PIP_CACHE_DIR"])


def test_relocate_missing_parent_is_exit_2(tmp_path):
    res = CliRunner().invoke(cli, ["relocate", str(tmp_path / "no" / "such" / "dir")])
    assert res.exit_code == 2 and res.output.startswith("error: relocate: no such folder")
    assert "Traceback" not in res.output


def test_check_exits_1_when_need_exceeds_free(monkeypatch, tmp_path, filled):
    # The free-space reading is patched (volumes.free_bytes), not a real small tmpfs.
    monkeypatch.setattr(volumes, "free_bytes", lambda path: 20 * 10**9)
    monkeypatch.setattr(volumes, "list_volumes", lambda: [])
    res = CliRunner().invoke(cli, ["check", "--need", "30GB", "--path",
                                   str(tmp_path / "not" / "yet" / "made")])
    assert res.exit_code == 1
    assert "Not enough space" in res.output and "13.0 GB missing" in res.output
    assert "disk-manager clean --hf" in res.output   # the HF cache there could be cleaned


def test_check_exits_0_when_it_fits(monkeypatch, tmp_path):
    monkeypatch.setattr(volumes, "free_bytes", lambda path: 40 * 10**9)
    res = CliRunner().invoke(cli, ["check", "--need", "30GB", "--path", str(tmp_path),
                                   "--margin", "20%"])
    assert res.exit_code == 0 and res.output.startswith("OK")
    assert DiskManager().check_disk_space(need="30GB")
    assert not DiskManager().check_disk_space(need="39GB")


def test_check_bad_size_is_one_line_exit_2():
    res = CliRunner().invoke(cli, ["check", "--need", "30 gigs"])
    assert res.exit_code == 2
    assert res.output.count("\n") == 1 and "--need" in res.output
    assert "Traceback" not in res.output


def test_check_really_reads_the_disk(tmp_path):
    assert DiskManager().check_disk_space(need="1KB", path=tmp_path)
    assert not DiskManager().check_disk_space(need="1000PB", path=tmp_path)
