import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from disk_manager import DiskManagerError, Preflight, preflight, volumes
from disk_manager.cli import cli
from disk_manager.estimate import estimate
from disk_manager.weights import (
    lora_per_rank_from_config,
    lora_per_rank_from_shapes,
    params_from_config,
    params_from_shapes,
)

GB = 10**9


@pytest.fixture
def local_model(tmp_path, helpers) -> Path:
    folder = tmp_path / "tiny-model"
    folder.mkdir()
    for name, content in helpers.tiny_model_files().items():
        (folder / name).write_bytes(content)
    return folder


def test_config_formula_matches_real_tensor_shapes(helpers):
    shapes = helpers.tiny_llama_shapes()
    assert params_from_config(helpers.TINY_CONFIG) == params_from_shapes(shapes)
    assert lora_per_rank_from_config(helpers.TINY_CONFIG) == lora_per_rank_from_shapes(shapes)


def test_known_models_have_their_published_sizes():
    est = estimate("mistralai/Mistral-7B-Instruct-v0.3", quant="4bit", merge=True)
    assert est.facts.params == pytest.approx(7.25e9, rel=0.01)
    download = est.figures[0]
    assert download.name == "download" and "built-in table" in download.basis
    assert download.bytes == pytest.approx(14.5 * GB, rel=0.01)   # bf16, not 4-bit
    merged = next(f for f in est.figures if f.name == "merged export")
    assert merged.bytes == pytest.approx(14.5 * GB, rel=0.01)
    load = next(f for f in est.figures if f.lands == "memory")
    assert load.bytes == pytest.approx(7.25e9 * 0.5 * 1.1, rel=0.01)
    llama = estimate("meta-llama/Llama-3.1-8B", quant="8bit")
    assert llama.facts.params == pytest.approx(8.03e9, rel=0.005)


def test_local_folder_needs_no_download(local_model, helpers):
    est = estimate(str(local_model), checkpoints=3, lora_rank=8)
    assert est.facts.download == 0 and "local folder" in est.facts.download_basis
    assert est.facts.params == params_from_shapes(helpers.tiny_llama_shapes())
    ckpt = next(f for f in est.figures if f.name == "checkpoints")
    per = est.facts.lora_per_rank * 8 * 12 + 20 * 10**6
    assert ckpt.bytes == 4 * per and "3 kept" in ckpt.basis
    assert all(f.basis for f in est.figures)


def test_complete_hf_cache_needs_no_download(cache_env, helpers):
    helpers.add_hf_repo(cache_env["HF_HUB_CACHE"], "org/tiny-llama", helpers.tiny_model_files())
    est = estimate("org/tiny-llama")
    assert est.facts.download == 0 and "HF cache" in est.facts.download_basis


def test_partial_cache_falls_back_to_its_config(cache_env, helpers):
    files = {"config.json": json.dumps(helpers.TINY_CONFIG).encode()}
    helpers.add_hf_repo(cache_env["HF_HUB_CACHE"], "org/partial", files)
    est = estimate("org/partial")
    assert "config.json in the HF cache" in est.facts.params_basis
    assert est.facts.params == params_from_config(helpers.TINY_CONFIG)
    assert est.facts.download == max(est.facts.params * 2 - len(files["config.json"]), 0)


def test_unknown_model_offline_is_a_clear_error():
    with pytest.raises(DiskManagerError, match="built-in table"):
        estimate("someone/unknown-model")
    res = CliRunner().invoke(cli, ["estimate", "./no/such/folder"])
    assert res.exit_code == 2 and res.output.startswith("error: model: no such folder")


