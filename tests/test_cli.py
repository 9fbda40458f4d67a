import subprocess
import sys
import tomllib

import pytest

from persona.cli import cli as group
from persona.spec import load_spec
from tests.conftest import run_persona


def test_every_command_has_help(cli):
    top = cli("--help").output
    for name in ("templates", "fill", "questions", "merge", "run", "validate", "cost",
                 "personas", "init"):
        assert name in top
        assert "Usage:" in cli(name, "--help").output
    run_help = cli("run", "--help").output
    for option in ("--persona", "--count", "--workspace", "--seed", "--json", "--provider",
                   "--force", "--split", "--batch-size", "--templates"):
        assert option in run_help


def test_help_does_not_import_torch_or_openai():
    code = ("import sys; from persona.cli import main; sys.argv=['persona','--help'];\n"
            "try: main()\nexcept SystemExit: pass\n"
            "assert 'torch' not in sys.modules and 'openai' not in sys.modules, 'heavy import'")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_the_lazy_command_table_matches_the_modules():
    """Every command of every persona/cli module is in LAZY_COMMANDS under its own module,
    and a plain command loads neither the training nor the bench module."""
    import importlib
    import pkgutil

    import persona.cli as pkg
    from persona.cli import LAZY_COMMANDS

    found = {c.name: m.name for m in pkgutil.iter_modules(pkg.__path__)
             for c in getattr(importlib.import_module(f"persona.cli.{m.name}"), "COMMANDS", [])}
    assert found == LAZY_COMMANDS
    code = ("import sys; from persona.cli import main; sys.argv=['persona','personas'];\n"
            "try: main()\nexcept SystemExit: pass\n"
            "assert not {'persona.cli.train', 'persona.cli.bench'} & set(sys.modules)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_python_dash_m_and_version():
    assert "Usage:" in run_persona("--help").stdout
    assert "persona" in run_persona("--version").stdout


def test_personas_lists_builtins(cli):
    out = cli("personas").output
    assert "babis" in out and "Andrej Babiš" in out


def test_init_writes_a_spec_that_runs(tmp_path, cli):
    target = tmp_path / "mine.toml"
    cli("init", "mine", "--from", "babis", "--output", target)
    spec = load_spec(target)
    assert spec.id == "mine"
    assert tomllib.loads(target.read_text(encoding="utf-8"))["persona"]["id"] == "mine"
    again = cli("init", "mine", "--from", "babis", "--output", target, ok=False)
    assert again.exit_code == 2 and "--force" in again.output
    bad = cli("init", "Bad Name", ok=False)
    assert bad.exit_code == 2
    cli("run", "--persona", target, "--count", 50, "--workspace", tmp_path / "ws")
    assert (tmp_path / "ws/final/mine/train.jsonl").is_file()


def test_json_output_is_json(tmp_path, cli):
    import json

    out = cli("run", "--count", 60, "--workspace", tmp_path, "--json").stdout
    report = json.loads(out)
    assert report["count"] == 60 and report["unresolved_placeholders"] == 0


@pytest.mark.parametrize("command", ["fill", "questions", "merge"])
def test_stage_without_its_input_is_a_clear_error(tmp_path, command):
    proc = run_persona(command, "--workspace", tmp_path, check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and "first" in last, proc.stderr


def test_group_is_importable_without_side_effects():
    assert group.name in ("cli", "persona")


def test_init_from_a_spec_file_and_unknown_source(tmp_path, cli):
    first = tmp_path / "first.toml"
    cli("init", "first", "--from", "babis", "--output", first)
    second = tmp_path / "second.toml"
    cli("init", "second", "--from", first, "--output", second)
    assert load_spec(second).id == "second"
    bad = cli("init", "third", "--from", "nosuch", "--output", tmp_path / "t.toml", ok=False)
    assert bad.exit_code == 2 and "unknown persona" in bad.output


def test_chat_decoding_defaults_are_shown_and_checked(cli):
    from persona.finetune import chat

    text = " ".join(cli("chat", "--help").output.split())  # help wraps at any space
    assert "--repetition-penalty FLOAT RANGE" in text and "[default: 1.15; x>=1.0]" in text
    assert "--no-repeat-ngram INTEGER RANGE" in text and "[default: 4; x>=0]" in text
    assert (chat.REPETITION_PENALTY, chat.NO_REPEAT_NGRAM) == (1.15, 4)
    bad = cli("chat", "--model", "x", "--repetition-penalty", "0.5", ok=False)
    assert bad.exit_code == 2 and "--repetition-penalty" in bad.output
