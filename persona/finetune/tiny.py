"""`--base-model tiny`: a small Llama (or Mistral) built offline from a config.

A byte-level BPE tokenizer is trained on the dataset's texts, the model gets random weights, and
both are saved with `save_pretrained` like any downloaded model — so the whole path (preflight,
training, adapter, resume, merge, generation) runs on a CPU in minutes with nothing downloaded.
"""

from __future__ import annotations

import json
from pathlib import Path

TINY = {"tiny": "llama", "tiny-mistral": "mistral"}

# Pad is its own token: with pad == eos the collator masks the EOS labels too and the model
# never learns to stop.
PAD, BOS, EOS = "<pad>", "<s>", "</s>"

# ChatML-like roles as single special tokens; the EOS sits inside {% generation %} so that
# tools that read those markers (TRL's assistant_only_loss) learn to stop as well.
LLAMA_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}"
    "{% if m['role'] == 'assistant' %}<|assistant|>\n"
    "{% generation %}{{ m['content'] }}{{ eos_token }}{% endgeneration %}"
    "{% else %}<|{{ m['role'] }}|>\n{{ m['content'] }}\n{% endif %}"
    "{% endfor %}{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)
LLAMA_SPECIAL = ["<|system|>", "<|user|>", "<|assistant|>"]

# Mistral's shape: no system role (it raises, as the real Mistral template does).
MISTRAL_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}"
    "{% if m['role'] == 'system' %}{{ raise_exception('System role not supported') }}"
    "{% elif m['role'] == 'user' %}[INST] {{ m['content'] }} [/INST]"
    "{% else %}{% generation %}{{ m['content'] }}{{ eos_token }}{% endgeneration %}{% endif %}"
    "{% endfor %}"
)
MISTRAL_SPECIAL = ["[INST]", "[/INST]"]


def is_tiny(name: str | None) -> bool:
    return name in TINY


def tiny_folder(out: Path, name: str) -> Path:
    return Path(out) / f"base-{name}"


def build_tiny(name: str, texts: list[str], folder: Path, *, seed: int = 0,
               vocab_size: int = 2048, hidden: int = 256, layers: int = 2,
               tied: bool = False) -> Path:
    """Train the tokenizer on `texts`, init the model with `seed`, save both into `folder`.

    Sizes chosen on 2,400 persona conversations, 300 steps on 2 CPU cores (docs/finetune.md):
    hidden 256 / 2 layers reaches eval loss 0.91 in 138 s, 4 layers 0.89 in 201 s, hidden 128
    1.60 in 108 s. A 2,048-token vocabulary cuts a Czech conversation from ~132 tokens (1,024)
    to ~104. Untied embeddings, because the tiny preset trains the input embeddings and the
    output head as separate full copies.

    An existing folder is reused as is: a resumed run must see the same base weights.
    """
    folder = Path(folder)
    if (folder / "config.json").exists():
        return folder
    import torch

    arch = TINY[name]
    tok = _train_tokenizer(texts, vocab_size, arch)
    torch.manual_seed(seed)
    model = _init_model(arch, tok, hidden, layers, tied)
    folder.mkdir(parents=True, exist_ok=True)
    tok.save_pretrained(folder)
    model.save_pretrained(folder)
    (folder / "persona_tiny.json").write_text(json.dumps({"name": name, "seed": seed}) + "\n")
    return folder


def _train_tokenizer(texts: list[str], vocab_size: int, arch: str):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    extra = LLAMA_SPECIAL if arch == "llama" else MISTRAL_SPECIAL
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[PAD, BOS, EOS, *extra],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    bpe.train_from_iterator(texts, trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=bpe, bos_token=BOS, eos_token=EOS, pad_token=PAD,
        additional_special_tokens=extra, padding_side="right",
        chat_template=LLAMA_TEMPLATE if arch == "llama" else MISTRAL_TEMPLATE,
        model_max_length=2048,
    )


def _init_model(arch: str, tok, hidden: int, layers: int, tied: bool = True):
    from transformers import LlamaConfig, LlamaForCausalLM, MistralConfig, MistralForCausalLM

    common = dict(
        vocab_size=len(tok), hidden_size=hidden, intermediate_size=hidden * 2,
        num_hidden_layers=layers, num_attention_heads=4, num_key_value_heads=2,
        max_position_embeddings=2048, tie_word_embeddings=tied,
        # With the usual 0.02 every logit starts near zero and the random attention/MLP barely
        # pass a signal through; 0.05 gives the LoRA room.
        initializer_range=0.05,
        bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )
    if arch == "llama":
        return LlamaForCausalLM(LlamaConfig(**common))
    return MistralForCausalLM(MistralConfig(sliding_window=None, **common))
