"""Shingle hashing for MinHash, vectorised with numpy over a whole batch of texts.

Python-level shingling (building n-gram strings) costs more than the MinHash itself, so a batch
is joined into one byte buffer, words are found and hashed with array operations, and n-gram
hashes are rolled from word hashes. Hashes are stable across processes and runs (no Python
`hash()`), so signatures computed in different workers are comparable.
"""

from __future__ import annotations

import string
import threading
import unicodedata

import numpy as np

from assay.dedup.text import shingle_text

_U64 = np.uint64
_GOLDEN = _U64(0x9E3779B97F4A7C15)
_PRIME = 1099511628211  # FNV prime: the base of the polynomial byte hash


def mix64(x: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser: spreads the bits of a uint64 array (wrapping arithmetic)."""
    with np.errstate(over="ignore"):
        x = x ^ (x >> _U64(30))
        x = x * _U64(0xBF58476D1CE4E5B9)
        x = x ^ (x >> _U64(27))
        x = x * _U64(0x94D049BB133111EB)
        return x ^ (x >> _U64(31))


def _offsets(counts: np.ndarray) -> np.ndarray:
    off = np.zeros(len(counts) + 1, dtype=np.int64)
    np.cumsum(counts, out=off[1:])
    return off


def roll_ngrams(units: np.ndarray, unit_off: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Hashes of every run of `n` consecutive units inside each document.

    `units` holds the unit hashes (words or characters) of all documents back to back and
    `unit_off` (len docs+1) where each document starts. A document with fewer than `n` units
    (but at least one) gets one shingle made of all its units; an empty one gets none.
    Returns (shingle hashes, offsets per document).
    """
    ndocs = len(unit_off) - 1
    lens = np.diff(unit_off)
    total = len(units)
    m = total - n + 1
    if m > 0:
        h = units[:m].copy()
        with np.errstate(over="ignore"):
            for k in range(1, n):
                h = h * _GOLDEN + units[k : k + m]
        doc_of = np.repeat(np.arange(ndocs), lens)
        valid = doc_of[:m] == doc_of[n - 1 :]
        h = h[valid]
        counts = np.bincount(doc_of[:m][valid], minlength=ndocs)
    else:
        h = np.empty(0, dtype=np.uint64)
        counts = np.zeros(ndocs, dtype=np.int64)
    short = np.flatnonzero((lens > 0) & (lens < n))
    if len(short):  # rare: documents shorter than one shingle
        extra = np.empty(len(short), dtype=np.uint64)
        with np.errstate(over="ignore"):
            for j, d in enumerate(short):
                acc = _U64(0)
                for u in units[unit_off[d] : unit_off[d + 1]]:
                    acc = acc * _GOLDEN + u
                extra[j] = acc
        regular = counts
        counts = counts.copy()
        counts[short] = 1
        off = _offsets(counts)
        out = np.empty(int(off[-1]), dtype=np.uint64)
        is_short = np.zeros(ndocs, dtype=np.int64)
        is_short[short] = 1
        shorts_before = np.cumsum(is_short) - is_short
        out[np.arange(len(h)) + shorts_before[np.repeat(np.arange(ndocs), regular)]] = h
        out[off[short]] = extra
        return mix64(out), off
    return mix64(h), _offsets(counts)


_CHUNK_BYTES = 1 << 20  # hash about this much text at a time (keeps the arrays in cache)


class _Powers:
    """P**i and P**-i (mod 2**64) for i < n, grown on demand: a word's polynomial hash is then a
    difference of prefix sums, with no per-byte position arithmetic. Thread-safe: both tables are
    swapped in as one tuple (MinHash hashes two halves of a batch in two threads)."""

    def __init__(self, base: int):
        self.base = base
        self.inverse = pow(base, -1, 1 << 64)
        self._tables = (np.ones(1, dtype=np.uint64), np.ones(1, dtype=np.uint64))
        self._lock = threading.Lock()

    def get(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        up, down = self._tables
        if len(up) < n:
            with self._lock:
                up, down = self._tables
                if len(up) < n:
                    size = max(n, 2 * len(up), 2 * _CHUNK_BYTES)
                    one = np.ones(1, dtype=np.uint64)
                    with np.errstate(over="ignore"):
                        up = np.concatenate((one, np.cumprod(np.full(size - 1, self.base, dtype=np.uint64))))
                        down = np.concatenate((one, np.cumprod(np.full(size - 1, self.inverse, dtype=np.uint64))))
                    self._tables = (up, down)
        return up[:n], down[:n]


_POWERS = _Powers(_PRIME)
_BYTE_MAP = np.arange(256, dtype=np.uint8)
_BYTE_MAP[[ord(c) for c in string.punctuation]] = 32  # the same view as text.shingle_text


def word_hashes(texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Hashes of the normalised words of each text: (flat uint64 hashes, offsets per text)."""
    hashes: list[np.ndarray] = []
    counts: list[np.ndarray] = []
    start, size = 0, 0
    for i, t in enumerate(texts):
        size += len(t)
        if size >= _CHUNK_BYTES or i == len(texts) - 1:
            h, off = _word_hashes(texts[start : i + 1])
            hashes.append(h)
            counts.append(np.diff(off))
            start, size = i + 1, 0
    if not hashes:
        return np.empty(0, dtype=np.uint64), np.zeros(len(texts) + 1, dtype=np.int64)
    return np.concatenate(hashes), _offsets(np.concatenate(counts))


def _word_hashes(texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    # one normalisation call for the whole chunk: NFKC, lower case, ASCII punctuation -> space
    joined = unicodedata.normalize("NFKC", "\x00".join(texts)).lower().encode("utf-8")
    buf = _BYTE_MAP[np.frombuffer(joined, dtype=np.uint8)]
    if not len(buf):
        return np.empty(0, dtype=np.uint64), np.zeros(len(texts) + 1, dtype=np.int64)
    inword = buf > 32  # spaces, controls and the \x00 document separator split words
    edges = np.flatnonzero(np.diff(inword.view(np.int8), prepend=0, append=0))
    starts, ends = edges[0::2], edges[1::2]
    up, down = _POWERS.get(len(buf) + 1)
    with np.errstate(over="ignore"):
        prefix = np.zeros(len(buf) + 1, dtype=np.uint64)
        np.cumsum(buf * up[1:], out=prefix[1:])  # wrapping arithmetic mod 2**64
        wh = (prefix[ends] - prefix[starts]) * down[starts]
        wh = mix64(wh + (ends - starts).astype(np.uint64))
    seps = np.flatnonzero(buf == 0)
    doc_bounds = np.concatenate(([0], seps, [len(buf)]))
    return wh, np.searchsorted(starts, doc_bounds).astype(np.int64)


def char_hashes(texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Code points of each normalised text (whitespace collapsed to one space)."""
    norm = [" ".join(shingle_text(t).split()) for t in texts]
    lens = np.fromiter((len(t) for t in norm), dtype=np.int64, count=len(norm))
    cps = np.frombuffer("".join(norm).encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)
    return mix64(cps + _GOLDEN), _offsets(lens)


def shingle_hashes(texts: list[str], kind: str, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(flat uint64 shingle hashes, int64 offsets per text) for word or character n-grams."""
    units, off = word_hashes(texts) if kind == "word" else char_hashes(texts)
    return roll_ngrams(units, off, n)
