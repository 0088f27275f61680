"""Where things are in a finished run directory (layout: assay.runner.rundir)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from assay.errors import AssayError

_NUMBERED = re.compile(r"^(\d+)-(.+)$")
RECORD_SUFFIXES = (".jsonl", ".jsonl.gz", ".parquet")


@dataclass(frozen=True)
class RejectedFile:
    index: int  # the stage's place in the pipeline (1 = first stage)
    label: str
    path: Path


class RunFiles:
    """Read-only view of a run directory's outputs."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        if not self.path.is_dir():
            raise AssayError(f"'{self.path}' is not a folder; give the run directory of `assay run ... --out DIR`")
        if not (self.path / "stats.json").is_file():
            hint = "the run has not finished yet" if (self.path / ".assay-run").exists() else \
                "it is not an assay run directory"
            raise AssayError(f"'{self.path}' has no stats.json ({hint}); run `assay run PIPELINE.yaml --out DIR` first")

    def stats(self) -> dict[str, Any]:
        try:
            stats = orjson.loads((self.path / "stats.json").read_bytes())
        except orjson.JSONDecodeError as exc:
            raise AssayError(f"'{self.path / 'stats.json'}' is not valid JSON ({exc}); rerun the pipeline") from None
        if not isinstance(stats, dict) or not isinstance(stats.get("stages"), list) \
                or not isinstance(stats.get("input"), dict):
            raise AssayError(f"'{self.path / 'stats.json'}' is not an assay stats file (no 'input' and 'stages')")
        stats["stages"] = [s for s in stats["stages"] if isinstance(s, dict)]
        for s in stats["stages"]:
            if not isinstance(s.get("rejected"), dict):
                s["rejected"] = {}
            s["stage"] = str(s.get("stage") or s.get("type") or "?")
        if not isinstance(stats.get("output"), dict):
            stats["output"] = {}
        return stats

    def config_text(self) -> str | None:
        p = self.path / "config.yaml"
        return p.read_text(encoding="utf-8", errors="replace") if p.is_file() else None

    def versions(self) -> dict[str, Any] | None:
        """Versions recorded by the run itself (stats.json `versions` or versions.json), if any."""
        p = self.path / "versions.json"
        if p.is_file():
            try:
                data = orjson.loads(p.read_bytes())
                return data if isinstance(data, dict) else None
            except orjson.JSONDecodeError:
                return None
        return None

    def output_files(self) -> list[Path]:
        d = self.path / "output"
        return sorted(p for p in d.iterdir() if p.name.endswith(RECORD_SUFFIXES)) if d.is_dir() else []

    def output_jsonl(self) -> list[Path]:
        """Plain JSONL files holding the kept records (the last stage's shards when the output was
        written as Parquet or gzip): byte offsets into these are stable."""
        plain = [p for p in self.output_files() if p.name.endswith(".jsonl")]
        if plain or not self.output_files():
            return plain
        stages = self.stage_dirs()
        return sorted((stages[-1] / "shards").glob("*.jsonl")) if stages else []

    def rejected_files(self) -> list[RejectedFile]:
        d = self.path / "rejected"
        out = []
        for p in sorted(d.glob("*.jsonl")) if d.is_dir() else []:
            m = _NUMBERED.match(p.name[: -len(".jsonl")])
            out.append(RejectedFile(int(m.group(1)), m.group(2), p) if m else RejectedFile(0, p.stem, p))
        return sorted(out, key=lambda r: (r.index, r.label))

    def invalid_file(self) -> Path | None:
        p = self.path / "invalid" / "invalid.jsonl"
        return p if p.is_file() else None

    def stage_dirs(self) -> list[Path]:
        root = self.path / "stages"
        dirs = [p for p in root.iterdir() if p.is_dir() and _NUMBERED.match(p.name)] if root.is_dir() else []
        return sorted(dirs, key=lambda p: int(p.name.split("-", 1)[0]))

    def read_shards(self) -> list[Path]:
        """The records as read (before any stage), for the 'before' distributions."""
        dirs = self.stage_dirs()
        if not dirs or not dirs[0].name.startswith("00-"):
            return []
        return sorted((dirs[0] / "shards").glob("*.jsonl"))
