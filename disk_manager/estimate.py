"""How much disk a fine-tuning run needs, and what each figure is based on.

Sources for the model, best first: a local folder's files; the HF cache; the Hub's file list
(online); a config.json's parameter count and dtype; a small built-in table of hub ids.
Quantization (4-/8-bit) happens in memory at load time: the download is still the full
bf16/fp16 safetensors, so the quantized size is reported as memory, never as disk.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

from disk_manager import hf, weights
from disk_manager.caches import hf_hub_cache
from disk_manager.errors import DiskManagerError
from disk_manager.known import known_config
from disk_manager.units import format_size

log = logging.getLogger(__name__)

QUANT_BYTES = {"4bit": 0.5, "8bit": 1.0, "none": 2.0}
# Tokenizer, configs, trainer state, rng and scheduler files saved next to adapter weights
# (Llama-3's tokenizer.json alone is 9 MB).
SIDE_FILES = 20 * 10**6
ADAPTER_BYTES = 4      # PEFT keeps LoRA weights in fp32 under QLoRA and saves them so
OPTIMIZER_BYTES = 8    # AdamW: two fp32 moments per trainable parameter
LORA_FRACTION = 6e-4   # LoRA params per unit of rank / all params, when no shapes are known
_HUB_ID = re.compile(r"^[\w.-]+/[\w.-]+$|^[\w.-]+$")
_WEIGHT_EXT = (".safetensors", ".bin", ".pth", ".pt", ".gguf", ".h5", ".msgpack", ".onnx",
               ".ckpt", ".ot", ".tflite", ".mlmodel")


@dataclass
class ModelFacts:
    """What we know about a model and where each piece of knowledge came from."""

    model: str
    params: int
    params_basis: str
    lora_per_rank: int
    lora_basis: str
    download: int
    download_basis: str
    local: bool = False                 # fully on disk already: nothing to download
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Figure:
    name: str
    bytes: int
    basis: str
    lands: str   # "cache" (the download), "out" (adapter, checkpoints, export), "memory"


@dataclass
class Estimate:
    facts: ModelFacts
    quant: str
    checkpoints: int
    merge: bool
    lora_rank: int
    figures: list[Figure]

    def disk_bytes(self) -> int:
        return sum(f.bytes for f in self.figures if f.lands != "memory")

    def to_dict(self) -> dict:
        return {"model": self.facts.model, "quant": self.quant, "checkpoints": self.checkpoints,
                "merge": self.merge, "lora_rank": self.lora_rank,
                "facts": asdict(self.facts), "figures": [asdict(f) for f in self.figures],
                "disk_bytes": self.disk_bytes()}


def estimate(model: str, *, quant: str = "4bit", checkpoints: int = 2, merge: bool = False,
             lora_rank: int = 16, cache_dir: str | os.PathLike | None = None,
             online: bool | None = None, hub_timeout: float = 5.0,
             full_params: int = 0) -> Estimate:
    """`full_params`: parameters trained in full next to LoRA (e.g. copies of the embeddings
    and the output head); they are saved with the adapter and carry optimizer state."""
    if quant not in QUANT_BYTES:
        raise DiskManagerError(f"quant: must be one of {', '.join(QUANT_BYTES)}, got {quant!r}")
    if checkpoints < 0 or lora_rank < 1 or full_params < 0:
        raise DiskManagerError("checkpoints and full_params must be >= 0 and lora_rank >= 1")
    facts = describe_model(model, cache_dir=cache_dir, online=online, hub_timeout=hub_timeout)
    return Estimate(facts, quant, checkpoints, merge, lora_rank,
                    figures(facts, quant=quant, checkpoints=checkpoints, merge=merge,
                            lora_rank=lora_rank, full_params=full_params))


def figures(facts: ModelFacts, *, quant: str, checkpoints: int, merge: bool,
            lora_rank: int, full_params: int = 0) -> list[Figure]:
    p, lora = facts.params, facts.lora_per_rank * lora_rank + full_params
    full = f" + {full_params / 1e6:.1f} M trained in full" if full_params else ""
    billions = f"{format_params(p)} params ({facts.params_basis})"
    out = [
        Figure("download", facts.download, facts.download_basis, "cache"),
        memory_figure(p, billions, quant),
        Figure("LoRA adapter", lora * ADAPTER_BYTES + SIDE_FILES,
               f"rank {lora_rank}: {lora / 1e6:.1f} M params ({facts.lora_basis}{full}) × 4 bytes "
               f"(fp32) + {format_size(SIDE_FILES)} tokenizer/config files", "out"),
    ]
    if checkpoints:
        # The Trainer writes checkpoint N+1 before it deletes the oldest: N+1 exist at the peak.
        per = lora * (ADAPTER_BYTES + OPTIMIZER_BYTES) + SIDE_FILES
        out.append(Figure("checkpoints", per * (checkpoints + 1),
                          f"({checkpoints} kept + 1 written before the oldest goes) × "
                          f"{format_size(per)}: adapter (4 bytes) + AdamW state (8 bytes) per "
                          f"LoRA param + {format_size(SIDE_FILES)} trainer files", "out"))
    if merge:
        out.append(Figure("merged export", p * 2 + SIDE_FILES,
                          f"{billions} × 2 bytes (bf16 safetensors) + tokenizer/config", "out"))
    return out


def memory_figure(params: int, described: str, quant: str) -> Figure:
    """The loaded base model's weights: memory, never disk."""
    if quant == "none":
        return Figure("weights (memory, not disk)", int(params * QUANT_BYTES["none"]),
                      f"{described} × 2 bytes (bf16; twice that in fp32, as on the CPU)",
                      "memory")
    return Figure(f"{quant} load (memory, not disk)", int(params * QUANT_BYTES[quant] * 1.1),
                  f"{described} × {QUANT_BYTES[quant]} bytes + 10% for quantization constants "
                  "and unquantized layers; quantized at load time, the download stays full "
                  "precision", "memory")


