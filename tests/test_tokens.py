"""Offline tiktoken: provisioning from bpe-openai's files, model → encoding, billed chat tokens."""

from __future__ import annotations

import gzip
import hashlib
import random
import threading

import pytest
import tiktoken
import tiktoken.load
import tiktoken.registry

from persona.checks import tokens
from persona.errors import PersonaError

CZECH = "Dobrý den, pane premiére, co říkáte na kampaň?"


@pytest.fixture(scope="session")
def tiktoken_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("tiktoken-cache")


@pytest.fixture(autouse=True)
def offline_tiktoken(tiktoken_cache, monkeypatch):
    """An empty cache dir to start from, and no downloads: any URL read fails the test."""
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tiktoken_cache))
    real_read = tiktoken.load.read_file

    def no_network(blobpath: str) -> bytes:
        if "://" in blobpath:
            raise AssertionError(f"tiktoken tried to download {blobpath}")
        return real_read(blobpath)

    monkeypatch.setattr(tiktoken.load, "read_file", no_network)


@pytest.fixture
def fresh(monkeypatch, tmp_path):
    """Forget every loaded encoding, so the next get_encoding provisions into tmp_path."""
    for name in ("o200k_base", "cl100k_base"):
        monkeypatch.delitem(tiktoken.registry.ENCODINGS, name, raising=False)
    monkeypatch.setattr(tokens, "_provisioned", set())
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path))
    return tmp_path


def _url(name):
    return f"https://openaipublic.blob.core.windows.net/encodings/{name}.tiktoken"


@pytest.mark.parametrize("name", ["o200k_base", "cl100k_base"])
def test_provisions_from_scratch_under_tiktokens_cache_name(fresh, name):
    enc = tokens.get_encoding(name)
    cached = fresh / hashlib.sha1(_url(name).encode()).hexdigest()
    assert cached.is_file()
    assert hashlib.sha256(cached.read_bytes()).hexdigest() == tokens._EXPECTED_SHA256[name]
    assert enc is tiktoken.get_encoding(name)  # the real tiktoken object, not a look-alike


def test_known_strings_match_tiktokens_reference_ids():
    o200k, cl100k = tokens.get_encoding("o200k_base"), tokens.get_encoding("cl100k_base")
    assert o200k.encode("hello world") == [24912, 2375]
    assert cl100k.encode("hello world") == [15339, 1917]
    assert tokens.count_text(CZECH, o200k) == 18
    assert tokens.count_text(CZECH, cl100k) == 25


def test_special_token_text_counts_as_ordinary_text():
    enc = tokens.get_encoding("o200k_base")
    with pytest.raises(ValueError):
        enc.encode("<|endoftext|>")  # tiktoken's default: refuse
    assert tokens.count_text("<|endoftext|>", enc) == 7
    assert "<|endoftext|>" in tokens.special_token_texts(enc)
    assert "<|im_start|>" in tokens.special_token_texts(enc)
    assert "<|fim_prefix|>" in tokens.special_token_texts(tokens.get_encoding("cl100k_base"))


def test_valid_file_in_user_cache_dir_is_used_as_is(fresh):
    tokens.get_encoding("o200k_base")
    cached = fresh / hashlib.sha1(_url("o200k_base").encode()).hexdigest()
    before = cached.stat().st_mtime_ns, cached.stat().st_ino
    tokens._provisioned.clear()
    tiktoken.registry.ENCODINGS.pop("o200k_base")
    tokens.get_encoding("o200k_base")
    assert (cached.stat().st_mtime_ns, cached.stat().st_ino) == before


def test_corrupt_file_in_user_cache_dir_is_replaced(fresh):
    cached = fresh / hashlib.sha1(_url("cl100k_base").encode()).hexdigest()
    cached.write_bytes(b"not a bpe file\n")
    assert tokens.get_encoding("cl100k_base").encode("hello world") == [15339, 1917]


