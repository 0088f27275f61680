"""The request cache: every answered request, in SQLite, so nothing is paid for twice.

One table keyed by a hash of what determines the answer (model, messages, sampling parameters,
sample index). WAL mode and a busy timeout let several processes (parallel runs, `assay apply`
next to `assay run`) share the file; INSERT OR IGNORE keeps one row per key. Only answers are
stored: failures are retried on the next run. Bodies are zlib-compressed JSON (long reasoning
traces shrink about 3x).
"""

from __future__ import annotations

import hashlib
import sqlite3
import time
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from assay.teacher.completion import Completion

SCHEMA = """
CREATE TABLE IF NOT EXISTS responses (
    key TEXT PRIMARY KEY,
    model TEXT NOT NULL,
    created REAL NOT NULL,
    prompt_tokens INTEGER NOT NULL DEFAULT 0,
    completion_tokens INTEGER NOT NULL DEFAULT 0,
    cost REAL NOT NULL DEFAULT 0,
    hits INTEGER NOT NULL DEFAULT 0,
    latency REAL,
    body BLOB NOT NULL
)
"""
FILE_NAME = "teacher-requests.sqlite"
_CHUNK = 500  # keys per SELECT ... IN (...)


def request_key(model: str, messages: list[dict[str, Any]], params: dict[str, Any], sample: int) -> str:
    """Hash of everything that determines an answer. `params` holds the sampling parameters
    (temperature, top_p, max_tokens, seed, stop, response format, extra body fields)."""
    blob = orjson.dumps({"model": model, "messages": messages, "params": params, "sample": sample},
                        option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS)
    return hashlib.sha256(blob).hexdigest()


def cache_path(cache_dir: Path) -> Path:
    return Path(cache_dir) / FILE_NAME


class RequestCache:
    """Thread-unsafe handle (one per event loop); safe across processes."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(self.path, timeout=60, isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.execute(SCHEMA)
        columns = {row[1] for row in self.db.execute("PRAGMA table_info(responses)")}
        if "latency" not in columns:  # a cache written by an earlier version
            self.db.execute("ALTER TABLE responses ADD COLUMN latency REAL")

    def get_many(self, keys: Iterable[str]) -> dict[str, Completion]:
        """The cached answers among `keys` (and count them as hits)."""
        keys = list(dict.fromkeys(keys))
        found: dict[str, Completion] = {}
        for i in range(0, len(keys), _CHUNK):
            part = keys[i:i + _CHUNK]
            marks = ",".join("?" * len(part))
            rows = self.db.execute(f"SELECT key, body FROM responses WHERE key IN ({marks})", part).fetchall()
            for key, body in rows:
                found[key] = orjson.loads(zlib.decompress(body))
            if rows:
                hit = [k for k, _ in rows]
                self.db.execute(f"UPDATE responses SET hits = hits + 1 WHERE key IN ({','.join('?' * len(hit))})", hit)
        return found

    def get(self, key: str) -> Completion | None:
        return self.get_many([key]).get(key)

    def put(self, key: str, model: str, completion: Completion, cost: float = 0.0) -> bool:
        """Store an answer; False when the key was already there (it is never stored twice)."""
        return self.put_timed(key, model, completion, cost, None)

    def put_timed(self, key: str, model: str, completion: Completion, cost: float, latency: float | None) -> bool:
        """`put`, also keeping how long the request took (for `assay cache stats`)."""
        usage = completion.get("usage") or {}
        cur = self.db.execute(
            "INSERT OR IGNORE INTO responses (key, model, created, prompt_tokens, completion_tokens, cost, latency, "
            "body) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (key, model, time.time(),
             int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0), float(cost), latency,
             zlib.compress(orjson.dumps(completion), 1)),
        )
        return cur.rowcount == 1

    def count(self) -> int:
        return int(self.db.execute("SELECT COUNT(*) FROM responses").fetchone()[0])

    def keys(self) -> set[str]:
        return {k for (k,) in self.db.execute("SELECT key FROM responses")}

    def summary(self) -> CacheSummary:
        rows = self.db.execute(
            "SELECT model, COUNT(*), SUM(hits), SUM(prompt_tokens), SUM(completion_tokens), SUM(cost), "
            "SUM(cost * hits), SUM(LENGTH(body)) FROM responses GROUP BY model ORDER BY model").fetchall()
        models = [ModelSummary(model=m, entries=n, hits=h or 0, prompt_tokens=pt or 0, completion_tokens=ct or 0,
                               cost=c or 0.0, saved=s or 0.0, body_bytes=b or 0) for m, n, h, pt, ct, c, s, b in rows]
        for m in models:
            lat = [x for (x,) in self.db.execute(
                "SELECT latency FROM responses WHERE model = ? AND latency IS NOT NULL ORDER BY latency", (m.model,))]
            if lat:
                m.latency_p50, m.latency_p90, m.latency_p99 = (lat[min(len(lat) - 1, int(q * len(lat)))]
                                                               for q in (0.5, 0.9, 0.99))
                timed = self.db.execute("SELECT SUM(completion_tokens), SUM(latency) FROM responses WHERE model = ? "
                                        "AND latency > 0", (m.model,)).fetchone()
                m.tokens_per_s = timed[0] / timed[1] if timed[1] else None
        size = sum(p.stat().st_size for p in self.path.parent.glob(self.path.name + "*") if p.is_file())
        return CacheSummary(path=self.path, size_bytes=size, models=models)

    def close(self) -> None:
        try:
            self.db.close()
        except sqlite3.Error:
            pass


@dataclass
class ModelSummary:
    model: str
    entries: int
    hits: int
    prompt_tokens: int
    completion_tokens: int
    cost: float  # what the cached answers cost when they were first paid for
    saved: float  # what the hits would have cost
    body_bytes: int
    latency_p50: float | None = None  # seconds per answered request
    latency_p90: float | None = None
    latency_p99: float | None = None
    tokens_per_s: float | None = None  # completion tokens per second of one request (its decode speed)


@dataclass
class CacheSummary:
    path: Path
    size_bytes: int
    models: list[ModelSummary]

    @property
    def entries(self) -> int:
        return sum(m.entries for m in self.models)

    @property
    def hits(self) -> int:
        return sum(m.hits for m in self.models)
