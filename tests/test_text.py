import random

import pytest

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


def test_more_vocalised_prepositions(babis):
    assert T.rewrite("s mzdami, z mzdy, k mně, k mzdám, v středu, s všemi, k státu, "
                     "v zdravotnictví", babis.grammar.fixups) == \
        "se mzdami, ze mzdy, ke mně, ke mzdám, ve středu, se všemi, ke státu, ve zdravotnictví"
    assert T.rewrite("s cenami, z Prahy, v Brně, k lidem, v září", babis.grammar.fixups) == \
        "s cenami, z Prahy, v Brně, k lidem, v září"


def test_alternatives_and_agreement(babis):
    rng = random.Random(0)
    seen = {T.choose_alternatives("[a|b|c] x[| y]", rng) for _ in range(60)}
    assert seen == {"a x", "b x", "c x", "a x y", "b x y", "c x y"}
    enemies = {v["nom"]: v for v in babis.placeholders["nepritel"].values}
    text = "{nepritel.nom} to {nepritel@sami} zablokova{nepritel@li}."
    assert T.fill(text, {"nepritel": enemies["novináři"]}, babis) == \
        "novináři to sami zablokovali."
    assert T.fill(text, {"nepritel": enemies["neziskovky"]}, babis) == \
        "neziskovky to samy zablokovaly."
    topics = {v["nom"]: v for v in babis.placeholders["tema"].values}
    for nom, want in (("inflace", "inflace je"), ("ceny energií", "ceny energií jsou"),
                      ("kůrovec", "kůrovec je")):
        assert T.fill("{tema.nom} {tema@je}", {"tema": topics[nom]}, babis) == want


def test_questions_use_neutral_forms(babis):
    enemies = {v["nom"]: v for v in babis.placeholders["nepritel"].values}
    neutral = {"nepritel": babis.placeholders["nepritel"].question_forms}
    q = T.fill("Proč {nepritel.nom} kritizují {nepritel.acc}?",
               {"nepritel": enemies["takzvaní experti"]}, babis, neutral)
    assert q == "Proč odborníci kritizují odborníky?"
    q = T.fill("{nepritel.nom}?", {"nepritel": enemies["Piráti"]}, babis, neutral)
    assert q == "Piráti?"


def test_a_slip_that_leaves_valid_czech_is_no_slip():
    assert not T.is_real_slip("jsme", "sme", "cs")  # spoken Czech, same lemma
    assert not T.is_real_slip("lidmi", "lidma", "cs")
    assert T.is_real_slip("protože", "lebo", "cs")
    assert T.is_real_slip("novinářů", "novinářov", "cs")
    assert T.is_real_slip("koalice", "kolize", "cs")  # a real word, another lemma
    assert T.is_real_slip("vejce a slepice", "slepice a kohout", "cs")


def test_template_units_keep_a_question_with_its_answer():
    assert T.units("Kdo to umí? Já! A oni se smějou. Pak další věta. Ano.") == \
        ["Kdo to umí? Já! A oni se smějou.", "Pak další věta. Ano."]


def test_composed_answers_carry_the_style_inside(babis):
    from persona.providers.offline import compose

    opener = next(o for o in babis.grammar.openers if "Řeknu vám jednu věc" in o)
    closer = next(c for c in babis.grammar.closers if "Lidi to" in c)
    template = T.join(opener, babis.grammar.cores[0], closer)
    units = T.units(template)
    rng = random.Random(5)
    inside = total = 0
    for i in range(300):
        style = babis.styles[list(babis.styles)[i % 5]]
        body = compose(babis, list(babis.styles)[i % 5], template, rng)
        used = [b for b in style.bodies if b in body]
        pieces = len(units) + len(used) + any(body.startswith(p) for p in style.prefixes) \
            + any(body.endswith(s) for s in style.suffixes)
        assert body.index(units[0]) < body.index(units[-1])  # the template keeps its order
        # the opener leads straight into its core, and no body opens the answer
        assert f"{units[0]} {units[1]}" in body
        assert not any(body.startswith(b) for b in used if b not in style.prefixes)
        if used and pieces >= 3:
            total += 1
            head, tail = f"{units[0]} {units[1]}", units[2]
            inside += all(body.index(head) + len(head) <= body.index(b) < body.rindex(tail)
                          for b in used if b not in style.prefixes + style.suffixes)
        assert max(T.mentions(body).values()) <= babis.grammar.max_mentions
    # bodies go between the template's groups (opener + core, closer), never around them
    assert total > 100 and inside == total


def test_filled_answers_have_one_to_seven_sentences(babis):
    from persona.providers.base import FillRequest, TemplateRecord

    t = TemplateRecord("t1", babis.grammar.cores[3], ["nepritel", "tema"], [])
    prov = OfflineProvider()
    lengths = []
    for i in range(300):
        style = list(babis.styles)[i % 5]
        res = prov.fill(babis, [FillRequest(i, f"a{i}", t, style, False)], seed=3)[0]
        lengths.append(len(T.split_sentences(res.text.rsplit("\n\n", 1)[0])))
    assert min(lengths) == 1 and max(lengths) <= 7
    assert max(lengths.count(n) for n in set(lengths)) < len(lengths) / 2


def test_the_lemma_dictionary_cache_gives_simplemmas_own_answers(tmp_path):
    """The sorted index of simplemma's Czech dictionary (persona/lemmas.py) is written on
    first use and gives the same lemmas as the dictionary itself; a broken or truncated
    index is rebuilt."""
    import subprocess
    import sys

    code = ("from persona import lemmas; s = lemmas.load(); "
            "print(s.lemmatize('zabil', lang='cs'), s.is_known('předsedo', lang='cs'), "
            "s.is_known('xyzzy', lang='cs'), s.lemmatize('penězi', lang='cs'))")
    env = {**__import__("os").environ, "XDG_CACHE_HOME": str(tmp_path)}

    def run() -> str:
        return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                              text=True, check=True).stdout

    first = run()
    index = list((tmp_path / "persona" / "simplemma").glob("cs-*.index"))
    assert len(index) == 1 and index[0].stat().st_size > 1_000_000
    size = index[0].stat().st_size
    again = run()
    index[0].write_bytes(b"not an index")
    rebuilt = run()
    assert index[0].stat().st_size == size
    index[0].write_bytes(index[0].read_bytes()[: size // 2])  # truncated
    rebuilt_again = run()
    assert first == again == rebuilt == rebuilt_again == "zabít True False peníze\n"
    assert index[0].stat().st_size == size


def test_the_lemma_index_is_the_dictionary(tmp_path):
    """Every entry of a dictionary comes back from its index, misses miss, and the index
    iterates in key order."""
    from persona.lemmas import SortedIndex, write_index

    rng = random.Random(3)
    data = {bytes(rng.choice(b"abc\xc3\xa1xyz") for _ in range(rng.randint(1, 7))):
            bytes(rng.choice(b"klmn") for _ in range(rng.randint(0, 5))) for _ in range(3000)}
    write_index(tmp_path / "x.index", data)
    index = SortedIndex(tmp_path / "x.index")
    assert len(index) == len(data) and list(index) == sorted(data)
    assert all(index[k] == v and k in index for k, v in data.items())
    for _ in range(3000):
        k = bytes(rng.choice(b"abdxyz") for _ in range(rng.randint(0, 8)))
        assert index.get(k) == data.get(k) and (k in index) == (k in data)
    with pytest.raises(KeyError):
        index[b"\xff" * 9]
    with pytest.raises(ValueError):
        write_index(tmp_path / "y.index", {b"a\0b": b"c"})
