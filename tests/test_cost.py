"""`persona cost`: billed tokens, default epochs, the dated price table and its override."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from persona.checks import tokens
from persona.checks.cost import (
    PriceTable,
    cost_file,
    default_epochs,
    distribution,
    generation_cost,
    load_prices,
)
from persona.cli import cli
from persona.errors import InputError

SYSTEM = {"role": "system", "content": "hello world"}


def example(words: int) -> dict:
    # "hello world" is 2 tokens; " hello" repeats as 1 token each in o200k and cl100k.
    return {
        "messages": [
            SYSTEM,
            {"role": "user", "content": "hello world"},
            {"role": "assistant", "content": "hello" + " hello" * (words - 1)},
        ]
    }


def tokens_of(words: int) -> int:
    return 3 + (3 + 1 + 2) + (3 + 1 + 2) + (3 + 1 + words)  # primer + 3 messages


def write(path, rows):
    path.write_text(
        "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows), encoding="utf-8"
    )
    return path


PRICES_TOML = """
as_of = 2030-01-01
source = "test"
[models."my-llama"]
training = 2.0
max_example_tokens = 30
[models."gpt-4o-mini"]
training = 10.0
max_example_tokens = 30
"""


@pytest.mark.parametrize(
    "n, epochs",
    [
        (1, 25),
        (2, 25),
        (5, 20),
        (10, 10),
        (33, 3),
        (34, 3),
        (40, 3),
        (3000, 3),
        (8333, 3),
        (8334, 2),
        (20000, 1),
    ],
)
def test_default_epochs_follow_openai(n, epochs):
    assert default_epochs(n) == epochs


def test_token_counts_are_exact():
    enc = tokens.get_encoding("o200k_base")
    for words in (1, 5, 40):
        assert tokens.chat_tokens(example(words)["messages"], enc) == tokens_of(words)


def test_cost_of_a_file(tmp_path):
    path = write(tmp_path / "d.jsonl", [example(5)] * 12)
    r = cost_file(path, "gpt-4o-mini")
    per_example = tokens_of(5)
    assert (r.examples, r.tokens, r.billed_tokens) == (12, 12 * per_example, 12 * per_example)
    assert (r.epochs, r.epochs_default, r.encoding, r.exact) == (8, True, "o200k_base", True)
    assert r.trained_tokens == 12 * per_example * 8
    assert r.cost == pytest.approx(r.trained_tokens * 3.00 / 1e6)
    assert (r.price_model, r.prices_as_of, r.warnings) == ("gpt-4o-mini", "2026-12-02", [])
    assert (
        cost_file(path, "gpt-4o-mini-2024-07-18", epochs=2).trained_tokens == 12 * per_example * 2
    )


def test_billed_tokens_are_capped_at_the_models_limit(tmp_path):
    prices = PriceTable.model_validate(
        {
            "as_of": "2030-01-01",
            "source": "t",
            "models": {"gpt-4o-mini": {"training": 10.0, "max_example_tokens": 30}},
        }
    )
    path = write(tmp_path / "d.jsonl", [example(1)] * 9 + [example(40)])
    r = cost_file(path, "gpt-4o-mini", epochs=1, prices=prices)
    assert r.tokens == 9 * tokens_of(1) + tokens_of(40)
    assert (r.billed_tokens, r.examples_over_limit) == (9 * tokens_of(1) + 30, 1)
    assert any("exceed 30 tokens" in w for w in r.warnings)


def test_unparseable_lines_are_skipped_and_warned_about(tmp_path):
    rows = [example(3)] * 10 + ["{broken", "", "[1]", {"messages": "x"}, example(3)]
    r = cost_file(write(tmp_path / "d.jsonl", rows), "gpt-4o-mini")
    assert (r.examples, r.skipped, r.skipped_lines) == (11, 3, [11, 13, 14])
    assert "3 line(s) are not chat examples" in r.warnings[0]
    assert "line 11, 13, 14" in r.warnings[0]


def test_distribution():
    assert distribution(list(range(1, 21))) == {
        "min": 1,
        "mean": 10.5,
        "median": 10.5,
        "p95": 19,
        "max": 20,
    }
    assert distribution([7]) == {"min": 7, "mean": 7.0, "median": 7, "p95": 7, "max": 7}


def test_nothing_to_count_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="empty file"):
        cost_file(write(tmp_path / "e.jsonl", []), "gpt-4o-mini")
    with pytest.raises(InputError, match="none of the 2 lines"):
        cost_file(write(tmp_path / "b.jsonl", ["{", "[]"]), "gpt-4o-mini")


def test_unpriced_model_still_counts_tokens(tmp_path):
    r = cost_file(write(tmp_path / "d.jsonl", [example(1)]), "llama")
    assert r.tokens > 0 and r.trained_tokens == r.tokens * r.epochs
    assert r.cost is None and r.price_per_1m is None and r.price_model is None
    assert r.warnings[0].startswith("price unknown: no training price for 'llama'")
    assert not any("per-example token limit" in w for w in r.warnings)  # said once, above


def test_cost_cli_without_a_price_prints_tokens_and_exits_0(tmp_path):
    from tests.conftest import run_persona

    path = write(tmp_path / "d.jsonl", [example(1), example(2)])
    proc = run_persona("cost", path, "--model", "gpt-4", check=False)
    assert proc.returncode == 0, proc.stderr
    assert "price unknown" in proc.stderr and "Traceback" not in proc.stderr
    assert "trained tokens" in proc.stdout and "unknown (no price)" in proc.stdout


def test_shipped_price_table():
    prices = load_prices()
    assert prices.as_of.isoformat() == "2026-12-02" and prices.source
    expected = {
        "gpt-4o-mini": 3.00,
        "gpt-4o": 25.00,
        "gpt-4.1": 25.00,
        "gpt-4.1-mini": 5.00,
        "gpt-4.1-nano": 1.50,
        "gpt-3.5-turbo": 8.00,
    }
    assert {m: prices.lookup(m)[1].training for m in expected} == expected
    assert prices.lookup("gpt-4o-mini")[1].max_example_tokens == 65536
    assert prices.lookup("gpt-3.5-turbo-0125")[1].max_example_tokens == 16385
    assert prices.lookup("gpt-4o-2024-08-06")[0] == "gpt-4o"


def test_generation_cost():
    assert generation_cost("gpt-4o-mini", 1_000_000, 1_000_000) == pytest.approx(0.75)
    assert generation_cost("gpt-4o", 2_000_000, 500_000, batch_api=True) == pytest.approx(5.0)
    assert generation_cost("gpt-4.1-nano", 10_000_000, 0) == pytest.approx(1.0)
    assert generation_cost("gpt-3.5-turbo", 1, 1) is None  # no inference price in the table
    assert generation_cost("mystery", 1, 1) is None


@pytest.mark.parametrize(
    "text, match",
    [
        (
            "as_of = 2030-01-01\nsource = 't'\n[models.x]\ntraining = 1\nfoo = 2\n",
            "models.x: unknown key `foo`",
        ),
        ("as_of = 2030-01-01\nsource = 't'\n[models.x]\ntraining = 'cheap'\n", "models.x.training"),
        ("source = 't'\n[models.x]\ntraining = 1\n", "as_of: Field required"),
        ("as_of = [", "invalid TOML"),
    ],
)
def test_bad_price_file_is_one_clear_error(tmp_path, text, match):
    (tmp_path / "p.toml").write_text(text)
    with pytest.raises(InputError, match=match):
        load_prices(tmp_path / "p.toml")


def test_cli_cost_json_with_price_override_and_approximation(tmp_path):
    (tmp_path / "p.toml").write_text(PRICES_TOML)
    path = write(tmp_path / "d.jsonl", [example(2)] * 10)
    result = CliRunner().invoke(
        cli,
        [
            "cost",
            str(path),
            "--model",
            "my-llama",
            "--prices",
            str(tmp_path / "p.toml"),
            "--epochs",
            "4",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert (data["exact"], data["encoding"], data["epochs"], data["epochs_default"]) == (
        False,
        "o200k_base",
        4,
        False,
    )
    assert data["trained_tokens"] == 10 * tokens_of(2) * 4
    assert data["cost"] == pytest.approx(data["trained_tokens"] * 2.0 / 1e6)
    assert data["prices_as_of"] == "2030-01-01"
    assert "approximate" in data["warnings"][-1] and "approximate" in result.stderr


def test_cli_cost_table_marks_approximate_figures(tmp_path):
    (tmp_path / "p.toml").write_text(PRICES_TOML)
    path = write(tmp_path / "d.jsonl", [example(2)] * 10)
    runner = CliRunner()
    approx = runner.invoke(
        cli, ["cost", str(path), "-m", "my-llama", "--prices", str(tmp_path / "p.toml")]
    )
    exact = runner.invoke(cli, ["cost", str(path)])
    assert approx.exit_code == exact.exit_code == 0
    assert f"≈{10 * tokens_of(2) * 10:,}" in approx.stdout  # 10 epochs by default for 10
    assert "≈" not in exact.stdout and "2026-12-02" in exact.stdout


def test_cli_cost_errors_exit_2(tmp_path):
    runner = CliRunner()
    path = write(tmp_path / "d.jsonl", [example(2)] * 10)
    (tmp_path / "bad.toml").write_text("as_of = 2030-01-01\nsource='t'\nmodels = {}\nextra = 1\n")
    for args in (
        ["cost", str(tmp_path / "nope.jsonl")],
        ["cost", str(path), "--prices", str(tmp_path / "bad.toml")],
        ["cost", str(path), "--prices", str(tmp_path / "missing.toml")],
    ):
        result = runner.invoke(cli, args)
        assert result.exit_code == 2, (args, result.output)
        assert result.stderr.startswith("error: ") and len(result.stderr.splitlines()) == 1


def test_help_names_every_option():
    result = CliRunner().invoke(cli, ["cost", "--help"])
    for option in ("--model", "--epochs", "--prices", "--json"):
        assert option in result.output


def test_a_model_name_that_only_begins_like_one_is_not_priced_as_it(tmp_path):
    prices = load_prices()
    assert prices.lookup("gpt-4o-minii") is None  # a typo, not a snapshot of gpt-4o
    assert prices.lookup("gpt-4o-mini-2024-07-18")[0] == "gpt-4o-mini"
    assert prices.lookup("ft:gpt-4o-mini-2024-07-18:acme::x1")[0] == "gpt-4o-mini"
    from tests.conftest import run_persona

    path = write(tmp_path / "d.jsonl", [example(1), example(2)])
    proc = run_persona("cost", path, "--model", "gpt-4o-minii", check=False)
    assert proc.returncode == 0 and "did you mean gpt-4o-mini?" in " ".join(proc.stderr.split())
