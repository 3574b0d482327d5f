"""Tickers set aside by a robust (non-strict) load, and why: one bad ticker must not sink a universe.

A strict load raises on the first problem; a robust one records each failing ticker's first
problem here, leaves that ticker out and goes on. Nothing is dropped silently: the report goes
back to the caller (`load_bars(...).attrs["quarantine"]`), which shows it and logs it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import pandas as pd

from forecaster.data.errors import DataValidationError


@dataclass(frozen=True)
class QuarantineEntry:
    """The first problem found in one ticker's bars."""

    ticker: str
    date: str | None  # "YYYY-MM-DD" of the offending row; None for a ticker-wide problem
    row: int | None  # 0-based position of that row in the frame that was checked
    reason: str  # what is wrong, e.g. "close 4.4956 outside [low 44.723, high 45.383]"
    detail: str = ""  # the rule and how many more rows share the problem, "; need ..."
    source: str | None = None  # the file the row is in, when a folder of files was read

    def __str__(self) -> str:
        when = f" on {self.date}" if self.date is not None else ""
        where = f" (row {self.row})" if self.row is not None else ""
        source = f" [{self.source}]" if self.source else ""
        return f"{self.ticker}: {self.reason}{when}{where}{self.detail}{source}"

    def error(self):
        """The `DataValidationError` a strict load raises for this problem."""
        return DataValidationError(str(self), ticker=self.ticker, date=self.date, row=self.row)


@dataclass
class QuarantineReport:
    """Quarantined tickers in the order they were found, one entry each."""

    entries: list[QuarantineEntry] = field(default_factory=list)

    def add(self, entry: QuarantineEntry) -> None:
        if entry.ticker in self:
            raise ValueError(f"{entry.ticker} is already quarantined")  # a bug: checks skip it
        self.entries.append(entry)

    @property
    def empty(self) -> bool:
        return not self.entries

    @property
    def tickers(self) -> list[str]:
        return [e.ticker for e in self.entries]

    def __len__(self) -> int:
        return len(self.entries)

    def __iter__(self) -> Iterator[QuarantineEntry]:
        return iter(self.entries)

    def __contains__(self, ticker: object) -> bool:
        return any(e.ticker == ticker for e in self.entries)

    def only(self, tickers: Iterable[str]) -> QuarantineReport:
        """The entries of `tickers` only (a load that asked for some of a file's tickers)."""
        keep = set(tickers)
        return QuarantineReport([e for e in self.entries if e.ticker in keep])

    def to_frame(self) -> pd.DataFrame:
        """One row per ticker: ticker, date, row, reason, detail, source (for logs and tables)."""
        columns = ["ticker", "date", "row", "reason", "detail", "source"]
        rows = [[getattr(e, c) for c in columns] for e in self.entries]
        return pd.DataFrame(rows, columns=columns).astype({"row": "Int64"})

    def __str__(self) -> str:
        return "\n".join(map(str, self.entries)) if self.entries else "no ticker quarantined"
