"""Today's models: parameters per family, a server's refusals adapted once, reasoning and
cached tokens counted and priced, prices and shutdown dates as data."""

import json
from datetime import date

import pytest

from persona.checks.prices import lifecycle, load_prices
from persona.errors import ProviderError
from persona.providers.models import RequestShape, family_of, parse_params
from tests.servers.openai_compat import serve
from tests.test_llm_provider import run_llm, with_bank

ASK = {"temperature": 0.9, "max_tokens": 512}


@pytest.mark.parametrize("model, family", [
    ("gpt-5.4-mini", "gpt-5.4"), ("gpt-5.4-mini-2026-03-17", "gpt-5.4"), ("gpt-5.2", "gpt-5.4"),
    ("gpt-5.1", "gpt-5.1"), ("gpt-5", "gpt-5"), ("gpt-5-mini", "gpt-5"),
    ("gpt-5.6-luna", "gpt-5.6"), ("gpt-6-astra", "gpt-6"), ("o4-mini", "o-series"),
    ("ft:gpt-4o-mini:acme::x1", "gpt-4.1"), ("gpt-4.1-nano", "gpt-4.1"),
    ("gpt-3.5-turbo", "legacy"), ("llama3.1", None), ("gpt-5.44", None),
])
def test_a_model_belongs_to_its_family(model, family):
    fam = family_of(model)
    assert (fam.name if fam else None) == family


def test_the_parameters_sent_follow_the_family():
    # gpt-5.4 at its lowest effort ("none") takes a temperature; reasoning needs no room
    assert RequestShape("gpt-5.4-mini").wire(ASK) == {
        "temperature": 0.9, "max_completion_tokens": 512, "reasoning_effort": "none"}
    # with reasoning on, no temperature, and room for the reasoning in the limit
    assert RequestShape("gpt-5.4-mini", "low").wire(ASK) == {
        "max_completion_tokens": 512 + 1024, "reasoning_effort": "low"}
    assert RequestShape("gpt-5.5").wire(ASK) == {"max_completion_tokens": 512,
                                                 "reasoning_effort": "none"}
    assert RequestShape("gpt-6-astra").wire(ASK)["reasoning_effort"] == "low"  # no "none"
    assert RequestShape("gpt-4o-mini").wire(ASK) == ASK
    assert RequestShape("llama3.1", extra={"top_k": 40}).wire(ASK) == {**ASK, "top_k": 40}
    with pytest.raises(ProviderError, match="takes none, low, medium, high, xhigh"):
        RequestShape("gpt-5.4-mini", "minimal")
    with pytest.raises(ProviderError, match="not a reasoning model"):
        RequestShape("gpt-4o-mini", "low")
    assert parse_params(["top_k=40", "stop=[\"\\n\"]", "name=x"]) == {
        "top_k": 40, "stop": ["\n"], "name": "x"}
    with pytest.raises(ProviderError, match="expected KEY=VALUE"):
        parse_params(["top_k"])


def test_a_refused_parameter_is_adapted_once():
    shape = RequestShape("gpt-7-mini")  # newer than the table: today's parameters
    assert shape.wire(ASK) == ASK
    assert shape.adapt("unsupported_parameter", "max_tokens", "Use 'max_completion_tokens'")
    assert shape.adapt("unsupported_value", "temperature", "Only the default (1)")
    assert shape.wire(ASK) == {"max_completion_tokens": 512}
    assert shape.adapt("unsupported_parameter", "max_tokens", "again") is None  # done already
    assert shape.adapt("invalid_request_error", "messages", "bad") is None  # not ours to fix
    effort = RequestShape("gpt-6-sol")
    assert effort.adapt("unsupported_value", "reasoning_effort",
                        "Unsupported value: 'reasoning_effort' does not support 'low' with this "
                        "model. Supported values are: 'medium', and 'high'.")
    assert effort.effort == "medium" and len(effort.notes) == 1
    assert shape.reasoned(600) and shape.wire(ASK)["max_completion_tokens"] == 512 + 2048


def test_prices_and_shutdown_dates_are_data():
    prices = load_prices()
    name, p = prices.lookup("gpt-5.4-mini-2026-03-17")
    assert name == "gpt-5.4-mini" and (p.input, p.cached_input, p.output) == (0.75, 0.075, 4.5)
    # 1M input of which 400k cached, 100k output
    assert p.usd(1_000_000, 100_000, 400_000) == pytest.approx(0.6 * 0.75 + 0.4 * 0.075 + 0.45)
    today = date(2026, 12, 2)
    assert lifecycle("gpt-3.5-turbo", today)[0] == (
        "model 'gpt-3.5-turbo' was shut down by OpenAI on 2026-10-23; use gpt-5.6-terra "
        "instead (--model)")
    assert lifecycle("gpt-5-mini", today) == (None, (
        "model 'gpt-5-mini' will be shut down by OpenAI on 2026-12-11, in 9 days; use "
        "gpt-5.6-terra instead"))
    assert lifecycle("gpt-4o-mini", today) == lifecycle("my-local-model", today) == (None, None)
    assert "gpt-5.4-mini" in prices.priced() and "gpt-3.5-turbo" not in prices.priced()


