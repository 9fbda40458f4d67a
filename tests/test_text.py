import random

from persona import text as T
from persona.providers.offline import OfflineProvider, pick_question_frame


def test_fill_with_forms_and_vocalisation(babis):
    values = {"tema": next(v for v in babis.placeholders["tema"].values
                           if v["nom"] == "státní rozpočet"),
              "nepritel": babis.placeholders["nepritel"].values[0]}
    raw = T.fill("{nepritel.nom} nic nedělají s {tema.ins} ani v {tema.loc}.", values, babis)
    assert raw == "novináři nic nedělají s státním rozpočtem ani v státním rozpočtu."
    fixed = T.capitalize_sentences(T.rewrite(raw, babis.grammar.fixups))
    assert fixed == "Novináři nic nedělají se státním rozpočtem ani ve státním rozpočtu."


def test_vocalisation_leaves_normal_prepositions_alone(babis):
    assert T.rewrite("s inflací v Bruselu k lidem z Prahy", babis.grammar.fixups) == \
        "s inflací v Bruselu k lidem z Prahy"
    assert T.rewrite("k kampani z sítí v vládě", babis.grammar.fixups) == \
        "ke kampani ze sítí ve vládě"


def test_slip_is_applied_once_and_recorded(babis):
    text = "My jsme to říkali, protože jsme to věděli."
    out, slip = T.apply_slip(text, babis.slips, random.Random(1))
    assert out != text
    assert slip.before in text and slip.after in out
    assert sum(a != b for a, b in zip(out.split(), text.split(), strict=False)) == 1
    assert T.apply_slip("Ahoj.", babis.slips, random.Random(1)) is None


def test_unresolved_and_signature():
    assert T.unresolved("Tohle {tema.gen} a {x}") == ["{tema.gen}", "{x}"]
    assert T.unresolved("stray } brace") == ["}"]
    assert T.unresolved("čistý text") == []
    assert T.is_signed(T.sign("Text.", "Andrej Babiš"), "Andrej Babiš")


def test_question_frame_shares_topic_and_enemy(babis):
    rng = random.Random(3)
    for _ in range(50):
        frame = pick_question_frame(babis, {"tema", "nepritel", "cinnost"}, rng)
        assert {"tema", "nepritel"} <= set(T.categories(frame))
    frame = pick_question_frame(babis, {"tema"}, rng)
    assert T.categories(frame) == ["tema"]


def test_offline_templates_are_deterministic_and_unique(babis):
    a = OfflineProvider().write_templates(babis, 400, seed=7)
    b = OfflineProvider().write_templates(babis, 400, seed=7)
    c = OfflineProvider().write_templates(babis, 400, seed=8)
    assert a == b and a != c
    assert len(set(a)) == 400


def test_small_grammar_with_repeats_ends(babis):
    """Fewer unique templates than asked: stage 1 returns what exists instead of looping."""
    g = babis.grammar.model_copy(update={"openers": ["", "Hele.", "Hele."], "closers": [""],
                                         "cores": babis.grammar.cores[:2]})
    small = babis.model_copy(update={"grammar": g})
    out = OfflineProvider().write_templates(small, 100, seed=1)
    assert len(out) == len(set(out)) == 4
