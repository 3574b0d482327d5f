"""Daily bars from Yahoo Finance, through yfinance (the project's only yfinance user).

yfinance calls Yahoo's v8 chart endpoint (`/v8/finance/chart/<TICKER>`) after fetching a
cookie and crumb; it keeps one HTTP session per process. One request per ticker; rate limits
(HTTP 429) and network errors are retried with exponential backoff and full jitter when a
`RetryPolicy` allows more than one attempt. Caching is the price store's job
(`pipelines/ingest.py` asks only for the days after what it holds).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypedDict, Unpack

import pandas as pd
import requests
import tenacity
import yfinance as yf
from yfinance.exceptions import YFException, YFRateLimitError

from forecaster.data.layout import bars_from_frame
from forecaster.data.quarantine import QuarantineReport
from forecaster.data.validation import (
    DataSourceError,
    as_day,
    ticker_list,
    validate_bars,
    validate_ticker,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently to retry a rate-limited or failed request.

    Waits are random in [0, min(max_wait, backoff * 2**n)] before retry n + 1 ("full jitter"),
    so many clients hitting one rate limit do not come back in lock-step. `sleep` is injectable
    so tests need not wait.
    """

    attempts: int = 5  # tries in all, the first included; 1 means no retry
    backoff: float = 2.0  # seconds
    max_wait: float = 60.0  # seconds, cap of one wait
    sleep: Callable[[float], None] = time.sleep

    def __post_init__(self) -> None:
        if self.attempts < 1 or self.backoff < 0 or self.max_wait < 0:
            raise ValueError("RetryPolicy needs attempts >= 1 and non-negative backoff and max_wait")


NO_RETRY = RetryPolicy(attempts=1)


def is_transient(exc: BaseException) -> bool:
    """Worth retrying: Yahoo's rate limit, a timeout, or a dropped or refused connection.

    curl_cffi's (yfinance's default session) and requests' network errors are both OSErrors,
    but so are HTTP errors such as 404, which a retry would not fix: name the transient kinds.
    """
    if isinstance(exc, YFRateLimitError | TimeoutError | ConnectionError):
        return True
    if isinstance(exc, requests.exceptions.ConnectionError | requests.exceptions.Timeout):
        return True
    try:
        from curl_cffi.requests import exceptions as curl
    except ImportError:  # yfinance works with a requests Session too
        return False
    return isinstance(exc, curl.ConnectionError | curl.Timeout)


class YahooRequest(TypedDict, total=False):
    """How to ask Yahoo, the same for every ticker (defaults: those of `download_ticker`)."""

    timeout: float  # seconds per request
    session: Any  # a curl_cffi or requests Session
    retry: RetryPolicy


def download_bars(
    tickers: str | Iterable[str],
    start=None,
    end=None,
    *,
    quarantine: QuarantineReport | None = None,
    **request: Unpack[YahooRequest],
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
    `retry` retries rate limits and network errors (default: none; see `RetryPolicy`). With a
    `quarantine` report, a ticker whose bars break the contract is recorded there and left out
    (see `validate_bars`); download failures still raise.
    """
    frames = [download_ticker(s, start, end, quarantine=quarantine, **request) for s in ticker_list(tickers)]
    return validate_bars(pd.concat(frames), min_rows=0 if quarantine is not None else 1)


def download_ticker(
    ticker: str,
    start=None,
    end=None,
    *,
    timeout: float = 30,
    session=None,
    retry: RetryPolicy = NO_RETRY,
    quarantine: QuarantineReport | None = None,
) -> pd.DataFrame:
    """Validated daily bars of one ticker, as `download_bars`, retrying transient failures.

    The error after the last attempt names the ticker and says how many attempts were made.
    """
    symbol = validate_ticker(ticker)
    first, last = as_day(start, "start"), as_day(end, "end")
    # By default yfinance logs failures and returns an empty frame, so a timeout would look
    # like a ticker without data. Ask it to raise (its documented, process-wide switch).
    yf.config.debug.hide_exceptions = False
    try:
        history = _retrying(symbol, retry)(_history, symbol, first, last, timeout, session)
    except Exception as exc:  # yfinance's, HTTP and parsing errors alike mean no bars
        raise _download_error(symbol, exc, retry) from exc
    if history.empty:
        span = f"from {_day(first, 'the start')} to {_day(last, 'now')}"
        raise DataSourceError(f"{symbol}: Yahoo returned no daily bars {span}")
    return bars_from_frame(history, symbol, quarantine=quarantine)


def _retrying(symbol: str, retry: RetryPolicy) -> tenacity.Retrying:
    """Calls retried on transient failures as `retry` says, each retry logged with its reason."""
    return tenacity.Retrying(
        stop=tenacity.stop_after_attempt(retry.attempts),
        wait=tenacity.wait_random_exponential(multiplier=retry.backoff, max=retry.max_wait),
        retry=tenacity.retry_if_exception(is_transient),
        sleep=retry.sleep,
        before_sleep=lambda state: log.warning(
            "%s: %s; retry %d of %d",
            symbol,
            _reason(state.outcome.exception()),
            state.attempt_number,
            retry.attempts - 1,
        ),
        reraise=True,
    )


def _download_error(symbol: str, exc: Exception, retry: RetryPolicy) -> DataSourceError:
    """The error that names the ticker, why the download failed and after how many attempts."""
    tries = f" after {retry.attempts} attempts" if retry.attempts > 1 and is_transient(exc) else ""
    reason = _reason(exc)
    if reason.startswith("could not reach"):
        return DataSourceError(f"{symbol}: {reason}{tries}")
    return DataSourceError(f"{symbol}: Yahoo download failed{tries} ({reason})")


def _history(symbol: str, start, end, timeout: float, session) -> pd.DataFrame:
    dates = {
        # A range with no start asks for everything up to `end`.
        "period": "max" if start is None else None,
        "start": None if start is None else start.strftime("%Y-%m-%d"),
        # yfinance's end is exclusive.
        "end": None if end is None else (end + pd.Timedelta(days=1)).strftime("%Y-%m-%d"),
    }
    return yf.Ticker(symbol, session=session).history(
        **{k: v for k, v in dates.items() if v is not None},
        interval="1d",
        auto_adjust=False,
        actions=False,
        timeout=timeout,
    )


def _day(ts: pd.Timestamp | None, open_end: str) -> str:
    return open_end if ts is None else str(ts.date())


def _reason(exc: Exception) -> str:
    """A short account of why a download failed, for the error message."""
    response = getattr(exc, "response", None)
    status = getattr(response, "status_code", None)
    if status == 0 or _unreachable(exc):  # offline, curl_cffi reports "HTTP 0 OK"
        return "could not reach Yahoo Finance (offline?)"
    if status == 404:
        return "HTTP 404 Not Found: unknown or delisted symbol?"
    if status is not None:
        return f"HTTP {status} {getattr(response, 'reason', '') or ''}".rstrip()
    if isinstance(exc, YFException):  # yfinance's own messages are already explanations
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


def _unreachable(exc: Exception) -> bool:
    """A refused, reset or unresolvable connection (not a timeout: the server may just be slow)."""
    timeouts = (TimeoutError, requests.exceptions.Timeout)
    connection = (ConnectionError, requests.exceptions.ConnectionError)
    try:
        from curl_cffi.requests import exceptions as curl

        timeouts, connection = (*timeouts, curl.Timeout), (*connection, curl.ConnectionError)
    except ImportError:
        pass
    return isinstance(exc, connection) and not isinstance(exc, timeouts)
