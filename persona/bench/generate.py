"""Answers of one side (before / after) to the held-out questions.

A model is named as on the command line: a local model folder, a `finetune --out` folder
(base + LoRA adapter, the base read from its summary.json), a hub id, or `openai:MODEL` for
any OpenAI-compatible server. Local models generate in batches (left padding, KV cache);
remote ones go through the OpenAI-compatible provider (concurrency, request cache, resume,
--max-cost). Every answer is appended to `answers/<side>.jsonl` as soon as its batch is done,
keyed by model, system prompt, decoding and question: a rerun generates only what is missing.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from persona.errors import InputError, ProviderError
from persona.finetune.chat import NO_REPEAT_NGRAM, REPETITION_PENALTY
from persona.io import iter_jsonl

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class Decoding:
    max_new_tokens: int = 128
    temperature: float = 0.0  # 0: greedy
    top_p: float = 1.0
    seed: int = 42
    batch_size: int = 16
    # Local models only, `persona chat`'s values: greedy decoding of a small model loops on
    # one sentence. Counted on the answer's tokens, not the question's (answer_only_repetition);
    # 1.0 and 0 switch them off. OpenAI-compatible servers have no such knobs.
    repetition_penalty: float = REPETITION_PENALTY
    no_repeat_ngram: int = NO_REPEAT_NGRAM


@dataclass(frozen=True)
class ModelRef:
    spec: str  # as given
    kind: str  # "local" | "openai"
    name: str  # folder / hub id / remote model name
    base: str | None = None  # for an adapter folder: its base model
    adapter: str | None = None

    def identity(self) -> dict:
        """What makes its answers what they are: weights by content hash where local files
        have one (so `runs/x` and `/abs/runs/x` share answers), else the name."""
        d = self.describe()
        if self.kind == "openai":
            return {"kind": "openai", "model": self.name}
        weights = d.get("adapter_sha256") or d.get("weights_sha256")
        if self.adapter:
            base = ModelRef(self.base, "local", self.base).identity() if self.base else None
            return {"adapter": weights or str(Path(self.adapter).resolve()), "base": base}
        if weights:
            return {"weights": weights}
        return {"model": str(Path(self.name).resolve()) if Path(self.name).exists()
                else self.name}

    def describe(self) -> dict:
        d = {"given": self.spec, "kind": self.kind, "model": self.name}
        if self.adapter:
            d.update(base=self.base, adapter=self.adapter,
                     adapter_sha256=_file_sha(Path(self.adapter) / "adapter_model.safetensors"))
        elif self.kind == "local" and Path(self.name).is_dir():
            d["weights_sha256"] = _file_sha(Path(self.name) / "model.safetensors")
        return d


def _file_sha(path: Path) -> str | None:
    if not path.is_file():
        return None
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def parse_model(spec: str) -> ModelRef:
    """What a --before/--after value names; InputError for a folder that is no model."""
    if spec.startswith("openai:"):
        name = spec.removeprefix("openai:")
        if not name:
            raise InputError("openai: needs a model name, e.g. openai:gpt-5.4-mini")
        return ModelRef(spec, "openai", name)
    path = Path(spec)
    if path.exists():
        if not path.is_dir():
            raise InputError("a model is a folder (config.json, or a finetune --out folder "
                             "with adapter_config.json)", file=spec)
        if (path / "adapter_config.json").is_file():
            summary = _read_json(path / "summary.json")
            base = summary.get("base_path") or _read_json(path / "adapter_config.json").get(
                "base_model_name_or_path")
            if not base:
                raise InputError("adapter folder names no base model", file=spec)
            return ModelRef(spec, "local", str(path), base=str(base), adapter=str(path))
        if (path / "config.json").is_file():
            return ModelRef(spec, "local", str(path))
        raise InputError("no model here (neither config.json nor adapter_config.json)",
                         file=spec)
    if spec.count("/") == 1 and not spec.startswith((".", "/", "~")):
        # A hub id (or a local folder that is not there): asked now, once and briefly, so a
        # hub that cannot be reached is one line in seconds, not a minute of retries.
        from persona.finetune.hub import check_base_model

        try:
            check_base_model(spec)
        except InputError as e:
            raise InputError(f"no such model folder here, and as a hub id: {e.message}",
                             file=spec) from None
        return ModelRef(spec, "local", spec)
    raise InputError("no such model folder (give a folder, a hub id org/name, or "
                     "openai:MODEL)", file=spec)


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    except json.JSONDecodeError as e:
        raise InputError(f"broken JSON: {e.msg}", file=str(path), line=e.lineno) from None


# -- local models --------------------------------------------------------------------------

def load_local(ref: ModelRef):
    """(model, tokenizer) in eval mode; the adapter applied on its base."""
    from persona.finetune import quiet_libraries, require_train_deps

    require_train_deps()
    quiet_libraries()
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    cuda = torch.cuda.is_available()
    dtype = torch.bfloat16 if cuda else torch.float32
    base = ref.base or ref.name
    try:
        model = AutoModelForCausalLM.from_pretrained(base, dtype=dtype,
                                                     device_map="auto" if cuda else None)
        tok = AutoTokenizer.from_pretrained(ref.adapter or ref.name)
    except (OSError, ValueError) as e:
        raise InputError(f"cannot load model {base!r}: {str(e).splitlines()[0][:200]}") from None
    if ref.adapter:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, ref.adapter)
    if tok.pad_token is None or tok.pad_token_id == tok.eos_token_id:
        if tok.unk_token is not None and tok.unk_token_id != tok.eos_token_id:
            tok.pad_token = tok.unk_token
        else:
            tok.pad_token = tok.eos_token  # generation only: nothing is learned from pads
    tok.padding_side = "left"
    return model.eval(), tok


def chat_messages(tok, system: str | None, question: str) -> list[dict]:
    from persona.finetune.data import fold_system, supports_system_role

    messages = [{"role": "user", "content": question}]
    if system:
        messages.insert(0, {"role": "system", "content": system})
        if tok is not None and not supports_system_role(tok):
            messages = fold_system(messages)
    return messages


def generate_local(model, tok, system: str | None, questions: list[str], dec: Decoding,
                   on_batch: Callable[[list[int], list[str]], None] | None = None
                   ) -> list[str]:
    """Answers in the questions' order. Batches of similar prompt length (left-padded), KV
    cache on; greedy when temperature is 0, else sampled with torch seeded per batch; the
    repetition penalty and n-gram ban of `dec` on both."""
    import torch

    texts = [tok.apply_chat_template(chat_messages(tok, system, q), tokenize=False,
                                     add_generation_prompt=True) for q in questions]
    lengths = [len(tok(t, add_special_tokens=False)["input_ids"]) for t in texts]
    order = sorted(range(len(texts)), key=lambda i: lengths[i])
    out: list[str] = [""] * len(texts)
    sample = dec.temperature > 0
    for b, start in enumerate(range(0, len(order), dec.batch_size)):
        idx = order[start:start + dec.batch_size]
        enc = tok([texts[i] for i in idx], return_tensors="pt", padding=True,
                  add_special_tokens=False).to(model.device)
        torch.manual_seed(dec.seed + b)
        kwargs = dict(max_new_tokens=dec.max_new_tokens, do_sample=sample, use_cache=True,
                      pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id)
        if sample:
            kwargs.update(temperature=dec.temperature, top_p=dec.top_p)
        if dec.repetition_penalty != 1.0 or dec.no_repeat_ngram:
            kwargs["logits_processor"] = [answer_only_repetition(
                enc["input_ids"].shape[1], dec.repetition_penalty, dec.no_repeat_ngram)]
        with torch.no_grad():
            ids = model.generate(**enc, **kwargs)
        new = ids[:, enc["input_ids"].shape[1]:]
        answers = [tok.decode(row, skip_special_tokens=True).strip() for row in new]
        for i, a in zip(idx, answers, strict=True):
            out[i] = a
        if on_batch:
            on_batch(idx, answers)
    return out


def answer_only_repetition(prompt_len: int, penalty: float, ngram: int):
    """A logits processor: `persona chat`'s repetition penalty and n-gram ban, counted on the
    answer's own tokens only. transformers' built-in ones also count the prompt, so a small
    model may not name the question's topic again (a topic of 4+ tokens is a banned n-gram)
    and mangles words of the question ("ktekrétní"); and a padded row would see its pads.
    Rows are independent, so batched answers stay equal to one-at-a-time answers."""
    import torch
    from transformers import LogitsProcessor

    class _AnswerOnly(LogitsProcessor):
        def __call__(self, input_ids, scores):
            gen = input_ids[:, prompt_len:]
            if gen.shape[1] == 0:
                return scores
            if penalty != 1.0:
                seen = torch.gather(scores, 1, gen)
                seen = torch.where(seen < 0, seen * penalty, seen / penalty)
                scores = scores.scatter(1, gen, seen)
            if ngram and gen.shape[1] >= ngram:
                rows = gen.tolist()
                for r, g in enumerate(rows):
                    tail = g[len(g) - ngram + 1:]
                    banned = {g[i + ngram - 1] for i in range(len(g) - ngram + 1)
                              if g[i:i + ngram - 1] == tail}
                    if banned:
                        scores[r, list(banned)] = -float("inf")
            return scores

    return _AnswerOnly()


def perplexity(model, tok, system: str | None, questions: list[str], answers: list[str],
               batch_size: int = 16) -> list[float | None]:
    """exp(mean negative log-likelihood of the answer's tokens given system + question)."""
    import torch

    rows = []
    for q, a in zip(questions, answers, strict=True):
        prompt = tok.apply_chat_template(chat_messages(tok, system, q), tokenize=False,
                                         add_generation_prompt=True)
        p_ids = tok(prompt, add_special_tokens=False)["input_ids"]
        a_ids = tok(a, add_special_tokens=False)["input_ids"] if a.strip() else []
        rows.append((p_ids, a_ids))
    out: list[float | None] = []
    pad = tok.pad_token_id
    for start in range(0, len(rows), batch_size):
        chunk = rows[start:start + batch_size]
        width = max(len(p) + len(a) for p, a in chunk)
        ids = torch.full((len(chunk), width), pad, dtype=torch.long)
        labels = torch.full((len(chunk), width), -100, dtype=torch.long)
        mask = torch.zeros((len(chunk), width), dtype=torch.long)
        for r, (p, a) in enumerate(chunk):
            seq = p + a
            ids[r, :len(seq)] = torch.tensor(seq)
            mask[r, :len(seq)] = 1
            if a:
                labels[r, len(p):len(seq)] = torch.tensor(a)
        with torch.no_grad():
            logits = model(input_ids=ids.to(model.device),
                           attention_mask=mask.to(model.device)).logits.float().cpu()
        logp = torch.log_softmax(logits[:, :-1], dim=-1)
        tgt = labels[:, 1:]
        for r in range(len(chunk)):
            sel = tgt[r] != -100
            if not sel.any():
                out.append(None)
                continue
            nll = -logp[r][sel].gather(1, tgt[r][sel].unsqueeze(1)).mean().item()
            out.append(round(float(min(1e6, math.exp(nll))), 3))
    return out


class Embedder:
    """Mean-pooled last hidden states of a local model folder; cosine similarity of texts."""

    def __init__(self, path: str):
        from persona.finetune import quiet_libraries, require_train_deps

        require_train_deps()
        quiet_libraries()
        from transformers import AutoModel, AutoTokenizer

        if not Path(path).is_dir():
            raise InputError("--embed-model must be a local model folder", file=path)
        try:
            self.tok = AutoTokenizer.from_pretrained(path)
            self.model = AutoModel.from_pretrained(path).eval()
        except (OSError, ValueError) as e:
            raise InputError(f"cannot load the embedding model: {str(e).splitlines()[0]}",
                             file=path) from None
        if self.tok.pad_token is None:
            self.tok.pad_token = self.tok.eos_token or self.tok.unk_token
        self.tok.padding_side = "right"

    def embed(self, texts: list[str], batch_size: int = 32):
        import torch

        out = []
        for start in range(0, len(texts), batch_size):
            enc = self.tok(texts[start:start + batch_size], return_tensors="pt", padding=True,
                           truncation=True, max_length=512)
            with torch.no_grad():
                h = self.model(**enc).last_hidden_state
            m = enc["attention_mask"].unsqueeze(-1).float()
            out.append(torch.nn.functional.normalize((h * m).sum(1) / m.sum(1), dim=-1))
        return torch.cat(out)

    def similarity(self, questions: list[str], answers: list[str]) -> list[float]:
        q, a = self.embed(questions), self.embed([x or " " for x in answers])
        return [round(float(v), 4) for v in (q * a).sum(-1)]


# -- remote models -------------------------------------------------------------------------

def remote_provider(model: str, *, base_url: str | None, api_key_env: str, concurrency: int,
                    max_cost: float | None, cache_dir: Path, dec: Decoding | None = None,
                    kind: str = "bench"):
    """The OpenAI-compatible provider set up for plain text answers of `kind`."""
    from persona.providers.openai_compat import OpenAICompatProvider

    prov = OpenAICompatProvider(base_url=base_url, model=model, api_key_env=api_key_env,
                                concurrency=concurrency, max_cost=max_cost,
                                cache_dir=cache_dir, max_retries=3)
    if dec is not None:
        params = {"temperature": dec.temperature, "max_tokens": dec.max_new_tokens,
                  "seed": dec.seed}
        if dec.top_p != 1.0:
            params["top_p"] = dec.top_p
        prov.kind_params[kind] = params
    return prov


def generate_remote(prov, system: str | None, questions: list[str],
                    on_done: Progress | None = None) -> list[str]:
    from persona.providers.base import Failure

    msgs = [chat_messages(None, system, q) for q in questions]
    if on_done:
        prov.monitor = lambda s: on_done(s.get("requests", 0) + s.get("cached", 0),
                                         len(questions))
    got = prov.complete("bench", msgs)
    failed = [g for g in got if isinstance(g, Failure)]
    if failed:
        raise ProviderError(f"{len(failed)} of {len(got)} answers failed after retries "
                            f"({failed[0].reason}); answered ones are cached, rerun to go on")
    return got


# -- the answers file (resume) -------------------------------------------------------------

def answer_key(model: dict, system: str | None, dec: Decoding, question: str) -> str:
    blob = json.dumps({"model": model, "system": system, "decoding": asdict(dec) | {
        "batch_size": None}, "question": question}, ensure_ascii=False, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:32]


class AnswerStore:
    """`answers/<side>.jsonl`: one line per finished answer, appended and flushed at once."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.found: dict[str, str] = {}
        if self.path.is_file():
            for _, row in iter_jsonl(self.path):
                if isinstance(row.get("key"), str) and isinstance(row.get("answer"), str):
                    self.found[row["key"]] = row["answer"]

    def add(self, rows: list[dict]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a", encoding="utf-8") as fh:
            for r in rows:
                fh.write(json.dumps(r, ensure_ascii=False) + "\n")
                self.found[r["key"]] = r["answer"]
            fh.flush()
            os.fsync(fh.fileno())


def pending(ref: ModelRef, asks: list[tuple[str | None, str]], dec: Decoding,
            store: AnswerStore) -> list[tuple[str | None, str]]:
    """The (system prompt, question) asks that `store` holds no answer of `ref` to yet."""
    ident = ref.identity()
    return [(s, q) for s, q in asks if answer_key(ident, s, dec, q) not in store.found]


def remote_estimate(ref: ModelRef, asks: list[tuple[str | None, str]], dec: Decoding,
                    store: AnswerStore, side: str) -> dict | None:
    """What a remote model's answers will cost before it is asked: the asks still to send,
    their prompt tokens counted, at most `max_new_tokens` out each, priced from the price
    table (max_usd None: no price known). None for a local model."""
    if ref.kind != "openai":
        return None
    from persona.checks.cost import generation_cost
    from persona.checks.tokens import estimate_request_tokens

    todo = pending(ref, asks, dec, store)
    tokens_in = sum(estimate_request_tokens(chat_messages(None, s, q), ref.name)[0]
                    for s, q in todo)
    tokens_out = len(todo) * dec.max_new_tokens
    return {"side": side, "model": ref.name, "questions": len(todo),
            "input_tokens": tokens_in, "max_output_tokens": tokens_out,
            "max_usd": generation_cost(ref.name, tokens_in, tokens_out)}


def answer_side(ref: ModelRef, ids: list[str], questions: list[str], system: str | None,
                dec: Decoding, store: AnswerStore, *, remote: dict | None = None,
                on_progress: Progress | None = None, model_tok=None) -> tuple[list[str], int]:
    """Answers for every question (cached ones reused), and how many were reused."""
    ident = ref.identity()
    keys = [answer_key(ident, system, dec, q) for q in questions]
    todo = [i for i, k in enumerate(keys) if k not in store.found]
    reused = len(questions) - len(todo)
    progress = on_progress or (lambda done, total: None)
    progress(reused, len(questions))
    if todo:
        done = [reused]

        def saved(idx: list[int], answers: list[str]) -> None:
            store.add([{"key": keys[todo[i]], "id": ids[todo[i]], "answer": a}
                       for i, a in zip(idx, answers, strict=True)])
            done[0] += len(idx)
            progress(done[0], len(questions))

        asked = [questions[i] for i in todo]
        if ref.kind == "openai":
            prov = remote_provider(ref.name, dec=dec, **(remote or {}))
            try:
                answers = generate_remote(prov, system, asked,
                                          functools.partial(_shift, progress, reused))
            finally:
                prov.close()
            saved(list(range(len(asked))), answers)
        else:
            model, tok = model_tok or load_local(ref)
            generate_local(model, tok, system, asked, dec, on_batch=saved)
    return [store.found[k] for k in keys], reused


def _shift(progress: Progress, offset: int, done: int, total: int) -> None:
    progress(offset + done, offset + total)
