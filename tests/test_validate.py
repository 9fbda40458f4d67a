"""`persona validate`: every finding OpenAI's upload would raise, by line; exit codes 0/1/2."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from click.testing import CliRunner

from persona.checks import tokens
from persona.checks.validate import validate_example, validate_file
from persona.cli import cli
from persona.errors import InputError


@pytest.fixture(scope="module")
def o200k():
    return tokens.get_encoding("o200k_base")


def chat(answer="To je kampaň! Andrej Babiš", **extra):
    return {
        "messages": [
            {"role": "system", "content": "Jsi Babiš."},
            {"role": "user", "content": "Co říkáte na kritiku?"},
            {"role": "assistant", "content": answer, **extra},
        ]
    }


def write(path, rows):
    path.write_text(
        "".join(
            (r if isinstance(r, str) else json.dumps(r, ensure_ascii=False)) + "\n" for r in rows
        ),
        encoding="utf-8",
    )
    return path


def codes(findings):
    return [(f.field, f.code) for f in findings]


def test_clean_example_has_no_findings(o200k):
    assert validate_example(chat(), max_tokens=65536, encoding=o200k) == []


def test_tool_calling_and_weights_are_valid(o200k):
    example = {
        "messages": [
            {"role": "user", "content": "Počasí?"},
            {
                "role": "assistant",
                "content": None,
                "weight": 0,
                "tool_calls": [
                    {
                        "id": "c1",
                        "type": "function",
                        "function": {"name": "weather", "arguments": "{}"},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "c1", "content": "slunečno"},
            {"role": "assistant", "content": "Slunečno.", "weight": 1},
        ],
        "tools": [{"type": "function", "function": {"name": "weather"}}],
        "parallel_tool_calls": False,
    }
    assert validate_example(example, max_tokens=65536, encoding=o200k) == []


@pytest.mark.parametrize(
    "obj, expected",
    [
        ([1, 2], [(None, "not_object")]),
        ({"prompt": "x"}, [("prompt", "unknown_key"), ("messages", "missing_messages")]),
        ({"messages": "hi"}, [("messages", "messages_not_list")]),
        ({"messages": []}, [("messages", "empty_messages")]),
        (
            {"messages": ["hi", {"role": "assistant", "content": "x"}]},
            [("messages[0]", "message_not_object")],
        ),
        (
            {"messages": [{"content": "x"}, {"role": "assistant", "content": "x"}]},
            [("messages[0].role", "missing_role")],
        ),
        (
            {
                "messages": [
                    {"role": "developer", "content": "x"},
                    {"role": "assistant", "content": "x"},
                ]
            },
            [("messages[0].role", "invalid_role")],
        ),
        (
            {
                "messages": [
                    {"role": "user", "content": "x", "foo": 1},
                    {"role": "assistant", "content": "x"},
                ]
            },
            [("messages[0].foo", "unknown_key")],
        ),
        (
            {"messages": [{"role": "user"}, {"role": "assistant", "content": "x"}]},
            [("messages[0].content", "missing_content")],
        ),
        (
            {
                "messages": [
                    {"role": "user", "content": None},
                    {"role": "assistant", "content": "x"},
                ]
            },
            [("messages[0].content", "missing_content")],
        ),
        (
            {
                "messages": [
                    {"role": "user", "content": ["x"]},
                    {"role": "assistant", "content": "x"},
                ]
            },
            [("messages[0].content", "content_not_string")],
        ),
        (
            {
                "messages": [
                    {"role": "user", "content": "  "},
                    {"role": "assistant", "content": "x"},
                ]
            },
            [("messages[0].content", "empty_content")],
        ),
        ({"messages": [{"role": "user", "content": "x"}]}, [("messages", "missing_assistant")]),
        (
            {
                "messages": [
                    {"role": "user", "content": "x", "weight": 1},
                    {"role": "assistant", "content": "x"},
                ]
            },
            [("messages[0].weight", "weight_not_assistant")],
        ),
        (chat(weight=2), [("messages[2].weight", "invalid_weight")]),
        (chat(weight=True), [("messages[2].weight", "invalid_weight")]),
        (
            {
                "messages": [
                    {"role": "user", "content": "x", "name": 5},
                    {"role": "assistant", "content": "x"},
                ]
            },
            [("messages[0].name", "invalid_type")],
        ),
        (
            {
                "messages": [
                    {"role": "user", "content": "x"},
                    {"role": "tool", "content": "x"},
                    {"role": "assistant", "content": "x"},
                ]
            },
            [("messages[1].tool_call_id", "missing_tool_call_id")],
        ),
        (chat("Konec <|endoftext|> a <|im_start|>"), [("messages[2].content", "special_token")]),
    ],
)
def test_each_finding(obj, expected, o200k):
    assert codes(validate_example(obj, max_tokens=65536, encoding=o200k)) == expected


def test_special_tokens_are_the_encodings_own(o200k):
    cl100k = tokens.get_encoding("cl100k_base")
    fim = chat("<|fim_prefix|>")  # a cl100k special token; ordinary text for o200k
    assert codes(validate_example(fim, max_tokens=None, encoding=cl100k)) == [
        ("messages[2].content", "special_token")
    ]
    assert validate_example(fim, max_tokens=None, encoding=o200k) == []
    nested = chat(tool_calls=[{"function": {"arguments": "<|endofprompt|>"}}])
    assert codes(validate_example(nested, max_tokens=None, encoding=o200k)) == [
        ("messages[2].tool_calls[0].function.arguments", "special_token")
    ]


def test_token_limit_per_example(o200k):
    n = tokens.chat_tokens(chat()["messages"], o200k)
    assert validate_example(chat(), max_tokens=n, encoding=o200k) == []
    [finding] = validate_example(chat(), max_tokens=n - 1, encoding=o200k)
    assert (finding.code, finding.field) == ("too_many_tokens", "messages")
    assert f"{n:,} tokens" in finding.message


def test_file_findings_carry_line_numbers(tmp_path):
    path = write(tmp_path / "d.jsonl", [chat()] * 10 + ["", "{broken", chat(weight=3)])
    with open(path, "ab") as fh:
        fh.write(b'{"messages": "\xff"}\n')
    report = validate_file(path)
    assert [(f.line, f.code) for f in report.findings] == [
        (11, "blank_line"),
        (12, "invalid_json"),
        (13, "invalid_weight"),
        (14, "not_utf8"),
    ]
    assert (report.lines, report.examples, report.max_tokens) == (14, 11, 65536)
    assert report.max_example_tokens == tokens.chat_tokens(
        chat()["messages"], tokens.get_encoding("o200k_base")
    )


def test_fewer_than_ten_examples_is_a_finding(tmp_path):
    report = validate_file(write(tmp_path / "d.jsonl", [chat()] * 9))
    assert [(f.line, f.code) for f in report.findings] == [(None, "too_few_examples")]
    assert validate_file(write(tmp_path / "e.jsonl", [chat()] * 10)).ok


def test_limit_comes_from_the_models_table(tmp_path):
    long = chat("slovo " * 17_000)
    path = write(tmp_path / "d.jsonl", [long] + [chat()] * 9)
    assert validate_file(path, model="gpt-4o-mini").ok
    report = validate_file(path, model="gpt-3.5-turbo-0125")
    assert (report.max_tokens, report.encoding) == (16385, "cl100k_base")
    assert [(f.line, f.code) for f in report.findings] == [(1, "too_many_tokens")]


def test_unknown_model_is_marked_approximate_and_unlimited(tmp_path):
    report = validate_file(write(tmp_path / "d.jsonl", [chat()] * 10), model="my-llama")
    assert (report.exact, report.encoding, report.max_tokens, report.ok) == (
        False,
        "o200k_base",
        None,
        True,
    )


def test_max_findings_keeps_counting(tmp_path):
    report = validate_file(write(tmp_path / "d.jsonl", ["{"] * 30), max_findings=5)
    assert len(report.findings) == 5 and report.n_findings == 31  # + too_few_examples
    assert report.to_dict()["findings_truncated"] is True


@pytest.mark.parametrize("content", [b"", b"\n\n"])
def test_empty_file_cannot_be_read_as_a_dataset(tmp_path, content):
    (tmp_path / "e.jsonl").write_bytes(content)
    with pytest.raises(InputError, match="empty file"):
        validate_file(tmp_path / "e.jsonl")


def test_cli_exit_codes_and_json(tmp_path):
    runner = CliRunner()
    clean = write(tmp_path / "clean.jsonl", [chat()] * 10)
    result = runner.invoke(cli, ["validate", str(clean)])
    assert result.exit_code == 0, result.output
    assert "no problems found" in result.output

    broken = write(tmp_path / "broken.jsonl", [chat()] * 10 + ["{oops"])
    result = runner.invoke(cli, ["validate", str(broken)])
    assert result.exit_code == 1 and "invalid_json" in result.output

    result = runner.invoke(cli, ["validate", str(broken), "--json"])
    assert result.exit_code == 1
    data = json.loads(result.output)
    assert data["findings"] == [
        {
            "line": 11,
            "field": None,
            "code": "invalid_json",
            "message": data["findings"][0]["message"],
        }
    ]
    assert (data["ok"], data["examples"], data["counts"]) == (False, 10, {"invalid_json": 1})

    result = runner.invoke(cli, ["validate", str(tmp_path / "missing.jsonl")])
    assert result.exit_code == 2 and "no such file" in result.output


def test_help_names_every_option():
    result = CliRunner().invoke(cli, ["validate", "--help"])
    for option in ("--model", "--json", "--max-findings"):
        assert option in result.output


def test_unreadable_inputs_exit_2_with_one_line(tmp_path, tiktoken_cache):
    (tmp_path / "empty.jsonl").write_bytes(b"")
    (tmp_path / "binary.jsonl").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00")
    (tmp_path / "folder").mkdir()
    env = {**os.environ, "TIKTOKEN_CACHE_DIR": str(tiktoken_cache)}
    for name in ("empty.jsonl", "binary.jsonl", "missing.jsonl", "folder"):
        proc = subprocess.run(
            [sys.executable, "-m", "persona", "validate", str(tmp_path / name)],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
        )
        assert proc.returncode == 2, (name, proc.stderr)
        assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
        assert proc.stderr.startswith("error: ") and "Traceback" not in proc.stderr


def test_check_commands_do_not_import_torch():
    code = "import sys, persona.cli.checks; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], timeout=60).returncode == 0


def test_cli_says_plainly_when_the_token_limit_is_unknown(tmp_path):
    path = write(tmp_path / "d.jsonl", [chat(f"Odpověď {i}. Andrej Babiš") for i in range(10)])
    known = CliRunner().invoke(cli, ["validate", str(path)], terminal_width=400)
    assert "limit 65,536 tokens per example" in known.output
    unknown = CliRunner().invoke(cli, ["validate", str(path), "--model", "llama-3-8b"],
                                 terminal_width=400)
    assert unknown.exit_code == 0
    assert ("token limit unknown for llama-3-8b: per-example length not checked"
            in unknown.output)
