"""Errors that reach the user as one clear sentence (the CLI prints them without a traceback)."""

from __future__ import annotations


class AssayError(Exception):
    """Base class: the message is meant for the user as-is."""


class ConfigError(AssayError):
    """A pipeline config or stage parameter is wrong."""


class RecordError(AssayError):
    """One record is malformed. `field` is a dotted path such as `reference.tests.cases[0].input`."""

    def __init__(self, message: str, field: str | None = None):
        self.field = field
        super().__init__(f"field '{field}': {message}" if field else message)


class SourceError(RecordError):
    """A row of a public data set cannot be mapped to a record."""
