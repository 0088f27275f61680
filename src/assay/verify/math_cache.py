"""Decisions of `math-verify` remembered across runs: one SQLite file under the cache dir.

Keyed by a hash of (comparison version, reference, answer, choices); timeouts and crashes are
never stored (they depend on the machine's load, not on the pair). Any SQLite trouble (a
read-only disk, a corrupt file) turns the cache off for the rest of the run: it only saves time.
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Iterable
from pathlib import Path

import orjson

from assay.verify.math_compare import Judgement

Key = tuple[str, str, tuple[str, ...] | None]


def digest(version: str, key: Key) -> str:
    return hashlib.sha256(orjson.dumps([version, key[0], key[1], key[2]])).hexdigest()


class DecisionCache:
    def __init__(self, path: Path, version: str):
        self.path, self.version = path, version
        self._db: sqlite3.Connection | None = None
        self.broken = False

    def _conn(self) -> sqlite3.Connection | None:
        if self._db is None and not self.broken:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                db = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
                db.execute("PRAGMA journal_mode=WAL")
                db.execute("PRAGMA synchronous=NORMAL")
                db.execute("CREATE TABLE IF NOT EXISTS decisions (k TEXT PRIMARY KEY, v BLOB NOT NULL)")
                self._db = db
            except (sqlite3.Error, OSError):
                self.broken = True
        return self._db

    def get_many(self, keys: Iterable[Key]) -> dict[Key, Judgement]:
        keys = list(keys)
        db = self._conn()
        if db is None or not keys:
            return {}
        by_digest = {digest(self.version, k): k for k in keys}
        found: dict[Key, Judgement] = {}
        digests = list(by_digest)
        try:
            for i in range(0, len(digests), 500):
                part = digests[i:i + 500]
                rows = db.execute(f"SELECT k, v FROM decisions WHERE k IN ({','.join('?' * len(part))})", part)
                for k, v in rows:
                    found[by_digest[k]] = Judgement.from_dict(orjson.loads(v))
        except (sqlite3.Error, TypeError, ValueError):
            self._fail()
            return {}
        return found

    def put_many(self, items: Iterable[tuple[Key, Judgement]]) -> None:
        db = self._conn()
        if db is None:
            return
        rows = [(digest(self.version, k), orjson.dumps(j.to_dict())) for k, j in items]
        if not rows:
            return
        try:
            db.execute("BEGIN")
            db.executemany("INSERT OR REPLACE INTO decisions (k, v) VALUES (?, ?)", rows)
            db.execute("COMMIT")
        except sqlite3.Error:
            self._fail()

    def _fail(self) -> None:
        self.broken = True
        self.close()

    def close(self) -> None:
        if self._db is not None:
            try:
                self._db.close()
            except sqlite3.Error:
                pass
            self._db = None