def format_params(n: int) -> str:
    """7.25 B, 41.9 M, 1.2 M, 350 K: a count readable at any scale (a tiny test model too)."""
    for unit, size in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= size:
            return f"{n / size:.2f} {unit}" if unit == "B" else f"{n / size:.1f} {unit}"
    return str(n)


def describe_model(model: str, *, cache_dir: str | os.PathLike | None = None,
                   online: bool | None = None, hub_timeout: float = 5.0) -> ModelFacts:
    folder = Path(model).expanduser()
    if folder.is_dir():
        return _from_folder(model, folder)
    if model.startswith(("/", ".", "~")) or not _HUB_ID.match(model):
        raise DiskManagerError(f"model: no such folder and not a hub id: {model}")
    cache = Path(cache_dir) if cache_dir else hf_hub_cache().path
    snap = None
    repo = hf.find_model(hf.scan(cache), model)
    if repo is not None:
        snap = hf.snapshot_of(repo)
    if snap is not None and snap.complete:
        return _from_snapshot(model, snap)
    present = snap.present_bytes if snap else 0
    notes: list[str] = []
    if online is None:
        online = os.environ.get("HF_HUB_OFFLINE", "").lower() not in ("1", "true", "yes", "on")
    if online:
        try:
            return _from_hub(model, present, snap, hub_timeout)
        except Exception as e:  # any hub failure (network, auth, 404) → the offline sources
            notes.append(f"hub unavailable ({type(e).__name__})")
            log.info("hub lookup of %s failed: %s", model, e)
    else:
        notes.append("offline")
    if snap is not None and snap.config:
        return _from_config(model, snap.config, f"config.json in the HF cache ({snap.commit[:7]})",
                            present, notes)
    config = known_config(model)
    if config is not None:
        # The notes (hub unavailable, offline) are said once by whoever prints the figures.
        return _from_config(model, config, "built-in table", present, notes)
    raise DiskManagerError(
        f"cannot estimate {model}: not a local folder, not in the HF cache at {cache}, "
        f"{', '.join(notes)}, and not in the built-in table; pass a local folder instead")


def _shapes_of(files: list[Path]) -> dict[str, list[int]]:
    shapes: dict[str, list[int]] = {}
    for f in files:
        shapes.update(weights.safetensors_shapes(f))
    return shapes


