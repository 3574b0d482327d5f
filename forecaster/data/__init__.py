"""Daily bars: sources, validation and the Parquet price store.

Every function here returns the same contract: a long frame with columns `BAR_COLUMNS`
(ticker, date, open, high, low, close, adj_close, volume), one row per ticker and trading day,
sorted by ticker then date; see `forecaster.data.validation`.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from forecaster.data.files import read_bars_dir, read_bars_file
from forecaster.data.layout import bars_from_frame
from forecaster.data.sample import SAMPLE_TICKERS, load_sample
from forecaster.data.store import PriceStore
from forecaster.data.validation import (
    BAR_COLUMNS,
    DataSourceError,
    DataValidationError,
    select_bars,
    validate_bars,
    validate_ticker,
)
from forecaster.data.yahoo import download_bars

__all__ = [
    "BAR_COLUMNS",
    "SAMPLE_TICKERS",
    "DataSourceError",
    "DataValidationError",
    "PriceStore",
    "bars_from_frame",
    "download_bars",
    "load_bars",
    "load_sample",
    "read_bars_dir",
    "read_bars_file",
    "select_bars",
    "validate_bars",
    "validate_ticker",
]

SOURCES = ("sample", "yahoo", "cache")


def load_bars(
    source: str | Path,
    tickers: str | Iterable[str] | None = None,
    start=None,
    end=None,
    *,
    price_dir: str | Path | None = None,
) -> pd.DataFrame:
    """Validated bars of `tickers` dated in [start, end] (inclusive) from `source`.

    `source` is "sample" (the bundled S&P 500 / NASDAQ data), "yahoo" (needs `tickers`),
    "cache" (the `PriceStore` at `price_dir`), or the path of a CSV/Parquet file or of a
    folder of them. `tickers=None` means all the source has; a requested ticker the source
    lacks raises `DataSourceError` naming it.

    >>> load_bars("sample", "^GSPC", start="2018-01-01").shape
    (251, 8)
    """
    if source == "sample":
        bars = load_sample(tickers)
    elif source == "yahoo":
        if tickers is None:
            raise ValueError("source 'yahoo' needs tickers, e.g. tickers=['^GSPC']")
        bars = download_bars(tickers, start, end)
    elif source == "cache":
        if price_dir is None:
            raise ValueError("source 'cache' needs price_dir, the price store's folder")
        return PriceStore(price_dir).read(tickers, start, end)
    elif Path(source).is_dir():
        bars = read_bars_dir(source, tickers)
    elif Path(source).is_file():
        bars = read_bars_file(source)
    else:
        raise ValueError(
            f"unknown data source {str(source)!r}: expected one of {', '.join(SOURCES)} "
            "or an existing CSV/Parquet file or folder"
        )
    return select_bars(bars, tickers, start, end)
