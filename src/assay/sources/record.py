"""Rows that already have the assay record shape (DESIGN.md)."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from assay.errors import SourceError
from assay.record import DOMAINS, Record
from assay.sources.base import RowAt, Source, source


@source("record")
class RecordSource(Source):
    """Records already in assay's shape; missing `id`, `source` or `domain` can be filled in."""

    default_domain: str | None = Field(None, description="domain for rows that have none")
    default_source: str | None = Field(None, description="source name for rows that have none")
    generate_ids: bool = Field(True, description="give rows without an `id` one from file stem and line")

    def convert(self, row: dict[str, Any], at: RowAt) -> Record:
        if not isinstance(row, dict):
            return row  # validation reports the wrong type with the line
        if "id" not in row and self.generate_ids:
            row["id"] = f"{self.id_prefix or at.file.rsplit('/', 1)[-1].split('.')[0]}/{at.line}"
        if "domain" not in row and self.default_domain:
            if self.default_domain not in DOMAINS:
                raise SourceError(f"default_domain must be one of {', '.join(DOMAINS)}")
            row["domain"] = self.default_domain
        if "source" not in row and self.default_source:
            row["source"] = self.default_source
        return row
