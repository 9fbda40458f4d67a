"""Several items per request (--per-request K): the request as the model reads it, the same
items whatever K, only bad items asked again, tokens per pair, and pacing under --tpm."""

import json

import pytest

from persona.providers import llm_tasks as tasks
from persona.providers.base import FillRequest, QuestionRequest
from persona.providers.rate_limit import RateLimiter
from tests.conftest import ROOT
from tests.servers.openai_compat import serve
from tests.test_llm_provider import FINAL, run_llm, with_bank


@pytest.fixture(scope="module")
def bank(babis):
    from persona.stages import templates as templates_stage

    return templates_stage.load(ROOT / "templates" / "babis.jsonl", babis)


# -- the request as the model reads it -----------------------------------------------------

def test_a_grouped_fill_request_puts_the_static_part_first_and_one_task_per_line(babis, bank):
    reqs = [FillRequest(i, f"babis-a{i + 1:06d}", bank[i], "irony", False) for i in range(3)]
    shared = tasks.fill_shared(babis, 42, "irony", 0)
    items = [tasks.fill_member(babis, r, 42)[0] for r in reqs]
    system, user = tasks.group_messages(babis, "fill", shared, items)
    assert system["content"].startswith(
        "You write answers for a satirical persona style-transfer dataset. You speak as Andrej "
        f"Babiš. The persona: {babis.persona.description}\n\nWrite spoken Czech")
    static, block = user["content"].split("```json\n")
    assert static == (
        "Write an answer of Andrej Babiš for each of the `tasks`, all in the `style` given.\n"
        "- `style_examples`: the style's tone. An answer may reuse one (with `___`, a topic, "
        "filled in); no two answers the same one.\n"
        "- `closers` (if given): sentences that close an answer (a refusal, a wrap-up); one "
        "that is used comes last.\n"
        "- In each task, `about`: what the answer is about (use each of these words, inflected "
        "as needed); `may_use` (if given): more words it may use; `idea`: a thought to start "
        "from (take its content, not its tone or wording); `sentences`: how many sentences.\n"
        "The answers share no sentence and do not open the same way.\n\n"
        'Reply with JSON only: {"answers": [{"id": "<task id>", "text": "<answer>"}, ...]}, '
        "one per task, in order.\n\n")
    lines = block.removesuffix("\n```").split("\n")
    head = json.loads(lines[0].removesuffix(' "tasks": [').rstrip(",") + "}")
    assert head == shared and head["style"].startswith("irony: ")
    assert "___" in " ".join(head["style_examples"])  # topics are gaps, not other slots' values
    assert [json.loads(x.rstrip(",")) for x in lines[1:-1]] == items and lines[-1] == "]}"
    assert json.loads(block.removesuffix("\n```"))["tasks"] == items
    # every request of the stage starts with the same bytes, whatever its items and style
    other = tasks.group_messages(babis, "fill", tasks.fill_shared(babis, 42, "emotional", 3),
                                 items[:1])
    assert other[0] == system and other[1]["content"].startswith(static)
    # an item's own task holds no other slot's or style's material
    assert set(items[0]) <= {"id", "about", "may_use", "idea", "sentences"}


def test_a_grouped_questions_request_shares_examples_with_gaps(babis):
    answer = {"id": "babis-a000007", "text": "Dálnice? To je tragédie!\n\nAndrej Babiš",
              "values": {"tema": "dálnice"}}
    shared = tasks.question_shared(babis, 42, 0)
    first = tasks.question_member(babis, QuestionRequest(6, answer), 42)
    again = tasks.question_member(babis, QuestionRequest(6, answer, attempt=1), 42)
    assert first == {"id": "babis-a000007", "answer": "Dálnice? To je tragédie!",
                     "topics": {"tema": "dálnice"}}
    assert again["context"] is True and again["attempt"] == 1
    assert len(shared["examples"]) >= 4 and all("___" in e for e in shared["examples"])
    system, user = tasks.group_messages(babis, "questions", shared, [first])
    assert 'Reply with JSON only: {"questions": [{"id": "<task id>", "question": ' in \
        user["content"]
    assert json.loads(user["content"].split("```json\n")[1].removesuffix("\n```")) == {
        **shared, "tasks": [first]}


def test_a_grouped_answer_is_read_per_item_and_a_cut_one_keeps_its_complete_items():
    good = json.dumps({"answers": [{"id": "a", "text": "Jedna."}, {"id": "b", "txt": "?"},
                                   {"id": "c", "text": "Tři."}]}, ensure_ascii=False)
    assert tasks.read_group("fill", good) == {"a": '{"text": "Jedna."}',
                                              "c": '{"text": "Tři."}'}
    cut = good[: good.index("Tři") + 2]
    assert tasks.read_group("fill", cut) == {}
    assert tasks.read_group("fill", cut, partial=True) == {"a": '{"text": "Jedna."}'}
    assert tasks.read_group("questions", '{"questions": "no list"}') == {}


