"""Bad inputs of the spec commands (personas, init) and of persona spec files themselves."""

from __future__ import annotations

import re

from persona.spec import builtin_path
from tests.bad_inputs import Case, mkdir, mkfifo, read_only_dir, write

BABIS = builtin_path("babis").read_text(encoding="utf-8")


def spec_with(pattern: str, replacement: str, count: int = 1) -> str:
    text, n = re.subn(pattern, replacement, BABIS, count=count, flags=re.M)
    assert n, f"pattern {pattern!r} not in babis.toml"
    return text


TYPO_KEY = spec_with(r"^slip_rate = ", "slip-rate = ")
NO_QUESTION_MARK = spec_with(r"^(questions = \[\s*\n\s*\"[^\"]*?)\?", r"\1.")
COUNT_TOO_LARGE = spec_with(r"^(\[grammar\]\n(?:#.*\n)*)count = \d+", r"\1count = 10000000")
NEVER_SLIPS = spec_with(r'^pattern = .*$', 'pattern = "ZZZ-never-matches"', count=0)


def run_spec(case_id: str, text: str, stderr: str, exit: int = 2, max_lines: int = 3,
             count: str = "60") -> Case:
    return Case(case_id, ("run", "--persona", "spec.toml", "--count", count),
                setup=write("spec.toml", text), stderr=stderr, exit=exit, max_lines=max_lines)


CASES: list[Case] = [
    Case("personas-unknown-option", ("personas", "--bogus"), stderr="no such option"),
    Case("init-bad-name", ("init", "Bad Name"), stderr="persona name"),
    Case("init-unknown-source", ("init", "mine", "--from", "nosuch"), stderr="unknown persona"),
    Case("init-exists", ("init", "mine"), setup=write("mine.toml", "keep me\n"),
         stderr="exists"),
    Case("init-output-is-a-folder", ("init", "mine", "--output", "adir"), setup=mkdir("adir"),
         stderr="--output"),
    Case("init-output-in-proc", ("init", "mine", "--output", "/proc/mine.toml"),
         stderr="/proc"),
    # A device or pipe where the spec should go: refused, never replaced by a regular file
    # (a pipe in the workspace, not /dev/null, so a regression cannot break the machine).
    Case("init-output-is-a-pipe", ("init", "mine", "--output", "pipe", "--force"),
         setup=mkfifo("pipe"), stderr="not a regular file"),
    Case("init-output-read-only-folder", ("init", "mine", "--output", "ro/mine.toml"),
         setup=read_only_dir("ro"), stderr="ro/mine.toml: cannot write there", read_only="ro"),
    Case("init-no-name", ("init",), stderr="missing argument"),
    # spec files that load but say something wrong: found at load time, the unknown key first
    run_spec("spec-unknown-key-typo", TYPO_KEY,
             "unknown key `slip-rate` (did you mean `slip_rate`?)"),
    run_spec("spec-question-frame-without-question-mark", NO_QUESTION_MARK, "journalist"),
    run_spec("spec-grammar-count-too-large", COUNT_TOO_LARGE, "grammar: count: 10000000"),
    # slip rules that never match: the run ends, but misses the slip rate the spec sets
    run_spec("spec-slip-rules-never-match", NEVER_SLIPS, "slips", exit=1, max_lines=12),
]
