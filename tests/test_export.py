"""`persona export`: each format loads back, through its own loader or documented schema,
into the same conversations; a dataset breaking a format rule is refused with file, line, rule."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from persona.errors import InputError
from persona.export import ExportRefused, export
from tests import export_loaders as load
from tests.conftest import run_persona

SPLITS = {"train": "train", "val": "validation", "test": "test"}
needs_datasets = pytest.mark.skipif(importlib.util.find_spec("datasets") is None,
                                    reason="the loaders need `datasets` (pip install '.[hf]')")
SYSTEM = "Jsi Andrej Babiš."


@pytest.fixture(scope="module")
def final(tmp_path_factory) -> Path:
    """The built-in persona's 3,000 pairs, made offline once for the module (~2 s)."""
    ws = tmp_path_factory.mktemp("ws")
    run_persona("run", "--persona", "babis", "--count", "3000", "--workspace", ws)
    return ws / "final" / "babis"


def _sizes(final: Path) -> dict[str, int]:
    """Examples per split as merge wrote them (split by template: not exactly 80/10/10)."""
    return {split: sum(1 for _ in open(final / f"{split}.jsonl", encoding="utf-8"))
            for split in ("train", "val", "test")}


def write_final(folder: Path, train: list, val: list | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, rows in (("train", train), ("val", val)):
        if rows is not None:
            (folder / f"{name}.jsonl").write_text(
                "".join(json.dumps({"messages": m}, ensure_ascii=False) + "\n" for m in rows),
                encoding="utf-8")
    return folder


def pair(q: str = "Co dálnice?", a: str = "Makáme.\n\nAndrej Babiš", system: str | None = SYSTEM):
    head = [{"role": "system", "content": system}] if system is not None else []
    return head + [{"role": "user", "content": q}, {"role": "assistant", "content": a}]


# -- round trips on the built-in persona ---------------------------------------------------

@needs_datasets
@pytest.mark.parametrize("fmt", ["sharegpt", "alpaca"])
def test_llamafactory_formats_load_back_into_the_same_conversations(final, fmt, tmp_path):
    result = export(final, fmt, tmp_path / fmt)
    assert result.examples == _sizes(final)
    assert sum(result.examples.values()) == 3000
    for split, name in SPLITS.items():
        got = load.llamafactory(tmp_path / fmt, f"babis_{name}", tmp_path / "cache")
        assert got == load.chat_jsonl(final / f"{split}.jsonl"), split


def test_vertex_loads_back_and_keeps_the_system_prompt_in_system_instruction(final, tmp_path):
    result = export(final, "vertex", tmp_path / "v")
    assert sorted(p.name for p in result.files.values()) == [
        "test.jsonl", "train.jsonl", "validation.jsonl"]
    for split, name in SPLITS.items():
        assert load.vertex(tmp_path / "v" / f"{name}.jsonl") == load.chat_jsonl(
            final / f"{split}.jsonl")
    first = json.loads((tmp_path / "v" / "train.jsonl").open().readline())
    assert set(first) == {"systemInstruction", "contents"}
    assert [c["role"] for c in first["contents"]] == ["user", "model"]


@needs_datasets
def test_hf_folder_loads_with_datasets_into_the_same_conversations(final, tmp_path):
    from datasets import load_dataset

    export(final, "hf", tmp_path / "hf")
    ds = load_dataset(str(tmp_path / "hf"), cache_dir=str(tmp_path / "cache"))
    sizes = _sizes(final)
    assert {k: len(v) for k, v in ds.items()} == {"train": sizes["train"],
                                                  "validation": sizes["val"],
                                                  "test": sizes["test"]}
    for split, name in SPLITS.items():
        assert ds[name]["messages"] == load.chat_jsonl(final / f"{split}.jsonl")
    card = (tmp_path / "hf" / "README.md").read_text()
    assert card.startswith("---\nconfigs:") and "Andrej Babiš" in card


def test_cli_export_says_where_the_system_prompt_went(final, tmp_path):
    proc = run_persona("export", final, "--to", "alpaca", "--out", tmp_path / "a")
    assert "system prompt: carried in the `system` field" in proc.stdout
    info = json.loads((tmp_path / "a" / "dataset_info.json").read_text())
    assert info["babis_train"] == {"file_name": "babis_train.jsonl", "columns": {
        "prompt": "instruction", "query": "input", "response": "output", "system": "system"}}
    proc = run_persona("export", final, "--to", "sharegpt", "--out", tmp_path / "s",
                       "--fold-system", "--json")
    assert json.loads(proc.stdout)["system"] == "folded into the first user turn (--fold-system)"
    first = json.loads((tmp_path / "s" / "babis_train.jsonl").open().readline())
    original = load.chat_jsonl(final / "train.jsonl")[0]
    assert first["conversations"][0] == {
        "from": "human", "value": original[0]["content"] + "\n\n" + original[1]["content"]}
    assert [e["from"] for e in first["conversations"]] == ["human", "gpt"]


# -- shapes beyond one pair ----------------------------------------------------------------

@needs_datasets
def test_multi_turn_alpaca_uses_history_and_loads_back(tmp_path):
    conv = pair() + [{"role": "user", "content": "A daně?"},
                     {"role": "assistant", "content": "Nezvýšíme.\n\nAndrej Babiš"}]
    plain = pair(system=None)
    src = write_final(tmp_path / "final" / "x", [conv, plain])
    export(src, "alpaca", tmp_path / "a")
    row = json.loads((tmp_path / "a" / "x_train.jsonl").open().readline())
    assert row["history"] == [["Co dálnice?", "Makáme.\n\nAndrej Babiš"]]
    assert load.llamafactory(tmp_path / "a", "x_train", tmp_path / "c") == [conv, plain]


def test_a_split_that_is_missing_is_not_invented(tmp_path):
    src = write_final(tmp_path / "final" / "x", [pair()])
    result = export(src, "vertex", tmp_path / "v")
    assert list(result.files) == ["train"]


# -- refusals --------------------------------------------------------------------------------

VERTEX_BREAKS = [
    ("two_user_turns", [{"role": "user", "content": "a"}, {"role": "user", "content": "b"},
                        {"role": "assistant", "content": "c"}],
     "contents[1].role", "roles must alternate user/model"),
    ("ends_with_user", pair() + [{"role": "user", "content": "A?"}],
     "contents[2].role", "the last turn must be the model's answer"),
    ("empty_part", pair(a="  "), "contents[1].parts[0].text", "a part must not be empty"),
    ("starts_with_model", [{"role": "assistant", "content": "a"}],
     "contents[0].role", "the conversation starts with 'user'"),
    ("late_system", pair() + [{"role": "system", "content": "x"}],
     "contents[2].role", "role must be 'user' or 'model', not 'system'"),
    ("empty_system", pair(system=""), "systemInstruction.parts[0].text",
     "a part must not be empty"),
]


@pytest.mark.parametrize("messages,field,rule", [c[1:] for c in VERTEX_BREAKS],
                         ids=[c[0] for c in VERTEX_BREAKS])
def test_vertex_refuses_a_row_breaking_its_rules_and_writes_nothing(tmp_path, messages, field,
                                                                    rule):
    src = write_final(tmp_path / "final" / "x", [pair(), pair(), messages])
    with pytest.raises(ExportRefused) as e:
        export(src, "vertex", tmp_path / "v")
    assert (e.value.file, e.value.line, e.value.field) == (str(src / "train.jsonl"), 3, field)
    assert rule in e.value.message and e.value.message.startswith("Vertex rule:")
    assert not (tmp_path / "v").exists()


def test_cli_vertex_refusal_is_one_line_with_file_line_and_rule(tmp_path):
    bad = [{"role": "user", "content": "a"}, {"role": "user", "content": "b"},
           {"role": "assistant", "content": "c"}]
    src = write_final(tmp_path / "final" / "x", [pair(), bad, bad])
    proc = run_persona("export", src, "--to", "vertex", "--out", tmp_path / "v", check=False)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [
        f"error: {src / 'train.jsonl'}:2: contents[1].role: Vertex rule: roles must alternate "
        "user/model: contents[0] and contents[1] are both 'user' (+1 more in 2 line(s)); "
        "nothing written"]
    assert not (tmp_path / "v").exists()


def test_vertex_refuses_more_validation_examples_than_it_takes(tmp_path, monkeypatch):
    from persona.export import vertex

    monkeypatch.setattr(vertex, "MAX_VALIDATION_EXAMPLES", 2)
    src = write_final(tmp_path / "final" / "x", [pair()], [pair(), pair(), pair()])
    with pytest.raises(ExportRefused, match="3 validation examples; Vertex takes at most 2"):
        export(src, "vertex", tmp_path / "v")


def test_vertex_refuses_an_example_over_its_token_limit(tmp_path, monkeypatch):
    from persona.export import vertex

    monkeypatch.setattr(vertex, "MAX_EXAMPLE_TOKENS", 20)
    src = write_final(tmp_path / "final" / "x", [pair(a="slovo " * 30)])
    with pytest.raises(ExportRefused, match=r"tokens, over the 20 input \+ output tokens"):
        export(src, "vertex", tmp_path / "v")


@pytest.mark.parametrize("fmt,field,rule", [
    ("sharegpt", "conversations", "LLaMA-Factory needs human/gpt pairs"),
    ("alpaca", "output", "the conversation must end with the assistant"),
    ("hf", "messages[1]", "the last message must be the assistant's answer"),
])
def test_each_format_refuses_a_conversation_without_an_answer(tmp_path, fmt, field, rule):
    src = write_final(tmp_path / "final" / "x", [pair(a="ok")[:2]])
    with pytest.raises(ExportRefused) as e:
        export(src, fmt, tmp_path / fmt)
    assert e.value.field == field and rule in e.value.message


def test_keys_with_no_place_in_the_formats_are_refused_not_dropped(tmp_path):
    weighted = pair()
    weighted[2]["weight"] = 0
    src = write_final(tmp_path / "final" / "x", [weighted])
    with pytest.raises(InputError) as e:
        export(src, "sharegpt", tmp_path / "s")
    assert (e.value.line, e.value.field) == (1, "messages[2].weight")
    assert "has no place in the exported formats" in e.value.message


@needs_datasets
def test_the_sharegpt_loader_skips_what_the_check_refuses(tmp_path):
    # The loader drops a conversation with roles out of place (as LLaMA-Factory does), so a
    # check that let it through would lose data silently: the refusal is what keeps it.
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "x.jsonl").write_text(json.dumps({"conversations": [
        {"from": "human", "value": "a"}, {"from": "human", "value": "b"}]}) + "\n")
    (tmp_path / "d" / "dataset_info.json").write_text(json.dumps(
        {"x": {"file_name": "x.jsonl", "formatting": "sharegpt"}}))
    assert load.llamafactory(tmp_path / "d", "x", tmp_path / "c") == [None]
