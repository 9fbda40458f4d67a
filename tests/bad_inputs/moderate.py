"""Bad inputs of `persona moderate` (and `persona run --moderate`)."""

from __future__ import annotations

import json

from tests.bad_inputs import Case, closed_port
from tests.bad_inputs import mkdir as _mkdir
from tests.bad_inputs import write as _write

_SYSTEM = {"role": "system", "content": "Jsi satirická napodobenina."}
LINE = json.dumps({"messages": [_SYSTEM, {"role": "user", "content": "Jak se máte?"},
                                {"role": "assistant", "content": "Dobře, fakt dobře."}]},
                  ensure_ascii=False) + "\n"
GOOD = LINE * 12


DOWN = f"http://127.0.0.1:{closed_port()}/v1"

CASES: list[Case] = [
    Case("moderate-missing-file", ("moderate", "nosuch.jsonl"), stderr="no such file"),
    Case("moderate-folder-without-all", ("moderate", "adir"), setup=_mkdir("adir"),
         stderr="all.jsonl"),
    Case("moderate-empty-file", ("moderate", "empty.jsonl"), setup=_write("empty.jsonl", ""),
         stderr="empty"),
    Case("moderate-blank-lines-only", ("moderate", "blank.jsonl"),
         setup=_write("blank.jsonl", "\n\n"), stderr="empty"),
    Case("moderate-binary-file", ("moderate", "bin.jsonl"),
         setup=_write("bin.jsonl", bytes(range(256)) * 16), stderr="binary"),
    Case("moderate-broken-line", ("moderate", "broken.jsonl"),
         setup=_write("broken.jsonl", LINE + '{"messages": [\n' + LINE), stderr="broken.jsonl:2"),
    Case("moderate-not-chat", ("moderate", "notchat.jsonl"),
         setup=_write("notchat.jsonl", LINE + '{"prompt": "x"}\n'), stderr="notchat.jsonl:2"),
    Case("moderate-unknown-provider", ("moderate", "ok.jsonl", "--provider", "perspective"),
         setup=_write("ok.jsonl", GOOD), stderr="--provider"),
    Case("moderate-threshold-out-of-range", ("moderate", "ok.jsonl", "--threshold", "1.5"),
         setup=_write("ok.jsonl", GOOD), stderr="--threshold"),
    Case("moderate-bad-fix", ("moderate", "ok.jsonl", "--fix", "censor"),
         setup=_write("ok.jsonl", GOOD), stderr="--fix"),
    Case("moderate-rounds-zero", ("moderate", "ok.jsonl", "--rounds", "0"),
         setup=_write("ok.jsonl", GOOD), stderr="--rounds"),
    Case("moderate-server-down", ("moderate", "ok.jsonl", "--base-url", DOWN),
         setup=_write("ok.jsonl", GOOD), stderr="cannot reach"),
    Case("moderate-llamaguard-server-down",
         ("moderate", "ok.jsonl", "--provider", "llamaguard", "--base-url", DOWN),
         setup=_write("ok.jsonl", GOOD), stderr="cannot reach"),
    Case("moderate-openai-without-key", ("moderate", "ok.jsonl", "--provider", "openai"),
         setup=_write("ok.jsonl", GOOD), stderr="no API key"),
    Case("moderate-regenerate-offline-on-a-file",
         ("moderate", "ok.jsonl", "--fix", "regenerate", "--rewriter", "offline"),
         setup=_write("ok.jsonl", GOOD), stderr="final/<persona>/ folder"),
    Case("moderate-fix-folder-without-report",
         ("moderate", "final/babis", "--fix", "drop"),
         setup=_write("final/babis/all.jsonl", GOOD), stderr="--persona"),
    Case("moderate-fix-unknown-persona",
         ("moderate", "final/babis", "--fix", "drop", "--persona", "nosuch"),
         setup=_write("final/babis/all.jsonl", GOOD), stderr="nosuch"),
    Case("run-moderate-unknown-provider", ("run", "--count", "20", "--moderate",
                                           "--moderation-provider", "perspective"),
         stderr="--moderation-provider"),
]
