"""Personal data in text: finders with checksums, and masks. Pure functions over strings.

Kinds: e-mail addresses, phone numbers (phonenumbers, valid numbers only, Czech default
region), Czech birth numbers (rodné číslo: date and mod-11 checksum, python-stdnum), IBANs
(mod-97, python-stdnum), payment card numbers (Luhn and a card-network prefix), URLs.
A look-alike that fails its checksum is not a finding. A value is only ever shown masked
(`mask`): no output or log of persona holds a full value found here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

KINDS = ("email", "phone", "birth_number", "iban", "card", "url")

_EMAIL = re.compile(r"\b[\w.+-]+@[\w-]+(?:\.[\w-]+)*\.[a-zA-Z]{2,}\b")
_URL = re.compile(r"\b(?:https?://|www\.)[^\s<>\"'()]+", re.I)
_BIRTH = re.compile(r"(?<![\d/])(\d{6})\s?/?\s?(\d{3,4})(?![\d/])")
_IBAN = re.compile(r"\b([A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?)\b")
_CARD = re.compile(r"(?<![\d-])((?:\d[ -]?){12,18}\d)(?![\d-])")
_CARD_PREFIX = re.compile(r"^(4|5[1-5]|2[2-7]|3[47]|6(?:011|5))")


@dataclass(frozen=True)
class PiiHit:
    kind: str
    start: int
    end: int
    masked: str  # what may be shown; never the value itself


def find_pii(text: str) -> list[PiiHit]:
    """Every PII value in `text`, left to right, without overlaps (the first kind wins in
    the order of KINDS over the same characters)."""
    hits = (_emails(text) + _phones(text) + _birth_numbers(text) + _ibans(text)
            + _cards(text) + _urls(text))
    hits.sort(key=lambda h: (h.start, KINDS.index(h.kind)))
    out: list[PiiHit] = []
    for h in hits:
        if not out or h.start >= out[-1].end:
            out.append(h)
    return out


def mask_text(text: str, hits: list[PiiHit] | None = None) -> str:
    """`text` with every PII value replaced by its mask."""
    hits = find_pii(text) if hits is None else hits
    for h in sorted(hits, key=lambda h: h.start, reverse=True):
        text = text[:h.start] + h.masked + text[h.end:]
    return text


def mask(kind: str, value: str) -> str:
    """A value with most of it hidden: enough to find it again in the file, not to use it."""
    if kind == "email":
        user, _, domain = value.partition("@")
        return f"{user[:1]}***@***{domain[domain.rfind('.'):]}"
    if kind == "url":  # not itself a URL: a masked file checks clean
        host = re.sub(r"(?i)^(https?://)?(www\.)?", "", value)
        return f"[URL {host[:3]}***]"
    digits = re.sub(r"[^0-9A-Za-z]", "", value)
    if kind == "iban":
        return f"{digits[:2]}** **** … {digits[-2:]}"
    return "*" * (len(digits) - 2) + digits[-2:]  # phone, birth number, card: last two shown


def _hit(kind: str, m: re.Match, group: int = 0) -> PiiHit:
    return PiiHit(kind, m.start(group), m.end(group), mask(kind, m.group(group)))


def _emails(text: str) -> list[PiiHit]:
    return [_hit("email", m) for m in _EMAIL.finditer(text)]


def _urls(text: str) -> list[PiiHit]:
    return [PiiHit("url", m.start(), m.start() + len(v), mask("url", v))
            for m in _URL.finditer(text) for v in [m.group(0).rstrip(".,;:!?")]]


def _phones(text: str) -> list[PiiHit]:
    if not any(c.isdigit() for c in text):
        return []
    import phonenumbers

    return [PiiHit("phone", m.start, m.end, mask("phone", m.raw_string))
            for m in phonenumbers.PhoneNumberMatcher(text, "CZ",
                                                     leniency=phonenumbers.Leniency.VALID)]


def _birth_numbers(text: str) -> list[PiiHit]:
    from stdnum.cz import rc

    return [_hit("birth_number", m) for m in _BIRTH.finditer(text)
            if rc.is_valid(m.group(1) + m.group(2))]


def _ibans(text: str) -> list[PiiHit]:
    from stdnum import iban

    return [_hit("iban", m, 1) for m in _IBAN.finditer(text) if iban.is_valid(m.group(1))]


def _cards(text: str) -> list[PiiHit]:
    from stdnum import luhn

    out = []
    for m in _CARD.finditer(text):
        digits = re.sub(r"\D", "", m.group(1))
        if 13 <= len(digits) <= 19 and _CARD_PREFIX.match(digits) and luhn.is_valid(digits):
            out.append(_hit("card", m, 1))
    return out
