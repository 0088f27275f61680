"""Adapters from public data-set formats to assay records (`assay sources` lists them)."""

from assay.sources.base import RowAt, Source, build_source, need, source, sources

__all__ = ["RowAt", "Source", "build_source", "need", "source", "sources"]
