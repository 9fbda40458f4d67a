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
    assert {r.replacement for r in babis.slips} >= {"sme", "tragédyje"}
    assert all(len(p.values) >= 20 for p in babis.placeholders.values())


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
