"""Stage `dedup-exact`: records whose normalised prompt (optionally with the answer) is the same."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from pydantic import Field

from assay.dedup.clusters import ClusterDedup, _hash64
from assay.dedup.spill import Parts
from assay.dedup.text import exact_key
from assay.record import Record, prompt_text, reference
from assay.stage import stage


def group_pairs(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Positions sharing a key, as pairs (first position with that key, other position)."""
    order = np.argsort(keys, kind="stable")
    sk = keys[order]
    same = sk[1:] == sk[:-1]
    if not same.any():
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64)
    run_start = np.ones(len(sk), dtype=bool)
    run_start[1:] = ~same
    head = order[np.flatnonzero(run_start)][np.cumsum(run_start) - 1]
    rest = ~run_start
    return head[rest].astype(np.int64), order[rest].astype(np.int64)


@stage("dedup-exact")
class ExactDedup(ClusterDedup):
    """Exact duplicates after normalisation: Unicode NFKC, case, whitespace, sentence punctuation,
    LaTeX spacing and delimiters (`\\frac{1}{2}` = `\\frac 1 2`, `\\left(` = `(`, `$`) and
    thousands separators do not count. One record per group survives (reference answer or tests
    first, then most responses, longest solution, first seen); the others fail with the
    survivor's id."""

    metric: ClassVar[str] = "exact"
    what: ClassVar[str] = "exact duplicate"

    with_answer: bool = Field(False, description="the reference answer is part of the key (same prompt "
                              "with different answers is kept)")

    def text_of(self, rec: Record) -> str:
        raw = prompt_text(rec)
        text = exact_key(raw) or "\x01" + raw  # nothing but punctuation: compare it as it is
        if self.with_answer:
            text += "\x00" + exact_key(str(reference(rec).get("answer") or ""))
        return text

    def features(self, batch: list[Record], texts: list[str]) -> dict[str, np.ndarray]:
        return {"key": _hash64(texts)}

    def find_pairs(self, parts: Parts) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        a, b = group_pairs(parts.column("key"))
        return a, b, np.ones(len(a))

    def similarity(self, parts: Parts, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return np.ones(len(a))
