"""The LLM path as a real model meets it: the model writes, the code checks everything.

Requests are read as the model gets them (exact strings); the normaliser and the checks are
held against what real models add (decorations, labels, markdown, refusals, other languages,
unreported slips) and against the offline grammar's text, which they must leave alone; whole
runs go against the loopback server writing in its own words and deviating.
"""

import importlib.util
import json
import shutil

import pytest

from persona.checks import answer as A
from tests.conftest import ROOT
from tests.servers.openai_compat import serve
from tests.test_llm_provider import assert_no_key, run_llm, with_bank


def llm_checks():
    """scripts/llm_checks.py, the independent counter of what a model leaves in a dataset."""
    spec = importlib.util.spec_from_file_location("llm_checks", ROOT / "scripts" /
                                                  "llm_checks.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


# -- the request as the model gets it ------------------------------------------------------

def test_a_slots_task_says_what_to_write_and_the_brief_what_is_checked(babis):
    """The task of one slot in a grouped fill request (the request around it:
    tests/test_per_request.py): values to name, the idea, a sentence range; no slip rule."""
    from persona.providers import llm_tasks as tasks
    from persona.providers.base import FillRequest
    from persona.stages import templates as templates_stage

    bank = templates_stage.load(ROOT / "templates" / "babis.jsonl", babis)
    task, brief = tasks.fill_member(babis, FillRequest(6, "babis-a000007", bank[5], "irony",
                                                       True), 42)
    assert task == {"id": "babis-a000007", "about": dict(brief.keys()), "idea": brief.idea,
                    "sentences": f"{brief.sentences[0]}-{brief.sentences[1]}"}
    assert set(task["about"]) == {"nepritel", "tema"} and brief.idea.count(".") >= 2
    # the slot's slip is the code's: no rule, no mention of slips in the task
    assert "slip" not in json.dumps(task)
    assert brief.checks("write") == {"required": brief.keys(),
                                     "sentences": list(brief.sentences), "template": brief.idea}
    again, _ = tasks.fill_member(babis, FillRequest(6, "babis-a000007", bank[5], "irony", True,
                                                    attempt=2), 42, reask=1)
    assert again["attempt"] == 2 and again["reask"] == 1


# -- normalising ---------------------------------------------------------------------------

SIG = "\n\nAndrej Babiš"


@pytest.mark.parametrize("raw, want", [
    ("```json\nAndrej Babiš: inflace je problém. za to můžou Piráti.\n```",
     "Inflace je problém. Za to můžou Piráti." + SIG),
    ("**Odpověď:** Inflace? to je tragédie! Já jsem makal.\n\n— *Andrej Babiš*",
     "Inflace? To je tragédie! Já jsem makal." + SIG),
    ("„Piráti jenom kecají, s státním rozpočtem nic neudělali.“\n\nS pozdravem,\nAndrej Babiš",
     "Piráti jenom kecají, se státním rozpočtem nic neudělali." + SIG),
    ("Andrej Babiš (ironie): No jasně, Piráti to vědí nejlíp. Andrej Babiš",
     "No jasně, Piráti to vědí nejlíp." + SIG),
    ("- Inflace je problém.\n- Piráti kecají.\n\nAndrej Babiš\n\nAndrej Babiš",
     "Inflace je problém. Piráti kecají." + SIG),
    ("> Podle tzv. expertů je inflace 5 %. v tom je problém.",
     "Podle tzv. expertů je inflace 5 %. V tom je problém." + SIG),
    # the persona's name inside a sentence is not a signature
    ("Já, Andrej Babiš, vám to říkám, to vám garantuje Andrej Babiš",
     "Já, Andrej Babiš, vám to říkám, to vám garantuje Andrej Babiš" + SIG),
])
def test_normalise_answer_strips_what_models_add(babis, raw, want):
    got = A.normalise_answer(raw, babis)
    assert got == want
    assert A.normalise_answer(got, babis) == got  # idempotent


def test_normalise_question_strips_labels_quotes_and_markdown(babis):
    assert A.normalise_question('**Otázka:** "pane Babiši, co s inflací?"', babis) == \
        "Pane Babiši, co s inflací?"
    assert A.normalise_question("Novinář: Co  uděláte s\nvalorizací?", babis) == \
        "Co uděláte s valorizací?"


def test_offline_text_passes_every_check_and_normalising_changes_no_byte(builtin_finals):
    """3,000 offline pairs of each built-in persona: the normaliser leaves every answer and
    question as it is, and no check finds anything (so the offline outputs stay the same
    bytes)."""
    from persona.spec import load_spec

    for final in builtin_finals:
        spec = load_spec(final.name)
        metas = [json.loads(x) for x in (final / "meta.jsonl").read_text().splitlines()]
        lines = (final / "all.jsonl").read_text(encoding="utf-8").splitlines()
        assert len(lines) == len(metas) == 3000
        for line, m in zip(lines, metas, strict=True):
            msgs = {x["role"]: x["content"] for x in json.loads(line)["messages"]}
            q, a = msgs["user"], msgs["assistant"]
            assert A.normalise_answer(a, spec) == a
            assert A.normalise_question(q, spec) == q
            assert A.answer_problems(a, spec, m["style"], slip=m["slip"]) == [], a
            assert A.question_problems(q, spec, m["values"]) == [], q


# -- judging -------------------------------------------------------------------------------

def problems(babis, text: str, **kw) -> list[str]:
    return A.answer_problems(A.normalise_answer(text, babis), babis, "irony", **kw)


def test_answer_checks_name_what_must_be_asked_again(babis):
    brief = {"required": {"tema": "inflace", "nepritel": "Piráti"}, "sentences": [2, 3],
             "template": "Piráti pořád mluví o inflaci, ale sami nikdy nic nepostavili."}
    good = "Inflace? No jasně, Piráti to zase vědí nejlíp. Já jim tleskám, fakt."
    assert problems(babis, good, brief=brief) == []
    assert problems(babis, "I'm sorry, but I can't help with that.")[0] == \
        "a refusal, not an answer"
    assert problems(babis, "Omlouvám se, ale s tímto požadavkem vám nemohu pomoci.") == \
        ["a refusal, not an answer"]
    assert problems(babis, "Inflation is the problem and the Pirates are to blame for it.") \
        == ["does not read as language 'cs'"]
    assert "does not read as language 'cs'" in problems(
        babis, "Inflácia je problém, lebo Piráti nič nerobia a ja som to vždy hovoril.")
    assert problems(babis, "Inflace je problém, lebo Piráti nic nedělají, že jo.") == \
        ["an unreported slip ('lebo')"]
    # a reported slip is the slip, not an unreported one
    assert problems(babis, "Inflace je problém, lebo Piráti nic nedělají, že jo.",
                    slip={"kind": "slovak", "from": "protože", "to": "lebo"}) == []
    assert problems(babis, "Piráti jsou prostě géniové, že jo. Já tleskám.", brief=brief) == \
        ["does not mention {tema} (inflace)"]
    # any form counts, and a form the model inflects its own way by its lemma
    assert problems(babis, "S inflacemi si Piráti vědí rady, že jo. Já tleskám.",
                    brief=brief) == []
    assert problems(babis, "Inflace. Piráti. To je ono. To je fakt. Já tleskám.",
                    brief=brief) == ["5 sentences, 2-3 asked"]
    copy = "Piráti pořád mluví o inflaci, ale sami nikdy nic nepostavili. No jasně."
    assert problems(babis, copy, brief=brief) == [
        "a copy of its template (100% of its word 4-grams)"]
    assert problems(babis, "To nebudu komentovat. Inflace a Piráti, to je jejich věc.") == [
        "'To nebudu komentovat.' ends the answer but more follows"]
    assert problems(babis, "Co to je za otázku? To je dobrá otázka, inflace.") == \
        ["clashing parts"]


def test_question_checks(babis):
    values = {"tema": "inflace", "nepritel": "neziskovky"}
    ok = "Pane Babiši, co uděláte s inflací, kterou kritizují neziskové organizace?"
    assert A.question_problems(ok, babis, values) == []
    assert A.question_problems("Co na to říkáte?", babis, values) == [
        "does not name the answer's topic (inflace)"]
    # naming only the critic is not naming the topic
    assert A.question_problems("Pane Babiši, co říkáte na neziskové organizace?", babis,
                               values) == ["does not name the answer's topic (inflace)"]
    assert A.question_problems("Vraťme se k inflaci. Pane Babiši, co jim vzkážete? A co dál?",
                               babis, values, max_sentences=2) == ["more than 2 sentences"]
    assert A.question_problems("Pane Babiši, proč neziskovky kritizují vaši inflaci?",
                               babis, values) == [
        "the journalist uses the persona's label 'neziskovk'"]
    assert A.question_problems("Mr Babiš, what about the inflation in the country?", babis,
                               values)[0] == "does not read as language 'cs'"
    assert A.question_key("Pane Babiši,  CO inflace?") == A.question_key("pane babiši co inflace")
    from persona.stages.questions import QuestionIndex

    index = QuestionIndex(babis)  # an LLM's questions: the address and a lead aside too
    index.add("Pane Babiši, máte konkrétní plán, jak naložit s inflací?")
    assert "Pane předsedo, máte konkrétní plán, jak naložit s inflací?" in index
    assert "Dovolte mi otázku k inflaci. Máte konkrétní plán, jak naložit s inflací?" in index
    index.add("Kritici tvrdí, že inflaci podceňujete. Mají pravdu?")
    assert "Piráti tvrdí, že daně podceňujete. Mají pravdu?" not in index  # a short tail
    exact = QuestionIndex()  # the offline grammar's rule: case and punctuation aside only
    exact.add("Pane Babiši, co inflace?")
    assert "pane babiši co inflace" in exact and "Pane předsedo, co inflace?" not in exact


def test_slip_markers_are_outputs_no_correct_text_has(babis):
    markers = {text: whole for _, text, whole in A.slip_markers(babis)}
    assert markers["lebo"] and markers["v palci"] and not markers["dignitalizac"]  # a stem
    # "som" (sumec, a catfish) and "nič" (ničit) are Czech words; "\\1ov" endings unknowable
    assert "som" not in markers and "nič" not in markers and "ov" not in markers
    own = " ".join(t for _, t in babis.fragments())
    assert A.unreported_slips(own, babis) == []
    assert A.unreported_slips("Lebo dignitalizace, a tím to zhasne.", babis) == [
        "Lebo", "dignitalizace", "tím to zhasne"]


def test_copy_ratio_counts_the_templates_own_wording(babis):
    values = {"nepritel": babis.placeholders["nepritel"].values[1],
              "tema": babis.placeholders["tema"].values[0]}
    template = "{nepritel.nom} pořád mluví o {tema.loc}, ale {nepritel@sami} nikdy nic " \
               "nepostavi{nepritel@li}."
    assert A.copy_ratio("Piráti pořád mluví o inflaci, ale sami nikdy nic nepostavili.",
                        template, babis, values) == 1.0
    assert A.copy_ratio("Piráti o inflaci jenom kecají.", template, babis, values) == 0.0
    assert A.copy_ratio("cokoliv", "{tema.nom}, [jo|ne].") is None  # no 4-gram of its own


# -- whole runs against the server ---------------------------------------------------------

def test_a_deviating_model_leaves_nothing_in_final(tmp_path):
    """The server deviates in a third of its answers and questions (decorated signatures,
    labels, markdown, quotes, refusals, lowercase, unreported slips, other languages;
    repeated, generic and labelled questions): final/ holds none of it, no question twice,
    no test question in train, and the style mix and slips are exact, in the text too."""
    ws = with_bank(tmp_path / "ws")
    with serve(deviate=0.35, seed=3) as srv:
        proc = run_llm(srv, ws, "run", "--count", 300, "--concurrency", 16)
    final = ws / "final" / "babis"
    from persona.spec import load_spec

    r = llm_checks().measure(final, load_spec("babis"))
    assert r["pairs"] == 300
    assert all(v == 0 for v in r["zero_targets"].values()), r["zero_targets"]
    assert r["distinct_questions_by_key_percent"] == 100.0
    assert r["test_questions_in_train_by_key"] == 0
    assert all(v["count"] == v["target"] for v in r["style_mix"].values())
    assert r["slips"]["count"] == r["slips"]["target"] == 45
    report = json.loads((final / "report.json").read_text())
    fill, ask = report["stages"]["fill"]["reasons"], report["stages"]["questions"]["reasons"]
    assert fill["a refusal, not an answer"] and fill["does not read as language 'cs'"]
    assert any(k.startswith("an unreported slip") for k in fill)
    assert ask["question asked before"]
    assert any(k.startswith("does not name the answer's topic") for k in ask)
    assert any(k.startswith("the journalist uses the persona's label") for k in ask)
    assert_no_key(ws, proc.stdout, proc.stderr)


def test_a_writing_model_is_checked_and_the_card_says_how_it_wrote(tmp_path):
    """Writer mode with flaws (copies of the idea, answers too long): rejections counted by
    reason, the dataset done, and the card shows copy ratio, sentence shapes, tokens/pair."""
    ws = with_bank(tmp_path / "ws")
    with serve(writer_flaws=0.25, seed=4) as srv:
        run_llm(srv, ws, "run", "--count", 200, "--concurrency", 16)
    final = ws / "final" / "babis"
    report = json.loads((final / "report.json").read_text())
    reasons = report["stages"]["fill"]["reasons"]
    assert any(k.startswith("a copy of its template") for k in reasons)
    assert any(k.endswith("asked") and "sentences" in k for k in reasons)
    assert report["count"] == 200 and report["copy_ratio"]["at_or_above_limit"] == 0
    assert report["copy_ratio"]["p95"] < 0.5
    assert 150 < report["tokens_per_pair"]["input"] < 700  # several items per request
    card = (final / "DATASET_CARD.md").read_text()
    for row in ("copy of its template (word 4-grams)", "distinct sentence shapes",
                "LLM tokens per pair (in / out)"):
        assert f"| {row} |" in card


def test_strict_mode_fills_word_for_word_and_the_workspace_remembers_it(tmp_path):
    ws = with_bank(tmp_path / "ws")
    with serve() as srv:
        run_llm(srv, ws, "fill", "--count", 30, "--batch-size", 30, "--fill", "strict")
        proc = run_llm(srv, ws, "fill", "--count", 30, "--batch-size", 30, check=False)
    assert proc.returncode == 2 and "fill: 'strict' -> 'write'" in proc.stderr
    answers = [json.loads(x) for x in (ws / "generated" / "babis" / "answers" /
                                       "batch_0001.jsonl").read_text().splitlines()]
    bank = {json.loads(x)["id"]: json.loads(x)["text"]
            for x in (ws / "templates" / "babis.jsonl").read_text().splitlines()}
    from persona.providers.offline import lookup_values
    from persona.spec import load_spec

    spec = load_spec("babis")
    ratios = [A.copy_ratio(a["text"], bank[a["template_id"]], spec,
                           lookup_values(spec, a["values"])) for a in answers]
    assert len(answers) == 30 and min(r for r in ratios if r is not None) >= 0.5


def test_templates_refuse_near_copies_and_ask_for_the_shortfall(tmp_path):
    with serve(seed=5) as srv:
        run_llm(srv, tmp_path / "ws", "templates", "--count", 60)
        asked = srv.stats()["by_kind"]["templates"]
    bank = (tmp_path / "ws" / "templates" / "babis.jsonl").read_text().splitlines()
    invalid = [json.loads(x) for x in (tmp_path / "ws" / "generated" / "babis" / "invalid" /
                                       "templates" / "templates.jsonl").read_text().splitlines()]
    assert any(x["reason"].startswith("a near-copy of an example") for x in invalid)
    assert asked > 3  # 3 requests for 60, then more for what was refused
    assert len(bank) > 60 - len(invalid)  # the shortfall was asked for again


def test_the_dry_run_is_within_ten_percent_of_what_the_server_counts(tmp_path):
    ws = with_bank(tmp_path / "ws")
    with serve() as srv:
        dry = json.loads(run_llm(srv, ws, "run", "--count", 200, "--dry-run", "--json").stdout)
        report = json.loads(run_llm(srv, ws, "run", "--count", 200, "--json").stdout)
    usage = report["stages"]["llm_usage"]
    stages = ("fill", "questions")  # several items per request (retries included)
    counted = sum(usage[s]["prompt_tokens"] for s in stages)
    estimated = sum(row["input_tokens"] for row in dry if row["stage"] in stages)
    assert abs(estimated - counted) <= 0.1 * counted, (estimated, counted)
    # one item per request would take over three times the input tokens
    solo = sum(row["one_per_request"]["input_tokens"] for row in dry if row["stage"] in stages)
    assert solo >= 3 * estimated


def test_a_leak_from_test_into_train_is_a_missed_target():
    from persona.pipeline import missed_targets

    report = {"count": 100, "slips": {"count": 15, "percent": 15.0, "target_percent": 15.0},
              "style_mix": {}, "diversity": {"leakage": {"test_questions_in_train": 2}}}
    assert missed_targets(report) == [
        "2 test question(s) also in train (the test split must hold questions train never "
        "saw)"]


def test_a_slot_no_slip_rule_fits_is_rephrased_once_with_a_trigger_word(babis):
    """The model's answer holds no word a slip rule changes: the next attempt asks it to
    rephrase that answer with one (the same brief), and the code makes the slip there."""
    from persona.dedup import DedupIndex
    from persona.providers import llm_tasks as tasks
    from persona.providers.base import FillRequest
    from persona.stages import fill as stage
    from persona.stages import templates as templates_stage

    bank = templates_stage.load(ROOT / "templates" / "babis.jsonl", babis)
    seen = []

    def first_text(brief) -> str:  # names the values, "To je jasný." up to the fewest asked
        text = " ".join(f"{v[:1].upper()}{v[1:]}, to je jasný." for v in brief.keys().values())
        return text + " To je jasný." * (brief.sentences[0] - len(brief.keys()))

    class Model:
        rephrases = True

        def fill(self, spec, requests, seed):
            out = []
            for req in requests:
                if req.previous:  # a rephrase goes alone
                    msgs, brief = tasks.fill_request(spec, req, seed)
                    seen.append((req, msgs[-1]["content"]))
                else:
                    task, brief = tasks.fill_member(spec, req, seed)
                    seen.append((req, json.dumps(task, ensure_ascii=False)))
                text = first_text(brief)
                if req.previous:  # works a trigger word in
                    text = req.previous["text"] + " Já vím, protože to tak je."
                out.append(tasks.parse_fill(json.dumps({"text": text}), spec, req, brief, seed))
            return out

    from persona import text as T

    slot = next(s for s in (FillRequest(i, f"babis-a{i + 1:06d}", bank[i], "irony", True)
                            for i in range(40))
                if not T.applicable_slips(first_text(tasks.fill_brief(babis, s, 42)),
                                          babis.slips))
    answers, invalid, stats = stage.fill_batch(babis, Model(), [slot], bank,
                                               DedupIndex(babis.persona.signature), 42, True)
    assert invalid == [] and len(seen) == 2 and len(answers) == 1
    (first, _), (again, prompt) = seen
    assert first.previous is None and again.attempt == 1
    assert again.previous["attempt"] == 0 and "protože" not in again.previous["text"]
    assert '"task": "rephrase"' in prompt and '"use_one_of"' in prompt
    assert stats["reasons"] == {"a slip was asked for and none was made": 1}
    slip = answers[0]["slip"]
    assert slip and slip["to"] in answers[0]["text"]
    assert answers[0]["text"].startswith(again.previous["text"][:20])


def test_templates_prompt_explains_agreement_words_and_shows_no_alternatives(babis):
    from persona.providers import llm_tasks as tasks

    msgs = tasks.templates_requests(babis, 20, 42)[0]
    assert "`{nepritel@li}`: the form that agrees with the value of `nepritel` (li, ly)" in \
        msgs[0]["content"]
    examples = tasks.template_examples(msgs)
    assert examples and not any("[" in e or "|" in e for e in examples)


def test_mixed_providers_keep_their_own_workspace_settings(tmp_path):
    """An offline workspace's manifest holds no fill mode (its bytes are as before)."""
    ws = tmp_path / "ws"
    shutil.copytree(with_bank(tmp_path / "bank"), ws, dirs_exist_ok=True)
    from tests.conftest import run_persona

    run_persona("fill", "--count", 20, "--batch-size", 20, "--workspace", ws)
    manifest = json.loads((ws / "generated" / "babis" / "answers" / "manifest.json")
                          .read_text())
    assert "fill" not in manifest["params"]


def test_the_card_says_how_the_data_was_made(tmp_path):
    """An offline card and an LLM card differ in "Made with": provider, model, the base URL's
    host (never a key), seed; report.json holds the same as `provenance`."""
    from tests.conftest import run_persona

    run_persona("run", "--count", 60, "--seed", 7, "--workspace", tmp_path / "offline")
    ws = with_bank(tmp_path / "llm")
    with serve() as srv:
        proc = run_llm(srv, ws, "run", "--count", 60, "--seed", 8)
    cards = {}
    for name, root in (("offline", tmp_path / "offline"), ("llm", ws)):
        card = (root / "final" / "babis" / "DATASET_CARD.md").read_text()
        cards[name] = card.split("## Made with", 1)[1].split("## Intended use")[0]
    assert "offline grammar (no model)" in cards["offline"] and "Seed 7;" in cards["offline"]
    host = srv.url.split("//")[1].split("/")[0]
    assert f"`gpt-5.4-mini` at {host}" in cards["llm"] and "Seed 8;" in cards["llm"]
    assert "Prompts (sha256): templates" in cards["llm"] and "Prompts" not in cards["offline"]
    p = json.loads((ws / "final" / "babis" / "report.json").read_text())["provenance"]
    assert (p["provider"], p["seed"], p["model"]["model"], p["model"]["host"],
            p["model"]["per_request"]) == ("openai", 8, "gpt-5.4-mini", host, 8)
    assert "up to 8 items per request" in cards["llm"]
    assert_no_key(ws, proc.stdout, proc.stderr)
    runs = (ws / "generated" / "babis" / "runs.jsonl").read_text().splitlines()
    assert json.loads(runs[-1])["pairs"] == 60  # the time of a run is kept here, not in final/
