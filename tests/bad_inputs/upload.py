"""Bad inputs of `persona upload` and `persona jobs`."""

from __future__ import annotations

import json
from pathlib import Path

from tests.bad_inputs import Case

DOWN = "http://127.0.0.1:9/v1"  # discard port: nothing listens there


def _line(i: int, answer: str = "Makáme.\n\nAndrej Babiš") -> str:
    return json.dumps({"messages": [{"role": "user", "content": f"Otázka {i}?"},
                                    {"role": "assistant", "content": answer}]},
                      ensure_ascii=False) + "\n"


def _final(train: str | bytes | None = None, record: str | None = None):
    def setup(ws: Path) -> None:
        folder = ws / "final" / "x"
        folder.mkdir(parents=True)
        text = train if train is not None else "".join(_line(i) for i in range(12))
        (folder / "train.jsonl").write_bytes(text if isinstance(text, bytes) else text.encode())
        if record is not None:
            (folder / "upload.json").write_text(record)
    return setup


DIR = "{ws}/final/x"
CASES: list[Case] = [
    Case("upload-missing-file", ("upload", "{ws}/nope.jsonl", "--base-url", DOWN),
         stderr="no such file"),
    Case("upload-folder-without-train", ("upload", "{ws}", "--base-url", DOWN),
         stderr="no train.jsonl"),
    Case("upload-empty-file", ("upload", f"{DIR}/train.jsonl", "--base-url", DOWN),
         stderr="empty file", setup=_final("")),
    Case("upload-binary-file", ("upload", f"{DIR}/train.jsonl", "--base-url", DOWN),
         stderr="binary file", setup=_final(b"\x00\x01garbage")),
    Case("upload-broken-line", ("upload", DIR, "--base-url", DOWN), exit=1,
         stderr="train.jsonl:3: invalid JSON",
         setup=_final(_line(1) + _line(2) + '{"messages": [\n' + "".join(
             _line(i) for i in range(10)))),
    Case("upload-empty-answer", ("upload", DIR, "--base-url", DOWN), exit=1,
         stderr="content is empty", setup=_final("".join(_line(i, "") for i in range(12)))),
    Case("upload-too-few-examples", ("upload", DIR, "--base-url", DOWN), exit=1,
         stderr="needs at least 10", setup=_final(_line(1))),
    Case("upload-bad-epochs", ("upload", DIR, "--epochs", "0"),
         stderr="invalid value for '--epochs'", setup=_final(), max_lines=4),
    Case("upload-bad-lr", ("upload", DIR, "--learning-rate-multiplier", "-1"),
         stderr="invalid value for '--learning-rate-multiplier'", setup=_final(), max_lines=4),
    Case("upload-unknown-moderator", ("upload", DIR, "--moderator", "nobody"),
         stderr="invalid value for '--moderator'", setup=_final(), max_lines=4),
    Case("upload-long-suffix", ("upload", DIR, "--suffix", "x" * 65),
         stderr="1 to 64 characters", setup=_final(), max_lines=4),
    Case("upload-no-key", ("upload", DIR), stderr="no API key: set OPENAI_API_KEY",
         setup=_final()),
    Case("upload-server-down", ("upload", DIR, "--base-url", DOWN),
         stderr="cannot reach", setup=_final()),
    Case("upload-server-down-offline-moderation",
         ("upload", DIR, "--base-url", DOWN, "--moderator", "offline"),
         stderr="cannot reach http://127.0.0.1:9/v1", setup=_final()),
    Case("upload-broken-record", ("upload", DIR, "--base-url", DOWN, "--moderator", "offline"),
         stderr="upload record is not valid JSON", setup=_final(record="{not json")),
    Case("jobs-show-server-down", ("jobs", "show", "ftjob-1", "--base-url", DOWN),
         stderr="cannot reach"),
    Case("jobs-list-bad-limit", ("jobs", "list", "--limit", "0", "--base-url", DOWN),
         stderr="invalid value for '--limit'", max_lines=4),
    Case("jobs-no-key", ("jobs", "cancel", "ftjob-1"), stderr="no API key"),
]
