"""Bad inputs of the pre-upload checks: validate, cost."""

from __future__ import annotations

from tests.bad_inputs import BINARY, CHAT_LINE, HUGE_LINE, NOT_UTF8, Case, mkdir, write

PRICES_BROKEN = "[models\n"

CASES: list[Case] = []
for cmd in ("validate", "cost"):
    CASES += [
        Case(f"{cmd}-missing-file", (cmd, "nosuch.jsonl"), stderr="no such file"),
        Case(f"{cmd}-folder", (cmd, "adir"), setup=mkdir("adir"), stderr="not a file"),
        Case(f"{cmd}-empty-file", (cmd, "empty.jsonl"), setup=write("empty.jsonl", ""),
             stderr="empty"),
        Case(f"{cmd}-binary-file", (cmd, "bin.jsonl"), setup=write("bin.jsonl", BINARY),
             stderr="binary"),
        Case(f"{cmd}-not-utf8", (cmd, "latin2.jsonl"), setup=write("latin2.jsonl", NOT_UTF8),
             stderr="not UTF-8"),
        Case(f"{cmd}-dev-null", (cmd, "/dev/null"), stderr="/dev/null"),
        Case(f"{cmd}-proc-missing", (cmd, "/proc/x"), stderr="no such file"),
        Case(f"{cmd}-sys-folder", (cmd, "/sys/kernel"), stderr="not a file"),
        Case(f"{cmd}-no-argument", (cmd,), stderr="missing argument"),
    ]

CASES += [
    # a file that reads but has problems: validate reports them (exit 1), one per line
    Case("validate-huge-line", ("validate", "huge.jsonl"),
         setup=write("huge.jsonl", HUGE_LINE + "\n"), exit=1, stderr=None),
    Case("validate-unknown-model", ("validate", "{data}/train.jsonl", "--model", "llama-3-8b"),
         exit=0, max_lines=0),
    Case("validate-max-findings-negative", ("validate", "{data}/train.jsonl",
                                            "--max-findings", "-1"), stderr="--max-findings"),
    Case("cost-huge-line", ("cost", "huge.jsonl"), setup=write("huge.jsonl", HUGE_LINE + "\n"),
         stderr="is a chat example"),
    # a model without a training price: the token count is still printed, exit 0
    Case("cost-model-without-price", ("cost", "{data}/train.jsonl", "--model", "gpt-4"),
         exit=0, stderr="price unknown"),
    Case("cost-unknown-model", ("cost", "ok.jsonl", "--model", "nosuch-model"),
         setup=write("ok.jsonl", CHAT_LINE), exit=0, stderr="price unknown", max_lines=3),
    Case("cost-epochs-zero", ("cost", "{data}/train.jsonl", "--epochs", "0"), stderr="--epochs"),
    Case("cost-epochs-malformed", ("cost", "{data}/train.jsonl", "--epochs", "three"),
         stderr="--epochs"),
    Case("cost-prices-missing", ("cost", "{data}/train.jsonl", "--prices", "nosuch.toml"),
         stderr="no such file"),
    Case("cost-prices-broken", ("cost", "{data}/train.jsonl", "--prices", "p.toml"),
         setup=write("p.toml", PRICES_BROKEN), stderr="invalid TOML"),
    Case("cost-prices-binary", ("cost", "{data}/train.jsonl", "--prices", "p.toml"),
         setup=write("p.toml", BINARY), stderr="p.toml"),
]
