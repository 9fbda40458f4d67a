"""Bad inputs of the generation commands: templates, fill, questions, merge, run."""

from __future__ import annotations

from tests.bad_inputs import (
    BINARY,
    NOT_UTF8,
    Case,
    closed_port,
    hold_lock,
    mkdir,
    write,
)

PORT = closed_port()
SERVER_DOWN = ("--provider", "openai", "--base-url", f"http://127.0.0.1:{PORT}/v1",
               "--timeout", "2")

CASES: list[Case] = [
    # workspace paths that cannot be a workspace
    Case("run-workspace-proc", ("run", "--count", "10", "--workspace", "/proc/x"),
         stderr="cannot use as a workspace"),
    Case("run-workspace-dev-null", ("run", "--count", "10", "--workspace", "/dev/null"),
         stderr="not a folder"),
    Case("run-workspace-sys", ("run", "--count", "10", "--workspace", "/sys/kernel"),
         stderr="cannot use as a workspace"),
    Case("run-workspace-is-a-file", ("run", "--count", "10", "--workspace", "afile"),
         setup=write("afile", "x"), stderr="is a file"),
    Case("fill-workspace-proc", ("fill", "--workspace", "/proc/x"),
         stderr="cannot use as a workspace"),
    Case("merge-workspace-dev-null", ("merge", "--workspace", "/dev/null"),
         stderr="not a folder"),
    # flag values
    Case("run-count-zero", ("run", "--count", "0"), stderr="--count"),
    Case("run-count-negative", ("run", "--count", "-5"), stderr="--count"),
    Case("run-count-not-a-number", ("run", "--count", "many"), stderr="--count"),
    Case("run-split-not-summing-to-1", ("run", "--split", "0.5", "0.5", "0.5"),
         stderr="sum to 1"),
    Case("run-split-negative", ("run", "--split", "1.2", "-0.1", "-0.1"), stderr="--split"),
    Case("run-split-malformed", ("run", "--split", "a", "b", "c"), stderr="--split"),
    Case("run-batch-size-zero", ("run", "--batch-size", "0"), stderr="--batch-size"),
    Case("run-seed-not-a-number", ("run", "--seed", "x"), stderr="--seed"),
    Case("run-unknown-provider", ("run", "--provider", "bogus"), stderr="--provider"),
    Case("run-rpm-zero", ("run", "--rpm", "0"), stderr="--rpm"),
    Case("run-concurrency-zero", ("run", "--concurrency", "0"), stderr="--concurrency"),
    Case("run-timeout-negative", ("run", "--timeout", "-1"), stderr="--timeout"),
    Case("run-max-cost-unknown-model", ("run", "--provider", "openai", "--base-url",
                                        f"http://127.0.0.1:{PORT}/v1", "--model", "nosuch-llm",
                                        "--max-cost", "1", "--count", "5"),
         stderr="price"),
    Case("templates-count-zero", ("templates", "--count", "0"), stderr="--count"),
    Case("merge-count-zero", ("merge", "--count", "0"), stderr="--count"),
    Case("fill-unknown-option", ("fill", "--bogus"), stderr="no such option"),
    # personas and spec files
    Case("run-unknown-persona", ("run", "--persona", "nosuch"), stderr="unknown persona"),
    Case("run-persona-file-missing", ("run", "--persona", "missing.toml"),
         stderr="no such file"),
    Case("run-persona-is-a-folder", ("run", "--persona", "spec.toml"), setup=mkdir("spec.toml"),
         stderr="not a file"),
    Case("run-persona-binary", ("run", "--persona", "spec.toml"),
         setup=write("spec.toml", BINARY), stderr="not UTF-8"),
    Case("run-persona-not-utf8", ("run", "--persona", "spec.toml"),
         setup=write("spec.toml", NOT_UTF8), stderr="not UTF-8"),
    Case("run-persona-empty", ("run", "--persona", "spec.toml"), setup=write("spec.toml", ""),
         stderr="spec.toml"),
    Case("run-persona-broken-toml", ("run", "--persona", "spec.toml"),
         setup=write("spec.toml", "[persona\nid = 1\n"), stderr="invalid TOML"),
    Case("run-persona-huge-line", ("run", "--persona", "spec.toml"),
         setup=write("spec.toml", 'huge = "' + "a" * 2_000_000 + '"\n'),
         stderr="unknown key `huge`"),
    Case("run-persona-device", ("run", "--persona", "/dev/null"), stderr="/dev/null"),
    # a server that is down
    Case("run-server-down", ("run", "--count", "5", *SERVER_DOWN), stderr="cannot connect",
         max_lines=4),
    Case("templates-server-down", ("templates", *SERVER_DOWN), stderr="cannot connect",
         max_lines=4),
    Case("run-no-api-key", ("run", "--count", "5", "--provider", "openai"),
         stderr="no API key", max_lines=4),
    # a stage run before its input
    Case("fill-before-templates", ("fill", "--count", "10"), stderr="run `persona templates`",
         max_lines=5),
    Case("questions-before-fill", ("questions",), stderr="run `persona fill`", max_lines=5),
    Case("merge-before-questions", ("merge",), stderr="run `persona questions`", max_lines=4),
    # an earlier run in the workspace: refused, and none of its files changed
    Case("run-other-settings-than-earlier-run", ("run", "--count", "61"), workspace=True,
         stderr="other settings", max_lines=6),
    Case("fill-broken-template-bank", ("fill", "--count", "60"), workspace=True,
         setup=write("templates/babis.jsonl", '{"id": "t1", "text": \n'),
         stderr="templates/babis.jsonl:1", max_lines=5),
    Case("fill-binary-template-bank", ("fill", "--count", "60"), workspace=True,
         setup=write("templates/babis.jsonl", BINARY), stderr="binary", max_lines=5),
    # two commands on one workspace
    Case("run-on-locked-workspace", ("run", "--count", "60"), workspace=True,
         setup=hold_lock("persona run"), stderr="in use by pid", max_lines=4),
    Case("merge-on-locked-workspace", ("merge",), workspace=True,
         setup=hold_lock("persona fill"), stderr="persona fill, since", max_lines=4),
]
