import tomllib

import pytest

from persona.errors import SpecError
from persona.spec import builtin_ids, builtin_path, load_spec, parse_spec
from tests.conftest import run_persona


def _babis_data():
    return tomllib.loads(builtin_path("babis").read_text(encoding="utf-8"))


@pytest.mark.parametrize("pid", builtin_ids())
def test_builtins_load(pid):
    spec = load_spec(pid)
    assert spec.id == pid
    assert abs(sum(spec.style.mix.values()) - 1) < 1e-9


def test_babis_is_the_assignment_persona(babis):
    assert set(babis.placeholders) == {"tema", "nepritel", "cinnost", "kritika", "emotivni_vyraz"}
    assert babis.style.mix == {s: 0.2 for s in
                               ("emotional", "dismissive", "self_importance", "chaotic_logic",
                                "irony")}
    assert babis.style.slip_rate == 0.15
    assert babis.persona.signature == "Andrej Babiš"
    assert {r.replacement for r in babis.slips} >= {"lebo", "tragédia"}
    assert {r.kind for r in babis.slips} == {"slovak", "wrong_ending", "malapropism",
                                             "mangled_idiom"}
    assert all(len(p.values) >= 20 for p in babis.placeholders.values())
    topics = {v["nom"] for v in babis.placeholders["tema"].values}
    assert {"válka na Ukrajině", "změna klimatu", "očkování"} <= topics
    assert {"kradou nápady", "sabotujou, co se dá"} <= {
        v["pres"] for v in babis.placeholders["kritika"].values}


def _error(data) -> str:
    with pytest.raises(SpecError) as e:
        parse_spec(data, source="x.toml")
    return str(e.value)


def test_wrong_type_names_file_and_field():
    data = _babis_data()
    data["style"]["slip_rate"] = "high"
    msg = _error(data)
    assert msg.startswith("x.toml: style.slip_rate: ")
    assert "\n" not in msg


def test_missing_form_is_found_at_load():
    data = _babis_data()
    del data["placeholders"]["tema"]["values"][3]["gen"]
    msg = _error(data)
    assert "placeholders.tema" in msg and "lacks the form 'gen'" in msg


def test_unknown_placeholder_and_undeclared_form():
    data = _babis_data()
    data["grammar"]["cores"][0] = "O {pocasi} nic nevím."
    assert "unknown placeholder {pocasi}" in _error(data)
    data = _babis_data()
    data["grammar"]["cores"][0] = "O {tema.dat} nic nevím."
    assert "{tema.dat}" in _error(data)


def test_mix_must_sum_to_one_and_match_styles():
    data = _babis_data()
    data["style"]["mix"]["irony"] = 0.5
    assert "sum to 1" in _error(data)
    data = _babis_data()
    del data["styles"]["irony"]
    assert "style.mix names" in _error(data)


def test_unknown_key_rejected():
    data = _babis_data()
    data["persona"]["nickname"] = "AB"
    assert "persona: unknown key `nickname`" in _error(data)


def test_unknown_key_is_reported_first_with_a_close_match():
    data = _babis_data()
    data["style"]["slip-rate"] = data["style"].pop("slip_rate")  # also makes slip_rate missing
    assert _error(data).endswith("style: unknown key `slip-rate` (did you mean `slip_rate`?) "
                                 "(+1 more)")
    data = _babis_data()
    data["styles"]["irony"]["lable"] = data["styles"]["irony"].pop("label")  # inside a dict
    assert "styles.irony: unknown key `lable` (did you mean `label`?)" in _error(data)
    data = _babis_data()
    data["grammar"]["cout"] = 5  # a field with a default: nothing "missing" to match against
    assert "grammar: unknown key `cout` (did you mean `count`?)" in _error(data)


def test_question_frame_without_question_mark_is_a_load_error():
    data = _babis_data()
    data["journalist"]["questions"][1] = "Řekněte nám něco o {tema.lok}."
    assert "journalist.questions: questions[1] has no '?'" in _error(data)


def test_grammar_count_beyond_what_the_grammar_makes():
    data = _babis_data()
    g = data["grammar"]
    most = len(g["openers"]) * len(g["cores"]) * len(g["closers"])
    g["count"] = most + 1
    assert f"make at most {most}" in _error(data)
    # Repeated parts make fewer distinct templates than the product: that is counted too.
    data = _babis_data()
    g = data["grammar"]
    g["openers"], g["closers"] = ["", " "], ["", ""]
    g["count"] = len(g["cores"]) + 1
    assert f"makes only {len(g['cores'])} distinct ones" in _error(data)


def test_core_without_matching_question_frame_rejected():
    data = _babis_data()
    data["grammar"]["cores"].append("Každej den {cinnost.pres}.")
    assert "no journalist question frame" in _error(data)


