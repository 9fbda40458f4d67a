"""Pure text transforms of the generators: filling placeholders, fix-ups, slips, signature.

No I/O and no global randomness: every random choice takes an explicit `random.Random`.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

from persona.spec import PLACEHOLDER_RE, PersonaSpec, Rewrite, SlipRule

_SENTENCE_START = re.compile(r"(^|[.!?]\s+)([a-zà-žěščřžýáíéúůďťň])")
_SPACES = re.compile(r"[ \t]+")
# Anything that still looks like a placeholder after filling: `{x}`, `{x.y}` or a lone brace.
UNRESOLVED_RE = re.compile(r"\{[^{}\s]{0,40}\}|[{}]")


def value_key(value: dict[str, str]) -> str:
    """A value is named by its first form (the nominative for Czech nouns)."""
    return next(iter(value.values()))


def categories(text: str) -> list[str]:
    """Placeholder categories a text uses, sorted, without duplicates."""
    return sorted({m.group(1) for m in PLACEHOLDER_RE.finditer(text)})


def forms_used(text: str, spec: PersonaSpec) -> list[str]:
    out = set()
    for m in PLACEHOLDER_RE.finditer(text):
        name, form = m.group(1), m.group(2) or spec.placeholders[m.group(1)].forms[0]
        out.add(f"{name}.{form}")
    return sorted(out)


def fill(text: str, values: dict[str, dict[str, str]], spec: PersonaSpec) -> str:
    """Replace every `{cat.form}` with that form of the chosen value of `cat`."""

    def sub(m: re.Match) -> str:
        name, form = m.group(1), m.group(2) or spec.placeholders[m.group(1)].forms[0]
        return values[name][form]

    return PLACEHOLDER_RE.sub(sub, text)


def rewrite(text: str, rules: list[Rewrite]) -> str:
    for rule in rules:
        text = re.sub(rule.pattern, rule.replacement, text)
    return text


def capitalize_sentences(text: str) -> str:
    return _SENTENCE_START.sub(lambda m: m.group(1) + m.group(2).upper(), text)


def join(*parts: str) -> str:
    return _SPACES.sub(" ", " ".join(p.strip() for p in parts if p and p.strip())).strip()


@dataclass(frozen=True)
class Slip:
    kind: str
    before: str
    after: str

    def to_dict(self) -> dict[str, str]:
        return {"kind": self.kind, "from": self.before, "to": self.after}


def applicable_slips(text: str, rules: list[SlipRule]) -> list[SlipRule]:
    return [r for r in rules if re.search(r.pattern, text)]


def apply_slip(text: str, rules: list[SlipRule], rng: random.Random) -> tuple[str, Slip] | None:
    """Make one slip: a random applicable kind, a rule of it, one of its matches; None if none
    fits. Choosing the kind first keeps a spec with many rules of one kind from drowning the
    others."""
    candidates = applicable_slips(text, rules)
    if not candidates:
        return None
    kinds = sorted({r.kind for r in candidates})
    kind = rng.choice(kinds)
    rule = rng.choice([r for r in candidates if r.kind == kind])
    matches = list(re.finditer(rule.pattern, text))
    m = rng.choice(matches)
    after = m.expand(rule.replacement)
    return text[:m.start()] + after + text[m.end():], Slip(rule.kind, m.group(0), after)


def sign(text: str, signature: str) -> str:
    """Append the signature after a blank line; an empty signature (an unsigned persona) adds
    nothing."""
    return f"{text}\n\n{signature}" if signature else text


def is_signed(text: str, signature: str) -> bool:
    """Ends with the signature; every text counts as signed for an unsigned persona."""
    return text.rstrip().endswith(signature)


def unresolved(text: str) -> list[str]:
    return UNRESOLVED_RE.findall(text)