def test_estimate_cli_json(local_model):
    res = CliRunner().invoke(cli, ["estimate", str(local_model), "--merge", "--json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.output)
    assert [f["name"] for f in data["figures"]] == [
        "download", "4bit load (memory, not disk)", "LoRA adapter", "checkpoints",
        "merged export"]


def test_preflight_refuses_when_it_cannot_fit(monkeypatch, tmp_path):
    monkeypatch.setattr(volumes, "free_bytes", lambda path: 10 * GB)
    monkeypatch.setattr(volumes, "list_volumes", lambda: [])
    pf = preflight("mistralai/Mistral-7B-Instruct-v0.3", out_dir=tmp_path / "run",
                   checkpoints=2, merge=True)
    assert isinstance(pf, Preflight) and not pf.fits
    (mount,) = pf.needs
    assert pf.needs[mount] == sum(i.bytes for i in pf.items) and pf.free[mount] == 10 * GB
    assert len(pf.reasons) == 1 and "missing" in pf.reasons[0] and "To fix" in pf.reasons[0]
    assert {i.name for i in pf.items} == {"download", "LoRA adapter", "checkpoints",
                                          "merged export"}
    assert all(i.path == mount and i.basis for i in pf.items)
    json.dumps(pf.to_dict())
    assert "does NOT fit" in pf.summary()


def test_preflight_accepts_when_it_fits(monkeypatch, tmp_path):
    monkeypatch.setattr(volumes, "free_bytes", lambda path: 100 * GB)
    pf = preflight("mistralai/Mistral-7B-Instruct-v0.3", out_dir=tmp_path / "run")
    assert pf.fits and pf.reasons == []
    assert "fits" in pf.summary()


def test_preflight_splits_needs_per_volume(monkeypatch, tmp_path, local_model):
    # Two fake volumes: the cache on a small one, the output on a big one.
    cache, out = tmp_path / "small", tmp_path / "big"
    monkeypatch.setattr(volumes, "mount_point", lambda p: "/small" if "small" in str(p) else "/big")
    monkeypatch.setattr(volumes, "free_bytes", lambda p: 1 * GB if "small" in str(p) else 50 * GB)
    monkeypatch.setattr(volumes, "list_volumes", lambda: [])
    pf = preflight("meta-llama/Llama-3.2-1B", out_dir=out, cache_dir=cache, merge=True)
    assert not pf.fits and set(pf.needs) == {"/small", "/big"}
    assert pf.reasons[0].startswith("/small has 1.0 GB free")
    # A local model needs no download: nothing lands on the small volume.
    pf = preflight(str(local_model), out_dir=out, cache_dir=cache)
    assert pf.fits and pf.needs.get("/small", 0) == 0


def test_preflight_cli_exit_codes(monkeypatch, tmp_path):
    monkeypatch.setattr(volumes, "free_bytes", lambda path: 1 * GB)
    monkeypatch.setattr(volumes, "list_volumes", lambda: [])
    args = ["preflight", "meta-llama/Llama-3.2-1B", "--out-dir", str(tmp_path)]
    assert CliRunner().invoke(cli, args).exit_code == 1
    monkeypatch.setattr(volumes, "free_bytes", lambda path: 100 * GB)
    assert CliRunner().invoke(cli, args).exit_code == 0


def test_real_subprocess_help(tmp_path):
    exe = Path(sys.executable).with_name("disk-manager")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2]
                                           / "disk_manager" / "src")}
    if exe.exists():
        res = subprocess.run([str(exe), "--help"], capture_output=True, text=True, cwd=tmp_path,
                             timeout=60)
        assert res.returncode == 0 and "relocate" in res.stdout
    res = subprocess.run([sys.executable, "-m", "disk_manager", "--help"], capture_output=True,
                         text=True, cwd=tmp_path, env=env, timeout=60)
    assert res.returncode == 0 and "estimate" in res.stdout
    res = subprocess.run([sys.executable, "-m", "disk_manager", "check", "--need", "x"],
                         capture_output=True, text=True, cwd=tmp_path, env=env, timeout=60)
    assert res.returncode == 2 and res.stderr.startswith("error: --need")
    assert "Traceback" not in res.stderr and res.stderr.count("\n") == 1


def test_help_does_not_import_heavy_libraries(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2]
                                           / "disk_manager" / "src")}
    code = "import sys, disk_manager.cli; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=tmp_path, env=env, timeout=60)
    assert out.stdout.strip() == "False"


def test_full_params_are_counted_in_adapter_and_checkpoints(tmp_path):
    model = tmp_path / "m"
    model.mkdir()
    (model / "config.json").write_text(json.dumps({
        "architectures": ["LlamaForCausalLM"], "hidden_size": 64, "intermediate_size": 128,
        "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 4,
        "vocab_size": 1000, "torch_dtype": "float32"}), encoding="utf-8")
    base = {f.name: f.bytes for f in estimate(str(model), quant="none", checkpoints=2).figures}
    more = {f.name: f.bytes for f in estimate(str(model), quant="none", checkpoints=2,
                                              full_params=128_000).figures}
    assert more["LoRA adapter"] - base["LoRA adapter"] == 128_000 * 4
    assert more["checkpoints"] - base["checkpoints"] == 3 * 128_000 * 12


def test_memory_without_quantization_names_no_quantization(local_model):
    est = estimate(str(local_model), quant="none")
    mem = next(f for f in est.figures if f.lands == "memory")
    assert mem.name == "weights (memory, not disk)"
    assert mem.bytes == est.facts.params * 2
    assert "quantization constants" not in mem.basis and "0.00 B" not in mem.basis
    assert mem.basis.startswith(f"{est.facts.params / 1e3:.1f} K params")  # a tiny model's size
    q = next(f for f in estimate(str(local_model), quant="4bit").figures if f.lands == "memory")
    assert q.name == "4bit load (memory, not disk)" and "quantization constants" in q.basis


def test_format_params_reads_at_any_scale():
    from disk_manager.estimate import format_params

    assert [format_params(n) for n in (7_248_023_552, 41_943_040, 1_234_567, 350_000, 42)] == [
        "7.25 B", "41.9 M", "1.2 M", "350.0 K", "42"]


def test_hub_unavailable_is_said_once(monkeypatch):
    """Offline sources keep the hub failure in facts.notes; the table says it in one caption
    and the preflight summary in one line, not in every row's basis."""
    from disk_manager import estimate as est_mod
    from disk_manager.render import estimate_table

    def no_hub(*a, **k):
        raise ConnectionError("no route")

    monkeypatch.setattr(est_mod, "_from_hub", no_hub)
    est = estimate("mistralai/Mistral-7B-Instruct-v0.3", online=True)
    assert est.facts.notes == ["hub unavailable (ConnectionError)"]
    assert not any("hub unavailable" in f.basis for f in est.figures)
    assert estimate_table(est).caption == "note: hub unavailable (ConnectionError)"
    monkeypatch.setattr(volumes, "free_bytes", lambda path: 10**15)
    pf = preflight("mistralai/Mistral-7B-Instruct-v0.3", out_dir=".", online=True)
    assert pf.summary().count("hub unavailable") == 1
