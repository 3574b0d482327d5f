"""The price store: validated daily bars, one Parquet file per ticker.

`<root>/<TICKER>.parquet`, the ticker as `validate_ticker` returns it: upper-case letters,
digits and `. ^ = & -`, never a path separator and never a leading '.', so the name is safe
and the ticker is the file name minus `.parquet`. Temporary files start with '.', so they
are never mistaken for a ticker.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from forecaster.data.validation import (
    DataSourceError,
    DataValidationError,
    select_bars,
    ticker_list,
    validate_bars,
    validate_ticker,
)

SUFFIX = ".parquet"


class PriceStore:
    """Daily bars per ticker under `root` (created on first write)."""

    def __init__(self, root: str | Path):
        self.root = Path(root)

    def __repr__(self) -> str:
        return f"PriceStore({str(self.root)!r})"

    def path(self, ticker: str) -> Path:
        """The file that holds `ticker`'s bars (it may not exist yet)."""
        return self.root / f"{validate_ticker(ticker)}{SUFFIX}"

    def tickers(self) -> list[str]:
        """Stored tickers, sorted."""
        if not self.root.is_dir():
            return []
        stems = (p.name[: -len(SUFFIX)] for p in self.root.glob(f"*{SUFFIX}"))
        return sorted(s for s in stems if _is_canonical(s))

    def write(self, bars: pd.DataFrame) -> list[str]:
        """Validate `bars` and replace each of its tickers' files; return the tickers written.

        Each file is written to a temporary file in the same folder and moved into place with
        `os.replace`, so a reader sees the old file or the new one, never half of one, and a
        crash leaves the old file as it was. Tickers not in `bars` are left alone.
        """
        bars = validate_bars(bars)
        self.root.mkdir(parents=True, exist_ok=True)
        written = []
        for ticker, group in bars.groupby("ticker", sort=True):
            self._write_atomic(self.path(ticker), group.reset_index(drop=True))
            written.append(ticker)
        return written

    def read(
        self,
        tickers: str | Iterable[str] | None = None,
        start=None,
        end=None,
    ) -> pd.DataFrame:
        """Validated bars of `tickers` (default: all stored) dated in [start, end], inclusive.

        Raises `DataSourceError` naming a ticker that is not stored or has no bars in range.
        """
        wanted = self.tickers() if tickers is None else ticker_list(tickers)
        if not wanted:
            raise DataSourceError(f"{self}: no tickers stored")
        bars = validate_bars(pd.concat([self._read_one(t) for t in wanted]))
        return select_bars(bars, wanted, start, end)

    def last_date(self, ticker: str) -> pd.Timestamp:
        """The date of `ticker`'s latest stored bar."""
        return self._read_one(ticker, columns=["date"])["date"].max()

    def _read_one(self, ticker: str, columns: list[str] | None = None) -> pd.DataFrame:
        path = self.path(ticker)
        if not path.is_file():
            stored = ", ".join(self.tickers()) or "none"
            raise DataSourceError(f"{validate_ticker(ticker)}: not in {self} (stored: {stored})")
        try:
            return pd.read_parquet(path, columns=columns)
        except (OSError, ValueError) as exc:
            raise DataSourceError(f"{path}: cannot read the stored bars: {exc}") from exc

    @staticmethod
    def _write_atomic(path: Path, bars: pd.DataFrame) -> None:
        # Same folder, so os.replace is a rename; a leading '.' hides it from tickers().
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
        try:
            with open(tmp, "xb") as f:
                bars.to_parquet(f, index=False)
                f.flush()
                os.fsync(f.fileno())  # the data is on disk before the name points at it
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise


def _is_canonical(stem: str) -> bool:
    try:
        return validate_ticker(stem) == stem
    except DataValidationError:
        return False
