"""Per-record columns kept on disk while a dedup stage indexes, so memory stays flat.

A `Spill` is one folder of raw little-endian arrays that grow batch by batch (ids, hashes,
signatures, embeddings); `Parts` reads several spills (one per indexed shard group) as one
sequence in order, by global position.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np


class Spill:
    """Append-only named arrays in one folder; `close()` writes their shapes to `columns.json`."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        self._files: dict[str, Any] = {}
        self._shape: dict[str, tuple[str, list[int]]] = {}
        self._ids = open(self.path / "ids.txt", "wb")
        self._id_ends: list[np.ndarray] = []
        self._id_pos = 0
        self.n = 0

    def append(self, name: str, array: np.ndarray) -> None:
        array = np.ascontiguousarray(array)
        spec = (array.dtype.str, list(array.shape[1:]))
        if name not in self._files:
            self._files[name] = open(self.path / f"{name}.bin", "wb")
            self._shape[name] = spec
        elif self._shape[name] != spec:
            raise ValueError(f"column {name}: got {spec}, expected {self._shape[name]}")
        self._files[name].write(array.data)

    def append_ids(self, ids: Iterable[str]) -> None:
        data = [i.encode("utf-8") for i in ids]
        ends = np.cumsum([len(d) for d in data], dtype=np.int64) + self._id_pos
        self._ids.write(b"".join(data))
        self._id_ends.append(ends)
        self._id_pos = int(ends[-1]) if len(ends) else self._id_pos
        self.n += len(data)

    def close(self) -> Spill:
        if self._ids.closed:
            return self
        for f in self._files.values():
            f.close()
        self._ids.close()
        ends = np.concatenate(self._id_ends) if self._id_ends else np.empty(0, dtype=np.int64)
        ends.tofile(self.path / "ids.end")
        meta = {"n": self.n, "columns": {k: {"dtype": d, "shape": s} for k, (d, s) in self._shape.items()}}
        (self.path / "columns.json").write_text(json.dumps(meta))
        return self


class Parts:
    """Closed spills read back as one sequence: global position = offset of the part + local."""

    def __init__(self, paths: list[Path]):
        self.paths = [Path(p) for p in paths]
        self.meta = [json.loads((p / "columns.json").read_text()) for p in self.paths]
        sizes = [m["n"] for m in self.meta]
        self.starts = np.concatenate(([0], np.cumsum(sizes))).astype(np.int64)
        self.n = int(self.starts[-1])
        self._maps: dict[tuple[int, str], np.ndarray] = {}

    def _map(self, part: int, name: str) -> np.ndarray:
        key = (part, name)
        if key not in self._maps:
            spec = self.meta[part]["columns"].get(name)
            if spec is None or self.meta[part]["n"] == 0:
                shape0 = (0, *(spec["shape"] if spec else []))
                self._maps[key] = np.empty(shape0, dtype=np.dtype(spec["dtype"]) if spec else np.uint8)
            else:
                shape = (self.meta[part]["n"], *spec["shape"])
                self._maps[key] = np.memmap(self.paths[part] / f"{name}.bin", dtype=np.dtype(spec["dtype"]),
                                            mode="r", shape=shape)
        return self._maps[key]

    def column(self, name: str) -> np.ndarray:
        """A whole column in memory (for small per-record columns: hashes, priorities)."""
        cols = [np.asarray(self._map(i, name)) for i in range(len(self.paths))]
        return np.concatenate(cols) if cols else np.empty(0)

    def part_views(self, name: str) -> list[tuple[int, np.ndarray]]:
        """(global start, memory map) of each part, for streaming over a large column."""
        return [(int(self.starts[i]), self._map(i, name)) for i in range(len(self.paths))]

    def rows(self, name: str, idx: np.ndarray) -> np.ndarray:
        """Rows at global positions `idx` of a (possibly large) column, read from disk."""
        idx = np.asarray(idx, dtype=np.int64)
        part = np.searchsorted(self.starts, idx, side="right") - 1
        first = self._map(0, name)
        out = np.empty((len(idx), *first.shape[1:]), dtype=first.dtype)
        for p in np.unique(part):
            sel = part == p
            local = idx[sel] - self.starts[p]
            order = np.argsort(local)
            got = np.empty((len(local), *first.shape[1:]), dtype=first.dtype)
            got[order] = self._map(int(p), name)[local[order]]
            out[sel] = got
        return out

    def ids(self, idx: Iterable[int]) -> list[str]:
        """Record ids at global positions `idx`."""
        out = []
        for g in idx:
            p = int(np.searchsorted(self.starts, g, side="right") - 1)
            ends, text = self._id_maps(p)
            local = int(g - self.starts[p])
            start = int(ends[local - 1]) if local else 0
            out.append(bytes(text[start : int(ends[local])]).decode("utf-8"))
        return out

    def _id_maps(self, part: int) -> tuple[np.ndarray, np.ndarray]:
        key = (part, "\x00ids")
        if key not in self._maps:
            ends = np.fromfile(self.paths[part] / "ids.end", dtype=np.int64)
            size = int(ends[-1]) if len(ends) else 0
            text = (np.memmap(self.paths[part] / "ids.txt", dtype=np.uint8, mode="r", shape=(size,))
                    if size else np.empty(0, dtype=np.uint8))
            self._maps[key] = ends
            self._maps[(part, "\x00text")] = text
        return self._maps[key], self._maps[(part, "\x00text")]

    def remove(self) -> None:
        self._maps.clear()
        for p in self.paths:
            shutil.rmtree(p, ignore_errors=True)
