"""`assay report DIR`: analyse the run and write DIR/report.html."""

from __future__ import annotations

from pathlib import Path

from assay.io.writers import atomic_write_bytes
from assay.report.analyze import EXAMPLES_PER_REASON, Analysis, analyze
from assay.report.render import render


def build_report(run_dir: str | Path, out: str | Path | None = None, *, tokenizer: str | None = None,
                 examples: int = EXAMPLES_PER_REASON) -> tuple[Path, Analysis]:
    """Write the report (default DIR/report.html) and return its path and what it shows."""
    analysis = analyze(run_dir, tokenizer=tokenizer, examples_per_reason=examples)
    path = Path(out) if out is not None else analysis.run_dir / "report.html"
    atomic_write_bytes(path, render(analysis).encode("utf-8"))
    return path, analysis
