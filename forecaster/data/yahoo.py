"""Daily bars from Yahoo Finance, through yfinance (the project's only yfinance user).

yfinance calls Yahoo's v8 chart endpoint (`/v8/finance/chart/<TICKER>`) after fetching a
cookie and crumb; it keeps one HTTP session per process. One request per ticker, no retries
or caching here yet.
"""

from __future__ import annotations

from collections.abc import Iterable

import pandas as pd
import yfinance as yf
from yfinance.exceptions import YFException

from forecaster.data.layout import bars_from_frame
from forecaster.data.validation import (
    DataSourceError,
    as_day,
    ticker_list,
    validate_bars,
)


def download_bars(
    tickers: str | Iterable[str],
    start=None,
    end=None,
    *,
    timeout: float = 30,
    session=None,
) -> pd.DataFrame:
    """Validated daily bars of `tickers` from Yahoo Finance, dated in [start, end].

    Both ends are inclusive calendar days (strings or dates); `start=None` means the ticker's
    first day, `end=None` today. open/high/low/close are Yahoo's traded prices
    (`auto_adjust=False`) and adj_close its split- and dividend-adjusted close; dates are the
    exchange's calendar days. `session` (a curl_cffi or requests Session, e.g. with a proxy) is
    handed to yfinance, which keeps it for later calls too.

    Raises `DataSourceError` naming the ticker when Yahoo fails (unknown symbol, HTTP error,
    timeout, rate limit, malformed answer) or has no bars in the range, and
    `DataValidationError` when its bars break the contract (a day with missing prices, say).
    """
    symbols = ticker_list(tickers)
    first, last = as_day(start, "start"), as_day(end, "end")
    # By default yfinance logs failures and returns an empty frame, so a timeout would look
    # like a ticker without data. Ask it to raise (its documented, process-wide switch).
    yf.config.debug.hide_exceptions = False
    frames = [_download_one(s, first, last, timeout, session) for s in symbols]
    return validate_bars(pd.concat(frames))


def _download_one(symbol: str, start, end, timeout: float, session) -> pd.DataFrame:
    dates = {
        # A range with no start asks for everything up to `end`.
        "period": "max" if start is None else None,
        "start": None if start is None else start.strftime("%Y-%m-%d"),
        # yfinance's end is exclusive.
        "end": None if end is None else (end + pd.Timedelta(days=1)).strftime("%Y-%m-%d"),
    }
    try:
        history = yf.Ticker(symbol, session=session).history(
            **{k: v for k, v in dates.items() if v is not None},
            interval="1d",
            auto_adjust=False,
            actions=False,
            timeout=timeout,
        )
    except Exception as exc:  # yfinance's, HTTP and parsing errors alike mean no bars
        raise DataSourceError(f"{symbol}: Yahoo download failed ({_reason(exc)})") from exc
    if history.empty:
        span = f"from {dates['start'] or 'the start'} to {end.date() if end is not None else 'now'}"
        raise DataSourceError(f"{symbol}: Yahoo returned no daily bars {span}")
    return bars_from_frame(history, symbol)


def _reason(exc: Exception) -> str:
    """A short account of why a download failed, for the error message."""
    response = getattr(exc, "response", None)
    status = getattr(response, "status_code", None)
    if status == 404:
        return "HTTP 404 Not Found: unknown or delisted symbol?"
    if status is not None:
        return f"HTTP {status} {getattr(response, 'reason', '') or ''}".rstrip()
    if isinstance(exc, YFException):  # yfinance's own messages are already explanations
        return str(exc)
    return f"{type(exc).__name__}: {exc}"
