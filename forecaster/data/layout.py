"""From yfinance-shaped frames to the bar contract.

yfinance hands out daily bars in three shapes, and so do the files people save from it:
`Ticker.history()` (a `Date` index, columns `Open High Low Close Adj Close Volume`, plus
`Dividends`/`Stock Splits`), `yf.download()` (the same with a second column level `Ticker`),
and our own long layout (lowercase contract columns). `bars_from_frame` reads all three.
"""

from __future__ import annotations

import pandas as pd

from forecaster.data.quarantine import QuarantineReport
from forecaster.data.validation import (
    BAR_COLUMNS,
    DataValidationError,
    validate_bars,
    validate_ticker,
)

_VALUE_COLUMNS = BAR_COLUMNS[2:]


def bars_from_frame(
    frame: pd.DataFrame, ticker: str | None = None, *, quarantine: QuarantineReport | None = None
) -> pd.DataFrame:
    """Validated contract bars from a yfinance-shaped or contract-shaped frame.

    Column names are matched case-insensitively with spaces as underscores (`Adj Close` ->
    `adj_close`); the date comes from a `date` column or the index. Without an `Adj Close`
    column (yfinance files saved with `auto_adjust=True`), adj_close is the close. Dates with
    a time zone become their local calendar day (the exchange's day for yfinance data).
    The ticker is `ticker`, else the frame's `ticker` column or `Ticker` column level;
    a `ticker` that disagrees with the frame's is an error, not a relabelling. `quarantine`:
    see `validate_bars`.
    """
    frame = _with_ticker(_contract_columns(frame), ticker)
    return validate_bars(frame.assign(date=local_days(frame["date"])), quarantine=quarantine)


def _contract_columns(frame: pd.DataFrame) -> pd.DataFrame:
    """`frame` in one long layout with the contract's lowercase date and value columns."""
    if isinstance(frame.columns, pd.MultiIndex):
        frame = _stack_download_layout(frame)
    given = [str(c) for c in frame.columns]  # as the file names them, before any index joins them
    frame = frame.rename(columns=_column_key)
    if "date" not in frame.columns:
        frame = frame.rename_axis(_column_key(frame.index.name or "")).reset_index()
    if "date" not in frame.columns:
        raise DataValidationError(
            f"no date: expected a 'Date' or 'date' column or index, got columns {given}"
        )
    if "adj_close" not in frame.columns and "close" in frame.columns:
        frame = frame.assign(adj_close=frame["close"])
    missing = [c for c in _VALUE_COLUMNS if c not in frame.columns]
    if missing:
        raise DataValidationError(
            f"missing column(s) {', '.join(missing)}; expected Date, Open, High, Low, Close, "
            "Adj Close, Volume (yfinance) or the lowercase contract columns"
        )
    return frame


def _with_ticker(frame: pd.DataFrame, ticker: str | None) -> pd.DataFrame:
    """`frame` with its `ticker` column: `ticker` when given (it must agree with the frame's)."""
    if ticker is None:
        if "ticker" not in frame.columns:
            raise DataValidationError("no ticker: pass one, or give the data a 'ticker' column")
        return frame
    ticker = validate_ticker(ticker)
    if "ticker" in frame.columns:
        found = frame["ticker"].dropna().astype("str").str.upper().unique()
        if len(found) and list(found) != [ticker]:
            raise DataValidationError(f"ticker {ticker} was asked for but the data holds {', '.join(found)}")
    return frame.assign(ticker=ticker)


def local_days(dates: pd.Series) -> pd.Series:
    """Drop time zones but keep the local wall-clock day: 00:00+09:00 stays that day.

    Converting to UTC instead would move Tokyo's bars to the previous day. Strings such as
    `2023-10-02 00:00:00-04:00` (yfinance CSVs) lose their UTC offset the same way; anything
    unreadable is left for `validate_bars` to report by row.
    """
    if isinstance(dates.dtype, pd.DatetimeTZDtype):
        return dates.dt.tz_localize(None)
    if pd.api.types.is_string_dtype(dates.dtype) or dates.dtype == object:
        return dates.astype("str").str.replace(_OFFSET_RE, r"\1", regex=True)
    return dates


# A UTC offset or Z right after a time of day: "...00:00:00-04:00", "...00:00Z".
_OFFSET_RE = r"(\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?)\s*(?:Z|[+-]\d{2}:?\d{2})$"


def _column_key(name) -> str:
    return str(name).strip().lower().replace(" ", "_")


def _stack_download_layout(frame: pd.DataFrame) -> pd.DataFrame:
    """`yf.download` columns (Price, Ticker) -> long rows with a `ticker` column."""
    names = [_column_key(n) for n in frame.columns.names]
    if "ticker" not in names or frame.columns.nlevels != 2:
        raise DataValidationError(
            f"unexpected column levels {frame.columns.names}; expected yf.download's ('Price', 'Ticker')"
        )
    level = names.index("ticker")
    long = frame.stack(level=level, future_stack=True)
    long.index = long.index.set_names(["date", "ticker"])
    # Several tickers share one date axis, so a ticker gets all-empty rows on days it did not
    # trade (other exchanges' holidays). Those are padding, not bars.
    long = long.dropna(how="all")
    return long.reset_index()
