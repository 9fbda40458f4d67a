"""Regular expressions with a cheap first look: the literal text every match must contain.

A search with an alternation of many phrases (the refusal patterns, a spec's clashing
phrases, its slip rules) tries every branch at every position of the text: ~40-50 µs for an
answer of 500 characters, tens of thousands of times in an offline run, most of them for
nothing. `finder(pattern)` reads the parsed pattern once for a piece of literal text each
branch's match must contain and, before the regular expression runs, looks for those pieces
with substring tests (~1 µs); if none is there, the pattern cannot match.

The first look is exact, never a guess: a piece is taken only from the mandatory part of a
branch (literal characters in sequence, zero-width assertions between them allowed; a
group without its own flags inlined; anything else ends a piece). Where the pattern ignores
case, a piece holds only characters whose case-insensitive matches all lower-case to them
(ASCII letters, digits, punctuation, the Czech and Slovak letters; `re` also matches i with
ı and İ and s with ſ, so the text is folded as `fold` says) and it is compared with the
folded text. A pattern where some branch has no such piece of at least two characters gets
no first look: its search is the plain one. tests/test_finder.py checks the safe characters
against every code point.
"""

from __future__ import annotations

import functools
import re

try:  # Python 3.11+
    from re import _constants as _c
    from re import _parser as _sre_parse
except ImportError:  # pragma: no cover - older Pythons name them sre_*
    import sre_constants as _c
    import sre_parse as _sre_parse

MIN_PIECE = 2

# characters every case-insensitive match of which folds (`fold`) to the same character
SAFE_FOLD = frozenset(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 ,.;:!?'\"-–()/&"
    "áäčďéěíĺľňóôŕřšťúůýžÁÄČĎÉĚÍĹĽŇÓÔŔŘŠŤÚŮÝŽ")
# what str.lower leaves apart that re.IGNORECASE matches: ı and ſ (İ lowers to i + U+0307)
_ODD = {ord("ı"): "i", ord("ſ"): "s", 0x307: None}


def fold(text: str) -> str:
    """The text lower-cased, with ı, ſ and the combining dot of İ folded into i and s."""
    low = text.lower()
    if "ı" in low or "ſ" in low or "\u0307" in low:
        low = low.translate(_ODD)
    return low


class Finder:
    """`search(text)` as `re.Pattern.search`, with the first look described above."""

    __slots__ = ("pattern", "needles")

    def __init__(self, pattern: re.Pattern, needles: tuple[tuple[str, bool], ...] | None):
        self.pattern = pattern
        self.needles = needles  # (piece, compared lower-cased) per branch; None: no look

    def may_match(self, text: str) -> bool:
        """False only where the pattern cannot match `text`."""
        if self.needles is None:
            return True
        low = None
        for piece, folded in self.needles:
            if folded:
                if low is None:
                    low = fold(text)
                if piece in low:
                    return True
            elif piece in text:
                return True
        return False

    def search(self, text: str) -> re.Match | None:
        return self.pattern.search(text) if self.may_match(text) else None


@functools.lru_cache(maxsize=4096)
def finder(pattern: str, flags: int = 0) -> Finder:
    """The pattern compiled once per process (the project's one cache of a spec's and the
    checks' expressions: `re`'s own costs a lookup with type checks on every call), with its
    pieces of literal text; `.pattern` is the compiled expression (for sub, finditer)."""
    compiled = re.compile(pattern, flags)
    try:
        needles = _needles(pattern, flags)
    except Exception:  # noqa: BLE001 - the parser's internals changed: no first look
        needles = None
    return Finder(compiled, needles)


def _needles(pattern: str, flags: int) -> tuple[tuple[str, bool], ...] | None:
    parsed = _sre_parse.parse(pattern, flags)
    pieces = _pieces(list(parsed), bool(parsed.state.flags & re.IGNORECASE))
    if not pieces:
        return None
    # a piece that holds another is found wherever that one is: the other is enough
    return tuple(dict.fromkeys(p for p in pieces
                               if not any(q != p and q[1] == p[1] and q[0] in p[0]
                                          for q in pieces)))


def _pieces(ops, ignore: bool, depth: int = 0) -> list[tuple[str, bool]] | None:
    """Pieces of text one of which every match of the sequence `ops` contains: its longest
    run of literal characters, or, where that is short, one piece per alternative of an
    alternation the sequence cannot skip (`(?:tento|takový) požadavek`), whichever has the
    longer shortest piece; None where there are none of at least MIN_PIECE characters."""
    runs, branches = _scan(ops, ignore)
    best = max(runs, key=lambda r: len(r[0]), default=None)
    options = [[best]] if best is not None and len(best[0]) >= MIN_PIECE else []
    if depth < 4:
        for alternatives, inner in branches:
            each = [_pieces(list(alt), inner, depth + 1) for alt in alternatives]
            if all(each):
                options.append([p for pieces in each for p in pieces])
    if not options:
        return None
    return max(options, key=lambda o: (min(len(p) for p, _ in o), -len(o)))


def _scan(ops, ignore: bool) -> tuple[list[tuple[str, bool]], list[tuple[list, bool]]]:
    """The runs of consecutive mandatory literal characters in a sequence of parsed ops:
    (text, lower-cased), a case-insensitive run only of SAFE_FOLD characters; and the
    alternations the sequence cannot skip: (alternatives, ignoring case)."""
    runs: list[tuple[str, bool]] = []
    branches: list[tuple[list, bool]] = []
    chars: list[str] = []
    run_ignore = ignore

    def end() -> None:
        if chars:
            text = "".join(chars)
            runs.append((text.lower() if run_ignore else text, run_ignore))
            chars.clear()

    def walk(seq, ignore: bool) -> None:
        nonlocal run_ignore
        for op, av in seq:
            if op is _c.LITERAL:
                ch = chr(av)
                if chars and run_ignore != ignore:
                    end()
                if ignore and ch not in SAFE_FOLD:
                    end()
                    continue
                run_ignore = ignore
                chars.append(ch)
            elif op is _c.AT:
                continue  # \b, ^, $: zero-width, the characters around it stay in sequence
            elif op is _c.SUBPATTERN:
                _group, add, remove, sub = av
                inner = (ignore or bool(add & re.IGNORECASE)) and not remove & re.IGNORECASE
                walk(sub, inner)
            elif op is _c.BRANCH:
                end()
                branches.append((av[1], ignore))
            else:
                end()

    walk(ops, ignore)
    end()
    return runs, branches