def test_bad_spec_file_one_line_exit_2(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text(builtin_path("babis").read_text(encoding="utf-8")
                   .replace("slip_rate = 0.15", 'slip_rate = "lots"'), encoding="utf-8")
    proc = run_persona("run", "--persona", bad, "--workspace", tmp_path, check=False)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert lines[-1].startswith(f"error: {bad}: style.slip_rate:"), proc.stderr

    broken = tmp_path / "broken.toml"
    broken.write_text("[persona\nid=", encoding="utf-8")
    proc = run_persona("run", "--persona", broken, "--workspace", tmp_path, check=False)
    assert proc.returncode == 2 and "invalid TOML" in proc.stderr and "Traceback" not in proc.stderr


def test_unknown_persona_and_missing_file(tmp_path):
    with pytest.raises(SpecError, match="unknown persona"):
        load_spec("nobody")
    with pytest.raises(SpecError, match="no such file"):
        load_spec(tmp_path / "missing.toml")


def test_wrong_case_after_a_preposition_is_a_spec_error():
    data = _babis_data()
    data["grammar"]["cores"][0] = "Kvůli {tema.gen} nespím."
    msg = _error(data)
    assert "grammar.cores[0]" in msg and "'Kvůli' takes dat, not {tema.gen}" in msg
    data = _babis_data()
    data["styles"]["irony"]["bodies"].append("Vaše slova o {tema.gen} nikoho nezajímají.")
    assert "'o' takes loc or acc, not {tema.gen}" in _error(data)


def test_a_refusal_before_other_sentences_is_a_spec_error():
    data = _babis_data()
    data["styles"]["dismissive"]["prefixes"][0] = "[Tohle|To] nebudu komentovat."
    msg = _error(data)
    assert "styles.dismissive.prefixes[0]" in msg and "may only end an answer" in msg
    data = _babis_data()
    data["grammar"]["openers"][1] = "Víc k tomu neřeknu."
    assert "grammar.openers[1]" in _error(data)


def test_a_closing_template_gets_no_suffix_and_nothing_after_it(babis):
    import random

    from persona import rules
    from persona.providers.offline import compose

    template = "{nepritel.nom} pořád mluví o {tema.loc}. [Nic víc k tomu nemám|Víc k tomu nemám]."
    for i in range(200):
        text = compose(babis, "dismissive", template, random.Random(i))
        assert text.endswith("k tomu nemám].")
    assert rules.misplaced_endings("To nebudu komentovat. Lidi to vědí.", babis)
    assert rules.misplaced_endings("Neřešim. Víc k tomu neřeknu.", babis)
    assert not rules.misplaced_endings("Lidi to vědí. To nebudu komentovat.\n\nAndrej Babiš",
                                       babis)


def test_agreeing_word_without_agreement_is_a_spec_error():
    data = _babis_data()
    data["styles"]["irony"]["prefixes"][0] = "No jasně, {nepritel.nom} jsou přece ti nejchytřejší."
    msg = _error(data)
    assert "styles.irony.prefixes[0]" in msg
    assert "'ti' must agree with {nepritel.nom}" in msg and "{nepritel@ti}" in msg
    data = _babis_data()
    data["grammar"]["cores"][0] = "{nepritel.nom} o {tema.loc} mluví, ale sami nic nedělají."
    assert "'sami' must agree" in _error(data)


def test_agree_word_must_cover_every_value_and_be_known():
    data = _babis_data()
    del data["placeholders"]["nepritel"]["agree"]["li"]["pl"]
    assert "agree.li has no form for 'f.pl'" in _error(data)
    data = _babis_data()
    data["grammar"]["cores"][0] = "{nepritel.nom} o {tema.loc} {nepritel@mluvi}."
    assert "{nepritel@mluvi} asks for an agreeing word" in _error(data)
    data = _babis_data()
    del data["placeholders"]["tema"]["values"][0]["rod"]
    assert "lacks its gender and number ('rod')" in _error(data)


def test_journalist_may_not_use_the_persona_labels():
    data = _babis_data()
    data["journalist"]["questions"].append("Proč takzvaní experti kritizují {tema.acc}?")
    assert "uses the persona's label 'takzvan'" in _error(data)
    data = _babis_data()
    del data["placeholders"]["nepritel"]["values"][9]["q_nom"]  # takzvaní experti
    assert "would put the persona's label 'takzvan'" in _error(data)


def test_unbalanced_alternatives_are_rejected():
    data = _babis_data()
    data["grammar"]["cores"][0] = "O {tema.loc} [mluvím|nemluvím."
    assert "unbalanced or nested [alternatives" in _error(data)


def test_old_format_specs_still_load(tmp_path):
    """Specs without the new optional sections (bodies, agreement, language...) still load
    and run: the old prefix + template + suffix shape."""
    from persona.providers.base import FillRequest, TemplateRecord
    from persona.providers.offline import OfflineProvider

    data = _babis_data()
    for st in data["styles"].values():
        del st["bodies"]
    for ph in data["placeholders"].values():
        for key in ("agreement", "agree", "question_forms", "per_mention"):
            ph.pop(key, None)
        for v in ph["values"]:
            for k in [k for k in v if k == "rod" or k.startswith("q_")]:
                del v[k]
    for key in ("style_sentences", "max_mentions", "clashes"):
        data["grammar"].pop(key)
    data["grammar"]["cores"] = [c for c in data["grammar"]["cores"] if "@" not in c]
    data["grammar"]["openers"] = [""]
    data["grammar"]["closers"] = [""]
    data["grammar"]["count"] = 50  # what 66 cores alone can make (a larger count is an error)
    data["styles"] = {k: {**v, "prefixes": [p for p in v["prefixes"] if "@" not in p]}
                      for k, v in data["styles"].items()}
    del data["language"]
    del data["journalist"]["labels"]
    del data["journalist"]["leads"]
    spec = parse_spec(data)
    assert not spec.grammar.style_sentences
    t = TemplateRecord("t1", data["grammar"]["cores"][0], ["tema"], [])
    res = OfflineProvider().fill(spec, [FillRequest(0, "a1", t, "irony", False)], seed=1)[0]
    assert res.text.endswith("Andrej Babiš")
