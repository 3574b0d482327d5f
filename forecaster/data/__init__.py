"""Daily bars: sources, validation and the Parquet price store.

Every function here returns the same contract: a long frame with columns `BAR_COLUMNS`
(ticker, date, open, high, low, close, adj_close, volume), one row per ticker and trading day,
sorted by ticker then date; see `forecaster.data.validation`.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from forecaster.data.errors import DataSourceError, DataValidationError
from forecaster.data.files import read_bars_dir, read_bars_file
from forecaster.data.jumps import MAX_JUMP, check_jumps
from forecaster.data.layout import bars_from_frame
from forecaster.data.quarantine import QuarantineEntry, QuarantineReport
from forecaster.data.sample import SAMPLE_TICKERS, load_sample
from forecaster.data.store import PriceStore
from forecaster.data.validation import (
    BAR_COLUMNS,
    select_bars,
    ticker_list,
    validate_bars,
    validate_ticker,
)

__all__ = [
    "BAR_COLUMNS",
    "SAMPLE_TICKERS",
    "DataSourceError",
    "DataValidationError",
    "PriceStore",
    "QuarantineEntry",
    "QuarantineReport",
    "bars_from_frame",
    "check_jumps",
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


def __getattr__(name: str):
    # `forecaster.data.download_bars` stays importable without every job importing yfinance.
    if name == "download_bars":
        from forecaster.data.yahoo import download_bars

        return download_bars
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def load_bars(
    source: str | Path,
    tickers: str | Iterable[str] | None = None,
    start=None,
    end=None,
    *,
    price_dir: str | Path | None = None,
    strict: bool = False,
    max_jump: float | None = MAX_JUMP,
) -> pd.DataFrame:
    """Validated bars of `tickers` dated in [start, end] (inclusive) from `source`.

    `source` is "sample" (the bundled S&P 500 / NASDAQ data), "yahoo" (needs `tickers`),
    "cache" (the `PriceStore` at `price_dir`), or the path of a CSV/Parquet file or of a
    folder of them. `tickers=None` means all the source has; a requested ticker the source
    lacks raises `DataSourceError` naming it.

    Bars are checked against the contract (`validate_bars`) and for reversed one-day jumps
    beyond `max_jump` in log return (`check_jumps`; None skips it). One bad ticker does not
    sink a universe: a ticker that fails is quarantined (left out) and the others load. The
    `QuarantineReport` (ticker, date, row and reason of each) is in
    `bars.attrs["quarantine"]`, empty when all is well; show it and log it. Rows are
    positions in the source's frame (the file's rows for a long-layout file). When every
    requested ticker fails, as in a one-ticker load, the first failure raises
    `DataValidationError`; so does any failure with `strict=True`.

    >>> load_bars("sample", "^GSPC", start="2018-01-01").shape
    (251, 8)
    """
    report = None if strict else QuarantineReport()
    bars = _read_source(source, tickers, start, end, price_dir, report)
    bars = check_jumps(bars, max_jump, quarantine=report)
    report = report or QuarantineReport()
    if tickers is not None:
        wanted = ticker_list(tickers)
        report = report.only(wanted)
        tickers = [t for t in wanted if t not in report]
    if not report.empty and (bars.empty or tickers == []):
        raise report.entries[0].error()  # nothing left to load: fail as a strict load would
    bars = select_bars(bars, tickers, start, end)
    bars.attrs["quarantine"] = report
    return bars


def _read_source(
    source: str | Path, tickers, start, end, price_dir: str | Path | None, report: QuarantineReport | None
) -> pd.DataFrame:
    """The bars `source` holds (see `load_bars`), before the jump check and the ticker and date selection."""
    if source == "sample":
        return load_sample(tickers)  # bundled and known good
    if source == "yahoo":
        if tickers is None:
            raise ValueError("source 'yahoo' needs tickers, e.g. tickers=['^GSPC']")
        from forecaster.data.yahoo import download_bars  # yfinance: ~0.4 s, only for downloads

        return download_bars(tickers, start, end, quarantine=report)
    if source == "cache":
        if price_dir is None:
            raise ValueError("source 'cache' needs price_dir, the price store's folder")
        return PriceStore(price_dir).read(tickers, start, end)  # validated when written
    if Path(source).is_dir():
        return read_bars_dir(source, tickers, quarantine=report)
    if Path(source).is_file():
        return read_bars_file(source, quarantine=report)
    raise ValueError(
        f"unknown data source {str(source)!r}: expected one of {', '.join(SOURCES)} "
        "or an existing CSV/Parquet file or folder"
    )