# -- against the server that enforces OpenAI's rules ---------------------------------------

def test_a_run_on_gpt_5_4_mini_sends_nothing_the_api_refuses(tmp_path):
    ws = with_bank(tmp_path / "ws")
    with serve(openai_rules=True, seed=6) as srv:
        proc = run_llm(srv, ws, "run", "--count", 100, "--model", "gpt-5.4-mini",
                       "--max-cost", 1)
        none = srv.stats()
        low = run_llm(srv, with_bank(tmp_path / "low"), "fill", "--count", 20,
                      "--batch-size", 20, "--model", "gpt-5.4-mini",
                      "--reasoning-effort", "low")
        after = srv.stats()
    assert "400" not in none["by_status"] and "400" not in after["by_status"]
    report = json.loads((ws / "final" / "babis" / "report.json").read_text())
    params = report["stages"]["llm_params"]
    assert (params["family"], params["reasoning_effort"], params["adapted"]) == (
        "gpt-5.4", "none", [])
    assert params["host"].startswith("127.0.0.1:") and "sk-" not in json.dumps(params)
    assert report["stages"]["llm_usage"]["fill"]["cost_usd"] > 0
    assert "reasoning" not in proc.stderr
    assert "reasoning" in low.stderr  # reasoning tokens counted in the cost line
    entries = [json.loads(line) for line in (tmp_path / "low" / "generated" / "babis" /
                                             "cache" / "requests.jsonl").read_text().splitlines()]
    requests = sum(1 for e in entries if e.get("group", [0])[0] == 0)  # items share a request
    assert sum(e["usage"]["reasoning_tokens"] for e in entries) == 300 * requests


def test_a_model_newer_than_the_table_is_adapted_once_not_refused_every_time(tmp_path):
    """gpt-7 (unknown to persona's table) refuses max_tokens and a temperature, and reasons:
    the run adapts (said in one line each, and in the report) and finishes; refusals stay
    within the requests that were already out when the first came back."""
    ws = with_bank(tmp_path / "ws")
    with serve(openai_rules=True) as srv:
        proc = run_llm(srv, ws, "run", "--count", 40, "--model", "gpt-7-mini",
                       "--concurrency", 8)
        stats = srv.stats()
    refused = stats["by_status"].get("400", 0)
    assert 2 <= refused <= 2 * 8
    assert proc.stderr.count("adapted:") == 3, proc.stderr
    report = json.loads((ws / "final" / "babis" / "report.json").read_text())
    assert report["count"] == 40
    adapted = report["stages"]["llm_params"]["adapted"]
    assert adapted[0] == "max_tokens refused: sending max_completion_tokens"
    assert adapted[1].startswith("temperature not sent: Unsupported value")
    assert "parameters adapted to the server" in (ws / "final" / "babis" /
                                                  "DATASET_CARD.md").read_text()


def test_an_answer_reasoning_ate_is_asked_again_with_a_higher_limit_once(tmp_path):
    ws = with_bank(tmp_path / "ws")
    with serve(openai_rules=True) as srv:  # "high" spends 9,000 tokens: more than the room
        proc = run_llm(srv, ws, "fill", "--count", 10, "--batch-size", 10, "--model",
                       "gpt-5.4-mini", "--reasoning-effort", "high")
    assert "answers cut by the token limit" in " ".join(proc.stderr.split())  # lines wrap
    from persona.providers.llm_cache import usage_by_kind

    usage = usage_by_kind(ws / "generated" / "babis" / "cache")["fill"]
    assert usage["cut"] >= 10 and usage["items"] >= 20 and usage["reasoning_tokens"] > 0
    answers = (ws / "generated" / "babis" / "answers" / "batch_0001.jsonl").read_text()
    assert len(answers.splitlines()) == 10


def test_a_prompt_cache_hit_is_read_and_priced_as_cached():
    """The server reports a 1,024-token prefix seen before; the pool prices it as cached."""
    from persona.providers.request_pool import RequestPool, read_usage

    resp = {"usage": {"prompt_tokens": 2000, "completion_tokens": 100,
                      "prompt_tokens_details": {"cached_tokens": 1536},
                      "completion_tokens_details": {"reasoning_tokens": 40}}}
    usage = read_usage(resp)
    assert usage == {"prompt_tokens": 2000, "completion_tokens": 100, "cached_tokens": 1536,
                     "reasoning_tokens": 40}
    pool = RequestPool(base_url=None, api_key="k", model="gpt-5.4-mini",
                       price=(0.75, 4.5, 0.075))
    assert pool.cost(usage) == pytest.approx((464 * 0.75 + 1536 * 0.075 + 100 * 4.5) / 1e6)
