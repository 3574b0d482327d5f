"""The data layer's errors: what a bad bar or an unavailable source raises."""

from __future__ import annotations


class DataValidationError(ValueError):
    """Bars break the data contract; `ticker`, `date` and `row` say where, when known."""

    def __init__(self, message: str, *, ticker=None, date=None, row: int | None = None):
        super().__init__(message)
        self.ticker, self.date, self.row = ticker, date, row


class DataSourceError(RuntimeError):
    """A source cannot deliver the bars asked for: unknown ticker, no file, HTTP failure."""
