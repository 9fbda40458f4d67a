"""A last resort for `estimate`: configs of a few popular hub ids, used only when there is no
local copy, no cached config and no network. Figures from it are labelled as such.

Values copied from each repo's config.json; the comment is the resulting parameter count.
"""

from __future__ import annotations

_MISTRAL_7B = {"hidden_size": 4096, "intermediate_size": 14336, "num_hidden_layers": 32,
               "num_attention_heads": 32, "num_key_value_heads": 8,
               "tie_word_embeddings": False, "torch_dtype": "bfloat16"}
_LLAMA_8B = {"hidden_size": 4096, "intermediate_size": 14336, "num_hidden_layers": 32,
             "num_attention_heads": 32, "num_key_value_heads": 8, "vocab_size": 128256,
             "tie_word_embeddings": False, "torch_dtype": "bfloat16"}
_LLAMA_1B = {"hidden_size": 2048, "intermediate_size": 8192, "num_hidden_layers": 16,
             "num_attention_heads": 32, "num_key_value_heads": 8, "head_dim": 64,
             "vocab_size": 128256, "tie_word_embeddings": True, "torch_dtype": "bfloat16"}
_LLAMA_3B = {"hidden_size": 3072, "intermediate_size": 8192, "num_hidden_layers": 28,
             "num_attention_heads": 24, "num_key_value_heads": 8, "head_dim": 128,
             "vocab_size": 128256, "tie_word_embeddings": True, "torch_dtype": "bfloat16"}

KNOWN_CONFIGS: dict[str, dict] = {
    "mistralai/Mistral-7B-Instruct-v0.3": {**_MISTRAL_7B, "vocab_size": 32768},   # 7.25 B
    "mistralai/Mistral-7B-v0.3": {**_MISTRAL_7B, "vocab_size": 32768},            # 7.25 B
    "mistralai/Mistral-7B-Instruct-v0.2": {**_MISTRAL_7B, "vocab_size": 32000},   # 7.24 B
    "mistralai/Mistral-7B-v0.1": {**_MISTRAL_7B, "vocab_size": 32000},            # 7.24 B
    "meta-llama/Llama-3.1-8B": _LLAMA_8B,                                         # 8.03 B
    "meta-llama/Llama-3.1-8B-Instruct": _LLAMA_8B,                                # 8.03 B
    "meta-llama/Meta-Llama-3-8B": _LLAMA_8B,                                      # 8.03 B
    "meta-llama/Meta-Llama-3-8B-Instruct": _LLAMA_8B,                             # 8.03 B
    "meta-llama/Llama-3.2-1B": _LLAMA_1B,                                         # 1.24 B
    "meta-llama/Llama-3.2-1B-Instruct": _LLAMA_1B,                                # 1.24 B
    "meta-llama/Llama-3.2-3B": _LLAMA_3B,                                         # 3.21 B
    "meta-llama/Llama-3.2-3B-Instruct": _LLAMA_3B,                                # 3.21 B
}


def known_config(model_id: str) -> dict | None:
    """Case-insensitive lookup; None for an id not in the table."""
    lowered = {k.lower(): v for k, v in KNOWN_CONFIGS.items()}
    return lowered.get(model_id.lower())
