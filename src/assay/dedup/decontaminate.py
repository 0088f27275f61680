"""Stage `decontaminate`: prompts that copy or reword a benchmark item.

Two detectors, each naming the benchmark file, the item and the evidence:
- n-gram overlap on normalised words (LaTeX, case, punctuation and variable names do not
  count): 13-grams for long items, 8-grams for short ones (as datatrove and open-r1 do); an item
  shorter than that is matched whole. For short items a share `min_overlap` of their n-grams
  must be present, so one stock phrase is not enough; n-grams found in many items (boilerplate
  such as "express your answer as a common fraction") are ignored.
- embedding similarity: cosine of sentence embeddings >= `threshold` (default 0.9, as the AM
  team did), which catches paraphrases.
- the same numbers: a rewording keeps the problem's numbers, and a small embedding model scores
  many rewordings at 0.8-0.9. A prompt within `numbers_cosine` of an item and with exactly its
  numbers (enough of them to be distinctive: `196`, or `(2, -6)` and `(-4, 3)`) counts too.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import Field, PrivateAttr, field_validator

from assay.dedup.benchmarks import Item, load_benchmarks
from assay.dedup.semantic import EmbeddingFields, make_embedder
from assay.dedup.text import distinctive, embedding_view, numbers, words
from assay.errors import ConfigError
from assay.record import Record, Verdict, prompt_text
from assay.stage import Execution, RecordCheck, StageContext, stage


@dataclass
class NgramIndex:
    sizes: list[int]  # the n-gram lengths in use
    grams: dict[int, dict[int, list[int]]]  # n -> hash of n-gram -> items
    totals: list[int]  # n-grams per item
    short: list[bool]  # items checked with the short-item rule
    ignored: int = 0  # boilerplate n-grams dropped


@dataclass
class Hit:
    item: int
    shared: int = 0
    overlap: float = 0.0
    evidence: str = ""
    n: int = 0
    cosine: float | None = None


NEIGHBOURS = 5  # benchmark items looked at per prompt for the numbers rule


def _ngrams(ws: list[str], n: int) -> list[tuple[int, int]]:
    """(hash, start) of every n-gram of `ws` (hashes are process-local: built and used in one process).
    N-grams of very few distinct words are left out: variable names all read as `x`, so a list of
    variables ("P(H, U, P, W)") would otherwise match every other list of variables."""
    distinct = max(2, min(4, n // 3))
    out = []
    for i in range(len(ws) - n + 1):
        gram = tuple(ws[i : i + n])
        if len(set(gram)) >= distinct:
            out.append((hash(gram), i))
    return out


@stage("decontaminate")
class Decontaminate(RecordCheck, EmbeddingFields):
    """Benchmark decontamination: fails a record whose prompt shares n-grams with a benchmark item
    (13-grams for long items, 8-grams for short ones) or whose embedding is as close as
    `threshold` (cosine) to one. Benchmarks are JSONL / JSON / Parquet files (or folders) with a
    text field (problem, question, prompt, text, ... detected; or `text_field`). The check names
    the benchmark, the item (row index and id) and the evidence (shared n-gram or cosine).
    Score: 1.0 for an n-gram match, else the highest cosine to any item."""

    execution: ClassVar[Execution] = "main"  # one embedding model, all cores; the benchmark index is built once
    batch_size: ClassVar[int] = 1024
    loads_model: ClassVar[bool] = True

    benchmarks: list[str] = Field(description="benchmark files or folders (comma-separated with --set), "
                                  "e.g. ../shared/data/math500/test.jsonl")
    text_field: str | None = Field(None, description="the benchmark field holding the problem text "
                                   "(default: detected per file)")
    methods: list[Literal["ngram", "embedding"]] = Field(["ngram", "embedding"], description="detectors to run")
    ngram: int = Field(13, ge=2, description="n-gram length for long items")
    ngram_short: int = Field(8, ge=2, description="n-gram length for short items")
    short_words: int = Field(30, ge=1, description="items with fewer words than this are short")
    min_words: int = Field(4, ge=1, description="items with fewer words than this are left to the embeddings")
    min_overlap: float = Field(0.5, ge=0, le=1, description="short items: share of their n-grams the prompt "
                               "must contain")
    boilerplate_items: int = Field(5, ge=2, description="n-grams found in at least this many items are ignored")
    threshold: float = Field(0.9, gt=-1, le=1, description="cosine similarity to a benchmark item that counts "
                             "as contamination")
    numbers_cosine: float | None = Field(0.75, gt=-1, le=1, description="a prompt this close (cosine) to an item "
                                         "and with exactly its numbers is a rewording of it (null: off)")
    flat_max: int = Field(200_000, ge=1, description="benchmark items searched exactly up to this many (HNSW above)")

    _items: list[Item] = PrivateAttr(default_factory=list)
    _ngrams: NgramIndex | None = PrivateAttr(default=None)
    _index: Any = PrivateAttr(default=None)
    _embedder: Any = PrivateAttr(default=None)
    _counts: Counter[str] = PrivateAttr(default_factory=Counter)
    _numbers: list[frozenset[str]] = PrivateAttr(default_factory=list)

    @field_validator("benchmarks")
    @classmethod
    def _need_benchmarks(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("give at least one benchmark file")
        return value

    # ---- setup: index the benchmarks ------------------------------------------------------
    def setup(self, ctx: StageContext) -> None:
        super().setup(ctx)
        self._items = load_benchmarks(self.benchmarks, self.text_field)
        if not self._items:
            raise ConfigError(f"decontaminate: the benchmark files hold no items ({', '.join(self.benchmarks)})")
        if "ngram" in self.methods:
            self._ngrams = self.build_ngrams(self._items)
        if "embedding" in self.methods:
            from assay.dedup.knn import build_index

            self._embedder = make_embedder(self, ctx)
            vectors = self._embedder.encode([self._view(it.text) for it in self._items])
            self._index = build_index(vectors, kind="auto", flat_max=self.flat_max,
                                      threads=os.cpu_count())
            self._numbers = [numbers(it.text) for it in self._items]

    def _view(self, text: str) -> str:
        return embedding_view(text) if self.normalize else text

    def build_ngrams(self, items: list[Item]) -> NgramIndex:
        per_item: list[tuple[int, set[int]]] = []
        short = []
        frequency: Counter[tuple[int, int]] = Counter()
        for item in items:
            ws = words(item.text)
            is_short = len(ws) < self.short_words
            n = self.ngram_short if is_short else self.ngram
            if len(ws) < n:
                n = len(ws) if len(ws) >= self.min_words else 0
            hashes = {h for h, _ in _ngrams(ws, n)} if n else set()
            frequency.update((n, h) for h in hashes)
            per_item.append((n, hashes))
            short.append(is_short)
        boilerplate = {key for key, count in frequency.items() if count >= self.boilerplate_items}
        grams: dict[int, dict[int, list[int]]] = {}
        totals = []
        for idx, (n, hashes) in enumerate(per_item):
            kept = [h for h in hashes if (n, h) not in boilerplate]
            for h in kept:
                grams.setdefault(n, {}).setdefault(h, []).append(idx)
            totals.append(len(kept))  # the share a prompt must cover counts only distinctive n-grams
        return NgramIndex(sorted(grams), grams, totals, short, len(boilerplate))

    # ---- checking -------------------------------------------------------------------------
    def ngram_hits(self, text: str) -> list[Hit]:
        index = self._ngrams
        if index is None:
            return []
        ws = words(text)
        found: dict[int, Hit] = {}
        seen: dict[int, set[int]] = {}
        for n in index.sizes:
            table = index.grams[n]
            for h, start in _ngrams(ws, n):
                for item in table.get(h, ()):
                    hs = seen.setdefault(item, set())
                    if h in hs:
                        continue
                    hs.add(h)
                    hit = found.get(item)
                    if hit is None:
                        hit = found[item] = Hit(item, n=n, evidence=" ".join(ws[start : start + n]))
                    hit.shared += 1
        hits = []
        for item, hit in found.items():
            hit.overlap = hit.shared / max(1, index.totals[item])
            if not index.short[item] or hit.overlap >= self.min_overlap:
                hits.append(hit)
        return sorted(hits, key=lambda h: (-h.overlap, -h.shared, h.item))

    def check_batch(self, records: list[Record]) -> list[Verdict]:
        texts = [prompt_text(r) for r in records]
        best_cos = np.full(len(records), np.nan)
        best_item = np.full(len(records), -1)
        reworded: list[tuple[int, float] | None] = [None] * len(records)
        if self._index is not None and records:
            from assay.dedup.knn import search

            vectors = self._embedder.encode([self._view(t) for t in texts])
            k = min(NEIGHBOURS, len(self._items)) if self.numbers_cosine is not None else 1
            for start, sims, nbrs in search(self._index, vectors, k):
                best_cos[start : start + len(sims)] = sims[:, 0]
                best_item[start : start + len(sims)] = nbrs[:, 0]
                if self.numbers_cosine is not None:
                    for row in range(len(sims)):
                        reworded[start + row] = self._same_numbers(texts[start + row], sims[row], nbrs[row])
        return [self._verdict(t, None if np.isnan(c) else float(c), int(i), r)
                for t, c, i, r in zip(texts, best_cos, best_item, reworded, strict=True)]

    def _same_numbers(self, text: str, sims: np.ndarray, nbrs: np.ndarray) -> tuple[int, float] | None:
        """The closest item within numbers_cosine that has exactly the prompt's (distinctive) numbers."""
        mine = None
        for sim, item in zip(sims, nbrs, strict=True):
            if item < 0 or sim < self.numbers_cosine:
                break
            if mine is None:
                mine = numbers(text)
                if not distinctive(mine):
                    return None
            if self._numbers[item] == mine:
                return int(item), float(sim)
        return None

    def check(self, record: Record) -> Verdict:
        return self.check_batch([record])[0]

    def _verdict(self, text: str, cosine: float | None, nearest: int,
                 reworded: tuple[int, float] | None = None) -> Verdict:
        hits = self.ngram_hits(text)
        by_embedding = cosine is not None and cosine >= self.threshold
        if not hits and not by_embedding and reworded is not None:
            return self._numbers_verdict(*reworded)
        if not hits and not by_embedding:
            where = f"; nearest: {self._name(nearest)}, cosine {cosine:.3f}" if cosine is not None else ""
            return Verdict(True, round(cosine, 4) if cosine is not None else 0.0, f"clean{where}")
        hit = hits[0] if hits else Hit(nearest)
        item = self._items[hit.item]
        details: dict[str, Any] = {"benchmark": item.benchmark, "item": item.index, "item_id": item.item_id}
        parts = []
        if hits:
            parts.append(f"{hit.shared} shared {hit.n}-gram{'s' if hit.shared > 1 else ''} "
                         f"({hit.overlap:.0%} of the item), e.g. '{hit.evidence}'")
            details.update(method="ngram", evidence=hit.evidence, ngram=hit.n, shared_ngrams=hit.shared,
                           overlap=round(hit.overlap, 3))
            if len(hits) > 1:
                details["other_items"] = len(hits) - 1
        if cosine is not None:
            same_item = nearest == hit.item
            if by_embedding and (same_item or not hits):
                parts.append(f"cosine {cosine:.3f}")
                details["method"] = "ngram+embedding" if hits else "embedding"
            details["similarity"] = round(cosine, 4) if same_item else None
            if not same_item:
                details["nearest"] = {"benchmark": self._items[nearest].benchmark,
                                      "item": self._items[nearest].index, "similarity": round(cosine, 4)}
        if not hits:
            details["evidence"] = f"cosine {cosine:.3f}"
        self._count(item)
        score = 1.0 if hits else round(float(cosine or 0.0), 4)
        reason = f"matches {self._name(hit.item)}: " + "; ".join(parts)
        return Verdict(False, score, reason, code=f"contaminated: {item.benchmark}", details=details)

    def _numbers_verdict(self, idx: int, cosine: float) -> Verdict:
        item = self._items[idx]
        shown = ", ".join(sorted(self._numbers[idx], key=lambda n: (len(n), n))[:8])
        evidence = f"cosine {cosine:.3f} and the same numbers ({shown})"
        details = {"benchmark": item.benchmark, "item": item.index, "item_id": item.item_id,
                   "method": "embedding+numbers", "similarity": round(cosine, 4), "evidence": evidence}
        self._count(item)
        return Verdict(False, round(cosine, 4), f"matches {self._name(idx)}: {evidence}",
                       code=f"contaminated: {item.benchmark}", details=details)

    def _count(self, item: Item) -> None:
        self._counts["contaminated"] += 1
        self._counts[f"by_benchmark:{item.benchmark}"] += 1

    def _name(self, idx: int) -> str:
        item = self._items[idx]
        ident = f" ({item.item_id})" if item.item_id is not None and item.item_id != str(item.index) else ""
        return f"{item.benchmark} item {item.index}{ident}"

    def stats(self) -> dict[str, Any]:
        counts = dict(self._counts)
        self._counts.clear()
        out: dict[str, Any] = {"contaminated": counts.pop("contaminated", 0)}
        out["by_benchmark"] = {k.split(":", 1)[1]: v for k, v in counts.items() if k.startswith("by_benchmark:")}
        if self._embedder is not None:
            out.update({f"embeddings_{k}": v for k, v in self._embedder.stats.items()})
            self._embedder.stats = {k: 0 for k in self._embedder.stats}
        return out

    def teardown(self) -> None:
        if self._embedder is not None:
            self._embedder.close()
