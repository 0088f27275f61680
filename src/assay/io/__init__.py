"""Readers and writers for the formats assay meets: JSONL (plain, gzip), Parquet, Arrow, HF folders."""

from assay.io.readers import Row, dataset_files, iter_records, read_rows
from assay.io.writers import HFDatasetWriter, JsonlWriter, ParquetWriter, dumps_line, open_writer

__all__ = ["HFDatasetWriter", "JsonlWriter", "ParquetWriter", "Row", "dataset_files", "dumps_line",
           "iter_records", "open_writer", "read_rows"]