def test_a_429s_ratelimit_headers_set_the_pace():
    now = [100.0]
    lim = RateLimiter(tpm=None, clock=lambda: now[0])
    note = lim.told({"x-ratelimit-limit-tokens": "60000", "x-ratelimit-remaining-tokens": "12",
                     "x-ratelimit-reset-tokens": "1.5s"})
    assert note and "60,000" in note
    assert lim.tpm == pytest.approx(60000 * 0.97)
    assert lim.book(tokens=970) == pytest.approx(1.5)  # nothing before the bucket refills
    assert lim.book(tokens=970) == pytest.approx(2.5)  # then 970 tokens a second
    assert lim.told({"x-ratelimit-limit-tokens": "90000"}) is None  # a higher one: ours holds
    lim.correct(970)  # the server counted 970 more prompt tokens than we estimated
    assert lim.book(tokens=0) == pytest.approx(4.5)
    lim.correct(-1940)  # and later fewer: credited back
    assert lim.book(tokens=0) == pytest.approx(2.5)


# -- whole runs against the loopback server ------------------------------------------------

def _usage(ws):
    return json.loads((ws / "final" / "babis" / "report.json").read_text())["stages"][
        "llm_usage"]


def test_the_same_items_whatever_k_with_a_third_of_the_tokens(tmp_path):
    """K = 1 and K = 8 write the same bytes (an item's request part does not depend on its
    neighbours); K = 8 sends under a third of the input tokens per pair, as counted by the
    server."""
    runs = {}
    for k in (1, 8):
        ws = with_bank(tmp_path / f"k{k}")
        with serve(seed=3) as srv:
            run_llm(srv, ws, "run", "--count", 200, "--per-request", k)
            runs[k] = (ws, srv.stats())
    for name in FINAL:
        assert (runs[1][0] / "final" / "babis" / name).read_bytes() == \
            (runs[8][0] / "final" / "babis" / name).read_bytes(), name
    tokens = {k: sum(_usage(ws)[s]["prompt_tokens"] for s in ("fill", "questions"))
              for k, (ws, _) in runs.items()}
    assert tokens[8] * 3 <= tokens[1], tokens
    assert runs[8][1]["total"] * 4 < runs[1][1]["total"]


def test_malformed_items_are_asked_again_alone_and_the_good_ones_never(tmp_path):
    ws = with_bank(tmp_path / "ws")
    with serve(malformed_rate=0.2, seed=5) as srv:
        proc = run_llm(srv, ws, "run", "--count", 150, "--json")
        stats = srv.state.snapshot()
    report = json.loads(proc.stdout)
    usage = report["stages"]["llm_usage"]
    reasked = sum(usage[s]["malformed_reasked"] for s in ("fill", "questions"))
    items = sum(usage[s]["items"] for s in ("fill", "questions"))
    assert 0.12 * items <= reasked <= 0.3 * items  # about the 20 % made malformed
    # an item answered well-formed is never sent again
    assert all(stats["items"][d] == 1 for d in stats["answered_items"])
    assert report["count"] == 150


def test_a_tokens_per_minute_limit_holds_without_a_429_storm(tmp_path):
    """The server charges prompt + max_tokens on arrival against a 3-second bucket; --tpm
    paces under it: the run takes at most 1.15 x (tokens charged / TPM), few 429s."""
    ws = with_bank(tmp_path / "ws")
    tpm = 300_000
    with serve(tpm=tpm, tpm_depth=3, seed=2) as srv:
        run_llm(srv, ws, "run", "--count", 60, "--tpm", tpm, "--concurrency", 16)
        stats = srv.state.snapshot()
    span = stats["times"][-1] - stats["times"][0]
    ideal = stats["tpm_charged"] / tpm * 60
    assert ideal > 5  # the limit binds
    assert span <= 1.15 * ideal, (span, ideal)
    assert stats["by_status"].get("429", 0) <= 0.02 * stats["total"] + 1


def test_a_server_limit_learned_from_429_headers_paces_the_rest(tmp_path):
    """No --tpm: the first 429s' x-ratelimit-* headers teach the limit, then the run paces
    under it instead of retrying into it."""
    ws = with_bank(tmp_path / "ws")
    with serve(tpm=400_000, tpm_depth=1, seed=2) as srv:
        run_llm(srv, ws, "run", "--count", 60, "--concurrency", 16)
        stats = srv.state.snapshot()
    limited = stats["by_status"].get("429", 0)
    assert 0 < limited <= 0.25 * stats["total"] + 8
    assert (ws / "final" / "babis" / "all.jsonl").exists()
