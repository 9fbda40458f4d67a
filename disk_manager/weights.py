"""Parameter counts without loading weights: from safetensors headers or a config.json.

A safetensors file starts with an 8-byte little-endian header length and a JSON header that
lists every tensor's shape, so counting parameters reads kilobytes, never the weights.
The config formula is the Llama/Mistral decoder (no biases, RMSNorm, gated MLP); Qwen-style
q/k/v biases add well under 0.1 %, which no disk estimate needs.
"""

from __future__ import annotations

import json
import math
import os
import struct
from collections.abc import Iterable, Mapping

#: PEFT's "all-linear" for Llama/Mistral: the attention and MLP projections.
LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")

DTYPE_BYTES = {"float32": 4, "float16": 2, "bfloat16": 2, "float8_e4m3fn": 1, "int8": 1,
               "F32": 4, "F16": 2, "BF16": 2, "F8_E4M3": 1, "I8": 1, "U8": 1, "F64": 8,
               "I64": 8, "I32": 4, "I16": 2, "BOOL": 1}

_MAX_HEADER = 100 * 2**20  # a real header is < 10 MB; anything bigger is not safetensors


def safetensors_shapes(path: str | os.PathLike) -> dict[str, list[int]]:
    """Tensor name -> shape, read from the header of one .safetensors file."""
    with open(path, "rb") as f:
        raw = f.read(8)
        if len(raw) != 8:
            raise ValueError(f"{path}: too short to be a safetensors file")
        (n,) = struct.unpack("<Q", raw)
        if n > _MAX_HEADER:
            raise ValueError(f"{path}: header length {n} is not plausible")
        header = json.loads(f.read(n))
    return {k: list(v["shape"]) for k, v in header.items() if k != "__metadata__"}


def params_from_shapes(shapes: Mapping[str, Iterable[int]]) -> int:
    return sum(math.prod(s) for s in shapes.values())


def lora_per_rank_from_shapes(shapes: Mapping[str, list[int]],
                              targets: Iterable[str] = LORA_TARGETS) -> int:
    """LoRA parameters per unit of rank: r * (in + out) summed over targeted Linear weights."""
    targets = tuple(targets)
    total = 0
    for name, shape in shapes.items():
        parts = name.split(".")
        if len(shape) == 2 and parts[-1] == "weight" and len(parts) > 1 and parts[-2] in targets:
            total += shape[0] + shape[1]
    return total


def _text_config(config: Mapping) -> Mapping:
    # Multimodal checkpoints (e.g. Mistral-Small-3.1) nest the decoder under text_config.
    if "hidden_size" not in config and isinstance(config.get("text_config"), Mapping):
        return config["text_config"]
    return config


def _dims(config: Mapping) -> tuple[int, int, int, int, int, int]:
    c = _text_config(config)
    try:
        h, i, layers, vocab = (int(c[k]) for k in
                               ("hidden_size", "intermediate_size", "num_hidden_layers",
                                "vocab_size"))
        heads = int(c["num_attention_heads"])
    except (KeyError, TypeError, ValueError) as e:
        raise ValueError(f"config lacks a Llama/Mistral-style field: {e}") from e
    kv = int(c.get("num_key_value_heads") or heads)
    head_dim = int(c.get("head_dim") or h // heads)
    return h, i, layers, vocab, heads * head_dim, kv * head_dim


def params_from_config(config: Mapping) -> int:
    """Parameter count of a Llama/Mistral decoder from its config.json."""
    h, i, layers, vocab, hq, hkv = _dims(config)
    attention = h * hq + 2 * h * hkv + hq * h
    mlp = 3 * h * i
    per_layer = attention + mlp + 2 * h          # + input and post-attention RMSNorm
    embeddings = vocab * h
    tied = bool(_text_config(config).get("tie_word_embeddings", config.get("tie_word_embeddings",
                                                                          False)))
    lm_head = 0 if tied else vocab * h
    return embeddings + layers * per_layer + h + lm_head   # + final norm


def lora_per_rank_from_config(config: Mapping, targets: Iterable[str] = LORA_TARGETS) -> int:
    h, i, layers, _vocab, hq, hkv = _dims(config)
    sizes = {"q_proj": h + hq, "k_proj": h + hkv, "v_proj": h + hkv, "o_proj": hq + h,
             "gate_proj": h + i, "up_proj": h + i, "down_proj": i + h}
    return layers * sum(sizes[t] for t in targets if t in sizes)


def config_dtype_bytes(config: Mapping) -> tuple[int, str]:
    """Bytes per parameter of the stored weights, from config's dtype (bf16 if unsaid)."""
    c = _text_config(config)
    name = str(config.get("torch_dtype") or config.get("dtype") or c.get("torch_dtype")
               or c.get("dtype") or "bfloat16").replace("torch.", "")
    return DTYPE_BYTES.get(name, 2), name
