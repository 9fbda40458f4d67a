"""PII finders: every kind found with a valid checksum, look-alikes that fail it not, masks
that never hold the value; nothing found in the built-in personas' data."""

from __future__ import annotations

import json
import re

import pytest

from persona.checks.pii import KINDS, find_pii, mask_text

VALID = {
    "email": "jan.novak@example.cz",
    "phone": "+420 603 123 456",
    "birth_number": "710319/2745",
    "iban": "CZ65 0800 0000 1920 0014 5399",
    "card": "4111 1111 1111 1111",
    "url": "https://www.example.org/profil/jan-novak",
}
LOOKALIKES = [
    "710319/2746",  # birth number, wrong check digit
    "711319/2745",  # birth number, month 13
    "CZ65 0800 0000 1920 0014 5398",  # IBAN, wrong check digits
    "4111 1111 1111 1112",  # card, fails Luhn
    "1234 5678 9012 3456",  # card-shaped, fails Luhn and has no network prefix
    "3 000 000 Kč",
    "123 456 789",  # not a valid Czech number
    "19.03.1971",
    "jan.novak@",
    "example.org",  # a bare host is not a URL
]


@pytest.mark.parametrize("kind", KINDS)
def test_each_kind_is_found_in_a_sentence_and_masked(kind):
    value = VALID[kind]
    text = f"Napište mi: {value}. Díky."
    hits = find_pii(text)
    assert [h.kind for h in hits] == [kind]
    assert text[hits[0].start:hits[0].end] == value
    masked = mask_text(text)
    assert value not in masked
    assert _digits(value) not in _digits(masked) or not _digits(value)
    assert hits[0].masked in masked


@pytest.mark.parametrize("text", LOOKALIKES)
def test_lookalikes_failing_their_checks_are_not_found(text):
    assert find_pii(f"Číslo {text} tady je.") == []


def test_several_values_in_one_text_are_all_found_in_order():
    text = " ".join(f"{k}: {v};" for k, v in VALID.items())
    assert [h.kind for h in find_pii(text)] == list(VALID)


def test_builtin_personas_data_has_no_pii(builtin_finals):
    for final in builtin_finals:
        for line in (final / "all.jsonl").read_text(encoding="utf-8").splitlines():
            for m in json.loads(line)["messages"]:
                assert find_pii(m["content"]) == [], m["content"]


def _digits(s: str) -> str:
    return re.sub(r"\D", "", s)