def test_unset_cache_dir_uses_a_persona_cache_dir(fresh, monkeypatch):
    monkeypatch.delenv("TIKTOKEN_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(fresh))
    tokens.get_encoding("o200k_base")
    assert (
        fresh / "persona" / "tiktoken" / hashlib.sha1(_url("o200k_base").encode()).hexdigest()
    ).is_file()


def test_cache_disabled_by_empty_variable_is_one_clear_error(fresh, monkeypatch):
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", "")
    with pytest.raises(PersonaError, match="TIKTOKEN_CACHE_DIR"):
        tokens.get_encoding("o200k_base")


def test_missing_bpe_openai_is_one_clear_error(fresh, monkeypatch):
    monkeypatch.setattr(tokens.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(PersonaError, match="pip install bpe-openai"):
        tokens.get_encoding("o200k_base")


def test_concurrent_first_use_provisions_once(fresh):
    results, errors = [], []

    def load():
        try:
            results.append(tokens.get_encoding("o200k_base"))
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=load) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len({id(r) for r in results}) == 1
    assert [p.name for p in fresh.iterdir()] == [
        hashlib.sha1(_url("o200k_base").encode()).hexdigest()
    ]  # no temp files left


def test_other_layouts_are_converted_to_tiktokens_exact_bytes():
    bundled = gzip.decompress(tokens._bundled_file("cl100k_base").read_bytes())
    lines = bundled.splitlines()
    random.Random(0).shuffle(lines)
    scrambled = b"\r\n".join(line.replace(b" ", b"  ") for line in lines)
    converted = tokens.to_tiktoken_format(scrambled)
    assert hashlib.sha256(converted).hexdigest() == tokens._EXPECTED_SHA256["cl100k_base"]


@pytest.mark.parametrize(
    "model, name",
    [
        ("gpt-4o-mini", "o200k_base"),
        ("gpt-4o-mini-2024-07-18", "o200k_base"),
        ("ft:gpt-4o-mini-2024-07-18:org::abc", "o200k_base"),
        ("gpt-4o", "o200k_base"),
        ("gpt-4.1", "o200k_base"),
        ("gpt-4.1-nano", "o200k_base"),
        ("o1", "o200k_base"),
        ("o3-mini", "o200k_base"),
        ("o4-mini", "o200k_base"),
        ("gpt-5", "o200k_base"),
        ("gpt-5.1-mini", "o200k_base"),
        ("gpt-4", "cl100k_base"),
        ("gpt-4-turbo", "cl100k_base"),
        ("gpt-3.5-turbo-0125", "cl100k_base"),
        ("text-embedding-3-small", "cl100k_base"),
        ("llama-3-8b", None),
        ("gpt-4.7", None),
        ("o1x", None),
    ],
)
def test_model_to_encoding(model, name):
    assert tokens.encoding_name_for_model(model) == name


def test_unknown_model_is_an_approximation_never_a_silent_guess():
    enc, exact, name = tokens.encoding_for_model("llama-3-8b")
    assert (exact, name) == (False, "o200k_base") and enc.name == "o200k_base"
    enc, exact, name = tokens.encoding_for_model("gpt-3.5-turbo")
    assert (exact, name, enc.name) == (True, "cl100k_base", "cl100k_base")


def test_chat_tokens_follow_openais_billing_formula():
    enc = tokens.get_encoding("o200k_base")
    messages = [
        {"role": "system", "content": "hello world"},
        {"role": "user", "content": "hello world", "name": "bob"},
    ]
    # 3 (reply primer) + [3 + system 1 + 2] + [3 + user 1 + 2 + bob 1 + name 1]
    assert tokens.chat_tokens(messages, enc) == 3 + 6 + 8 == 17
    weighted = [{"role": "assistant", "content": "hello world", "weight": 1}]
    assert tokens.chat_tokens(weighted, enc) == 3 + 3 + 1 + 2  # numbers are not text


def test_estimate_request_tokens_carries_the_exact_flag():
    messages = [{"role": "user", "content": CZECH}]
    assert tokens.estimate_request_tokens(messages, "gpt-4o-mini") == (3 + 3 + 1 + 18, True)
    assert tokens.estimate_request_tokens(messages, "mystery-model") == (3 + 3 + 1 + 18, False)
