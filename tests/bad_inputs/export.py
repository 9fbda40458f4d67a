"""Bad inputs of `persona export`."""

from __future__ import annotations

import json
from pathlib import Path

from tests.bad_inputs import Case, mkdir

PAIR = [{"role": "system", "content": "Jsi Andrej Babiš."},
        {"role": "user", "content": "Co dálnice?"},
        {"role": "assistant", "content": "Makáme.\n\nAndrej Babiš"}]


def _final(text: str | bytes):
    def setup(ws: Path) -> None:
        folder = ws / "final" / "x"
        folder.mkdir(parents=True)
        path = folder / "train.jsonl"
        path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return setup


def _line(messages) -> str:
    return json.dumps({"messages": messages}, ensure_ascii=False) + "\n"


def _file_not_folder(ws: Path) -> None:
    (ws / "final.jsonl").write_text(_line(PAIR))


def _empty_folder(ws: Path) -> None:
    (ws / "final" / "x").mkdir(parents=True)


def _out_is_a_file(ws: Path) -> None:
    _final(_line(PAIR))(ws)
    (ws / "out").write_text("kept")


GOOD = _line(PAIR)
TWO_USERS = _line([PAIR[1], PAIR[1], PAIR[2]])

CASES: list[Case] = [
    Case("export-missing-folder", ("export", "{ws}/nope", "--to", "vertex"),
         stderr="no such folder"),
    Case("export-file-not-folder", ("export", "{ws}/final.jsonl", "--to", "hf"),
         stderr="not a folder", setup=_file_not_folder),
    Case("export-folder-without-train", ("export", "{ws}/final/x", "--to", "sharegpt"),
         stderr="no train.jsonl", setup=_empty_folder),
    Case("export-empty-train", ("export", "{ws}/final/x", "--to", "alpaca"),
         stderr="empty file", setup=_final("")),
    Case("export-binary-train", ("export", "{ws}/final/x", "--to", "vertex"),
         stderr="binary file", setup=_final(b"\x00\x01\x02garbage")),
    Case("export-broken-line", ("export", "{ws}/final/x", "--to", "vertex"),
         stderr="train.jsonl:2: invalid JSON", setup=_final(GOOD + '{"messages": [\n')),
    Case("export-not-utf8", ("export", "{ws}/final/x", "--to", "sharegpt"),
         stderr="not UTF-8", setup=_final(GOOD.encode() + b'{"messages": "\xff\xfe"}\n')),
    Case("export-line-not-object", ("export", "{ws}/final/x", "--to", "hf"),
         stderr="train.jsonl:1: expected a JSON object", setup=_final("[1, 2]\n")),
    Case("export-no-messages", ("export", "{ws}/final/x", "--to", "alpaca"),
         stderr="train.jsonl:1: messages: needs a non-empty 'messages' list",
         setup=_final('{"prompt": "x"}\n')),
    Case("export-tool-role", ("export", "{ws}/final/x", "--to", "sharegpt"),
         stderr="role 'tool' has no place",
         setup=_final(_line([PAIR[1], {"role": "tool", "content": "x"}, PAIR[2]]))),
    Case("export-vertex-rule", ("export", "{ws}/final/x", "--to", "vertex"), exit=1,
         stderr="train.jsonl:1: contents[1].role: Vertex rule: roles must alternate",
         setup=_final(TWO_USERS)),
    Case("export-sharegpt-rule", ("export", "{ws}/final/x", "--to", "sharegpt"), exit=1,
         stderr="ShareGPT rule:", setup=_final(TWO_USERS)),
    Case("export-unknown-format", ("export", "{ws}/final/x", "--to", "csv"),
         stderr="invalid value for '--to'", setup=_final(GOOD), max_lines=4),
    Case("export-no-format", ("export", "{ws}/final/x"),
         stderr="missing option '--to'", setup=_final(GOOD), max_lines=9),
    Case("export-out-is-a-file", ("export", "{ws}/final/x", "--to", "hf", "--out", "{ws}/out"),
         stderr="is a file", setup=_out_is_a_file, max_lines=4),
]


def _dataset(all_text: str, meta_text: str):
    def setup(ws: Path) -> None:
        folder = ws / "final" / "x"
        folder.mkdir(parents=True)
        (folder / "all.jsonl").write_text(all_text, encoding="utf-8")
        (folder / "meta.jsonl").write_text(meta_text, encoding="utf-8")
    return setup


META = json.dumps({"id": "babis-d000001", "split": "train", "values": {"tema": "dálnice"}}) + "\n"

CASES += [
    Case("pairs-missing-folder", ("pairs", "{ws}/nope"),
         stderr="not a finished dataset folder"),
    Case("pairs-train-only-folder", ("pairs", "{ws}/final/x"), setup=_final(GOOD),
         stderr="all.jsonl: not a finished dataset folder"),
    Case("pairs-meta-lines-differ", ("pairs", "{ws}/final/x"),
         setup=_dataset(GOOD + GOOD, META), stderr="all.jsonl has 2 lines and meta.jsonl 1"),
    Case("pairs-broken-line", ("pairs", "{ws}/final/x"),
         setup=_dataset(GOOD + '{"messages": [\n', META + META),
         stderr="all.jsonl:2: invalid JSON"),
    Case("pairs-no-answer", ("pairs", "{ws}/final/x"),
         setup=_dataset(_line(PAIR[:2]), META),
         stderr="all.jsonl:1: messages: expected messages ending with a user and an assistant"),
    Case("pairs-unknown-source", ("pairs", "{data}", "--rejected", "gpt-9"),
         stderr="no such model folder (give a folder, a hub id org/name, or openai:MODEL); "
         "or 'neutral'"),
    Case("pairs-rejected-model-folder-empty", ("pairs", "{data}", "--rejected", "{ws}/m"),
         setup=mkdir("m"), stderr="no model here"),
    Case("pairs-rejected-openai-no-model", ("pairs", "{data}", "--rejected", "openai:"),
         stderr="openai: needs a model name"),
    Case("pairs-dry-run-neutral", ("pairs", "{data}", "--dry-run"),
         stderr="--dry-run prices a model source"),
]

CASES += [
    Case("prompt-missing-folder", ("prompt", "{ws}/nope"), stderr="not a finished dataset folder"),
    Case("prompt-zero-shots", ("prompt", "{data}", "--shots", "0"), stderr="--shots",
         max_lines=4),
    Case("prompt-out-is-a-folder", ("prompt", "{data}", "--out", "{ws}"),
         stderr="is a directory", max_lines=4),
]