def _facts_from_weights(model: str, files: list[Path], config: dict | None, where: str,
                        size: int) -> ModelFacts:
    if files:
        shapes = _shapes_of(files)
        params, basis = weights.params_from_shapes(shapes), f"safetensors headers in {where}"
        lora = weights.lora_per_rank_from_shapes(shapes)
        return ModelFacts(model, params, basis, lora or int(params * LORA_FRACTION),
                          basis if lora else "rough: no q/k/v/o/gate/up/down_proj tensors", 0,
                          f"already on disk ({where}, {format_size(size)})", local=True)
    if config:
        facts = _from_config(model, config, f"config.json in {where}", 0, [])
        facts.download, facts.local = 0, True
        facts.download_basis = f"already on disk ({where}, {format_size(size)})"
        return facts
    params = size // 2
    return ModelFacts(model, params, f"size of {where} / 2 bytes (bf16 assumed, no config)",
                      int(params * LORA_FRACTION), "rough: 0.06 % of params per unit of rank", 0,
                      f"already on disk ({where}, {format_size(size)})", local=True)


def _from_folder(model: str, folder: Path) -> ModelFacts:
    files = sorted(folder.glob("*.safetensors"))
    config = hf._read_json(folder / "config.json") if (folder / "config.json").is_file() else None
    size = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())
    return _facts_from_weights(model, files, config, f"local folder {folder}", size)


def _from_snapshot(model: str, snap: hf.Snapshot) -> ModelFacts:
    return _facts_from_weights(model, snap.safetensors, snap.config,
                               f"HF cache, revision {snap.commit[:7]}", snap.present_bytes)


def _from_config(model: str, config: dict, where: str, present: int,
                 notes: list[str]) -> ModelFacts:
    try:
        params = weights.params_from_config(config)
        lora = weights.lora_per_rank_from_config(config)
    except ValueError as e:
        raise DiskManagerError(f"cannot estimate {model} from {where}: {e}") from e
    nbytes, dtype = weights.config_dtype_bytes(config)
    total = params * nbytes
    basis = f"{where}: {params / 1e9:.2f} B params × {nbytes} bytes ({dtype})"
    if present:
        basis += f" minus {format_size(present)} already in the HF cache"
    return ModelFacts(model, params, where, lora, where, max(total - present, 0), basis,
                      notes=notes)


def _hub_files(siblings: list[tuple[str, int]]) -> list[tuple[str, int]]:
    """The files `from_pretrained` fetches: top-level safetensors (or .bin) + small files."""
    top = [(n, s) for n, s in siblings if "/" not in n]
    st = [(n, s) for n, s in top
          if n.endswith(".safetensors") and not n.startswith("consolidated")]
    weights_ = st or [(n, s) for n, s in top
                      if n.startswith("pytorch_model") and n.endswith(".bin")]
    small = [(n, s) for n, s in top if not n.endswith(_WEIGHT_EXT)]
    return weights_ + small


def _from_hub(model: str, present: int, snap: hf.Snapshot | None, timeout: float) -> ModelFacts:
    from huggingface_hub import HfApi

    api = HfApi()
    info = api.model_info(model, files_metadata=True, timeout=timeout)
    files = _hub_files([(s.rfilename, s.size or 0) for s in info.siblings or []])
    total = sum(s for _, s in files)
    basis = f"Hub file list: {len(files)} files, {format_size(total)}"
    if present:
        basis += f" minus {format_size(present)} already in the HF cache"
    config = snap.config if snap and snap.config else known_config(model)
    if config is not None:
        facts = _from_config(model, config, "config" if snap and snap.config else "built-in table",
                             0, [])
        lora, lora_basis = facts.lora_per_rank, facts.lora_basis
        params, params_basis = facts.params, facts.params_basis
    else:
        meta = api.get_safetensors_metadata(model, timeout=timeout)
        shapes = {k: list(t.shape) for fm in meta.files_metadata.values()
                  for k, t in fm.tensors.items()}
        lora, lora_basis = weights.lora_per_rank_from_shapes(shapes), "Hub safetensors headers"
        params, params_basis = weights.params_from_shapes(shapes), "Hub safetensors headers"
    if info.safetensors is not None:
        params, params_basis = info.safetensors.total, "Hub safetensors metadata"
    return ModelFacts(model, params, params_basis, lora, lora_basis,
                      max(total - present, 0), basis)
