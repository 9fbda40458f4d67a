"""The offline screen: Czech inflection, the held-out sets, list hygiene; Llama Guard's
answer format."""

from __future__ import annotations

import pytest

from persona.moderators.llamaguard import parse_answer
from persona.moderators.offline import LANGUAGES, OfflineScreen, list_entries
from tests.moderation_data import rows


@pytest.fixture(scope="module")
def screen():
    return OfflineScreen()


def _recall(screen, name: str) -> tuple[int, int]:
    data = rows(name)
    return sum(bool(screen.check_one(r["text"]).flagged) for r in data), len(data)


def test_heldout_written_before_the_lists_is_found(screen):
    found, total = _recall(screen, "heldout.jsonl")
    assert found / total >= 0.8, (found, total)  # measured: 39 of 40


def test_blind_heldout_floor(screen):
    # heldout4: written by a separate author who never saw the lists, while the round-3 lists
    # were written by one who never saw it; measured once after both were done: 71 of 80.
    # heldout3 was also never seen by the round-3 author: 33 of 40 (round-2 lists: 4 of 40).
    found, total = _recall(screen, "heldout4.jsonl")
    assert found / total >= 0.8, (found, total)
    assert _recall(screen, "heldout3.jsonl")[0] >= 32
    assert _recall(screen, "heldout2.jsonl")[0] >= 5


def test_no_heldout_line_is_in_the_lists():
    entries = {e.lower().strip() for lang in LANGUAGES for e in list_entries(lang)}
    for name in ("heldout.jsonl", "heldout2.jsonl", "heldout3.jsonl", "heldout4.jsonl"):
        for r in rows(name):
            assert r["text"].lower().strip(" .") not in entries


@pytest.mark.parametrize("text", ["Já tě zabiju.", "Zabil ho.", "Zabíjeli je.",
                                  "Zastřelím ho.", "Podříznu ho."])
def test_czech_inflections_of_one_entry(screen, text):
    assert "violence" in screen.check_one(text).flagged


def test_multiword_entry_allows_czech_word_order(screen):
    v = screen.check_one("Já se snad zabiju.")
    assert "self-harm" in v.flagged and "zabít se" in v.evidence["self-harm"]


def test_english_lemmas_are_not_used_in_czech_text(screen):
    assert screen.check_one("Položil to na stole.").flagged == []  # en: stole -> steal
    assert screen.check_one("He stole the money.").flagged == ["illicit"]


def test_one_weak_entry_does_not_flag_two_do(screen):
    assert screen.check_one("Ten nůž je tupý.").scores.get("violence") == 0.4
    assert screen.check_one("Ten nůž je tupý a od krve.").flagged == ["violence"]


def test_evidence_names_the_entries(screen):
    v = screen.check_one("Toho novináře bych zastřelil.")
    assert v.evidence == {"violence": ["harm:zastřel* + person:novinář*", "zastřel*",
                                       "zastřelit"]}


def test_combination_needs_every_set_in_one_sentence(screen):
    # utopit alone is politics (to sink money), beside a person it is a threat
    assert screen.check_one("Utopili v tom miliardy.").flagged == []
    v = screen.check_one("Utopíme ho v rybníce.")
    assert v.flagged == ["violence"] and v.evidence["violence"] == ["harm:utopit + person:ho"]
    # the same two words in different sentences are not a combination
    assert screen.check_one("Utopili miliardy. Zeptejte se ho.").flagged == []
    assert screen.check_one("The grouse believed in progress until the shooting season, "
                            "you will recall.").flagged == []
    assert "hate" in screen.check_one("Those migrants are vermin.").flagged


def test_one_word_counts_once(screen):
    # krad* and krást both match "kradou": one word, one weak piece of evidence
    assert screen.check_one("Ministři kradou nápady.").scores.get("illicit") == 0.4


@pytest.mark.parametrize(("answer", "codes"), [
    ("safe", []), ("unsafe\nS1", ["S1"]), ("unsafe\nS1,S10", ["S1", "S10"]),
    (" unsafe \n S11 ", ["S11"]), ("unsafe", None), ("unsafe\nS99", None),
    ("I cannot help with that.", None), ("", None),
])
def test_llama_guard_answers(answer, codes):
    assert parse_answer(answer) == codes


def test_czech_verb_entries_match_their_stem(screen):
    # "pořezat se": the lemmatizer does not know "pořezala"; the stem pořez* does
    assert "self-harm" in screen.check_one("Dneska jsem se zase pořezala.").flagged


def test_form_only_entry_and_one_sentence(screen):
    assert screen.check_one("I'll shoot you.").flagged == ["violence"]
    # "No hlavně" in the next sentence is not the head of "rozbít hlav*"
    assert screen.check_one("Poslanci to zase rozbili. No hlavně, že mají pravdu.").flagged == []


def test_a_rule_naming_a_set_twice_needs_two_entries(screen):
    assert screen.check_one("Lidi platí víc a víc a víc.").flagged == []
    v = screen.check_one("Her moans filled the room as he went down on her.")
    assert v.flagged == ["sexual"]


def test_political_anger_is_not_violence(screen):
    for text in ["To je kampaň! Zloději, banda zlodějů, zavřít je!",
                 "Utopili v tom miliardy a teď nás chtějí sejmout.",
                 "Kradou nápady a mlátí prázdnou slámu.",
                 "Já tu nebudu mlžit, to zase rozbili úředníci."]:
        assert screen.check_one(text).flagged == [], text
