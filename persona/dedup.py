"""Exact and near-duplicate detection that streams: memory grows by ~0.5 KB per kept text.

Measure: Jaccard similarity of the sets of character 5-grams of the normalised text (lower
case, punctuation and the signature removed). Character n-grams, unlike word n-grams, still see
two sentences as close when they differ by one short word or a changed ending — exactly how
persona answers repeat themselves (a template refilled with one other value, a slip). Texts with
J >= 0.85 count as near-duplicates: at that level two answers of this kind of dataset differ by
at most a word or two in a paragraph, which teaches a model nothing new.

Jaccard is estimated with MinHash (64 permutations) and candidates are found with LSH banding
(8 bands x 8 rows): a pair at J = 0.85 becomes a candidate with probability 0.92, at J = 0.9
with 0.99; every candidate is verified on the signatures, so there are no false positives
beyond MinHash's estimation error (sd ~ 0.04 at J = 0.85).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

import numpy as np

SHINGLE = 5
PERMS = 64
BANDS = 8
ROWS = PERMS // BANDS
THRESHOLD = 0.85

_rng = np.random.default_rng(20240501)  # fixed: signatures must be comparable across runs
_A = _rng.integers(1, 2**63, PERMS, dtype=np.uint64) | np.uint64(1)
_B = _rng.integers(0, 2**63, PERMS, dtype=np.uint64)
_BAND_MIX = _rng.integers(1, 2**63, ROWS, dtype=np.uint64) | np.uint64(1)
_NON_WORD = re.compile(r"[\W_]+")


def normalize(text: str, signature: str = "") -> str:
    if signature:
        text = text.replace(signature, " ")
    return _NON_WORD.sub(" ", text.lower()).strip()


def shingle_hashes(norm: str, distinct: bool = True) -> np.ndarray:
    """64-bit hashes of the character 5-grams (a polynomial rolling hash); `distinct`:
    each once (a set), else in text order with repeats (enough for a minimum)."""
    cp = np.frombuffer(norm.encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)
    if len(cp) < SHINGLE:
        cp = np.concatenate([cp, np.zeros(SHINGLE - len(cp), dtype=np.uint64)])
    n = len(cp) - SHINGLE + 1
    h = cp[:n].copy()
    with np.errstate(over="ignore"):
        for j in range(1, SHINGLE):
            h *= np.uint64(1_000_003)
            h += cp[j:j + n]
    return np.unique(h) if distinct else h


def minhash(norm: str) -> np.ndarray:
    """The 64 minima; a repeated shingle changes no minimum, so no set is built."""
    h = shingle_hashes(norm, distinct=False)
    with np.errstate(over="ignore"):
        vals = np.multiply.outer(_A, h)
        vals += _B[:, None]
        vals >>= np.uint64(32)
    return vals.min(axis=1).astype(np.uint32)


def jaccard_estimate(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean(a == b))


def jaccard_exact(a: str, b: str) -> float:
    """Exact Jaccard of the 5-gram sets (for tests and reports, not for the streaming path)."""
    sa, sb = set(shingle_hashes(a).tolist()), set(shingle_hashes(b).tolist())
    return len(sa & sb) / len(sa | sb) if sa | sb else 1.0


def _band_keys(sig: np.ndarray) -> list[int]:
    rows = sig.astype(np.uint64).reshape(BANDS, ROWS)
    with np.errstate(over="ignore"):
        keys = (rows * _BAND_MIX).sum(axis=1)
    return [(int(k) << 3) | b for b, k in enumerate(keys)]


@dataclass(frozen=True)
class Verdict:
    kind: str | None  # None (unique), "exact" or "near"
    of: int | None = None  # index of the earlier text it duplicates
    similarity: float = 0.0


class DedupIndex:
    """Remembers kept texts; `check` says whether a new one duplicates any of them."""

    def __init__(self, signature: str = "", threshold: float = THRESHOLD):
        self.signature = signature
        self.threshold = threshold
        self._exact: dict[bytes, int] = {}
        self._buckets: dict[int, int | list[int]] = {}
        self._sigs = np.zeros((1024, PERMS), dtype=np.uint32)
        self.size = 0

    def fingerprint(self, text: str) -> tuple:
        """What `check` compares, computed from the text alone (so a worker process can):
        (exact digest, MinHash signature, LSH band keys)."""
        norm = normalize(text, self.signature)
        sig = minhash(norm)
        return hashlib.blake2b(norm.encode(), digest_size=12).digest(), sig, _band_keys(sig)

    def check(self, text: str, fingerprint: tuple | None = None) -> tuple[Verdict, tuple]:
        """Verdict plus a token to pass to `add` (so a kept text is hashed only once);
        `fingerprint`: the text's, computed already."""
        if fingerprint is None:
            norm = normalize(text, self.signature)
            digest = hashlib.blake2b(norm.encode(), digest_size=12).digest()
            if digest in self._exact:
                return Verdict("exact", self._exact[digest], 1.0), (digest, None, None)
            sig = minhash(norm)
            keys = _band_keys(sig)
        else:
            digest, sig, keys = fingerprint
            if digest in self._exact:
                return Verdict("exact", self._exact[digest], 1.0), (digest, None, None)
        best = Verdict(None)
        for key in keys:
            found = self._buckets.get(key)
            for cand in ([found] if isinstance(found, int) else found or []):
                sim = jaccard_estimate(sig, self._sigs[cand])
                if sim >= self.threshold and sim > best.similarity:
                    best = Verdict("near", cand, sim)
        return best, (digest, sig, keys)

    def add(self, token: tuple) -> int:
        digest, sig, keys = token
        idx = self.size
        if idx == len(self._sigs):
            self._sigs = np.concatenate([self._sigs, np.zeros_like(self._sigs)])
        self._sigs[idx] = sig
        self._exact[digest] = idx
        for key in keys:
            found = self._buckets.get(key)
            if found is None:
                self._buckets[key] = idx
            elif isinstance(found, int):
                self._buckets[key] = [found, idx]
            else:
                found.append(idx)
        self.size += 1
        return idx

    def offer(self, text: str) -> Verdict:
        """Check and, if unique, keep."""
        verdict, token = self.check(text)
        if verdict.kind is None:
            self.add(token)
        return verdict
