"""Bars of a ticker for the API: the price store, refreshed from the data source when behind."""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd

from forecaster.data import DataSourceError, PriceStore
from forecaster.data.sessions import last_closed_session, last_session_closed_by
from service.settings import ServiceSettings

log = logging.getLogger("service.bars")


class UnknownTicker(LookupError):
    pass


class SourceUnavailable(RuntimeError):
    pass


def utcnow() -> datetime:
    """The clock the refresh reads (one place, so a test can put it inside a trading session)."""
    return datetime.now(UTC)


def _arrays(bars: pd.DataFrame) -> dict[str, np.ndarray]:
    return {
        "date": bars["date"].to_numpy("datetime64[D]"),
        **{c: bars[c].to_numpy(np.float64) for c in ("adj_close", "high", "low", "volume")},
    }


class BarSource:
    """The latest bars of a ticker from the store, refreshed from the source (`source=yahoo`).

    Bars that end before the last closed session are refreshed first. A slow or down source must
    not hold every request (yfinance waits up to 30 s), so:
    - one refresh per ticker is in flight; concurrent requests for the ticker await that one;
    - a request waits at most `refresh_timeout_s`, then answers from the cached bars (its
      `as_of` and `stale: true` say how old); the refresh goes on and stores what it gets;
    - after a failed refresh the ticker is served from the cache for `refresh_retry_s`.
    Only closed sessions are stored: a bar of today's session before its close is intraday.
    One instance per worker (app.state.bars), used from that worker's event loop.
    """

    def __init__(self, settings: ServiceSettings):
        self.settings = settings
        self._refreshing: dict[str, asyncio.Task] = {}
        self._failed_at: dict[str, float] = {}  # monotonic time of the last failed refresh

    async def arrays(self, ticker: str, calendar: str, window: int) -> dict[str, np.ndarray]:
        """Arrays of the last `window + 1` bars of `ticker`.

        Raises UnknownTicker when nothing is cached and the source has no such ticker, and
        SourceUnavailable when nothing is cached and the source fails or is slow.
        """
        cached = await asyncio.to_thread(self._read, ticker)
        if self.settings.source == "yahoo" and self._behind(cached, calendar):
            retry_at = self._failed_at.get(ticker, -np.inf) + self.settings.refresh_retry_s
            if cached is None or time.monotonic() >= retry_at:
                cached = await self._refreshed(ticker, cached, calendar)
        if cached is None:
            raise UnknownTicker(f"{ticker}: no bars in the price store ({self.settings.source} source)")
        return _arrays(cached.tail(window + 1))

    def _read(self, ticker: str) -> pd.DataFrame | None:
        store = PriceStore(self.settings.price_dir)
        return store.read([ticker]) if ticker in store.tickers() else None

    @staticmethod
    def _behind(cached: pd.DataFrame | None, calendar: str) -> bool:
        if cached is None:
            return True
        last = cached["date"].iloc[-1].to_datetime64().astype("datetime64[D]")
        return last < last_closed_session(calendar, np.datetime64(utcnow().date(), "D"))

    async def _refreshed(self, ticker: str, cached: pd.DataFrame | None, calendar: str) -> pd.DataFrame:
        task = self._refreshing.get(ticker)
        if task is None:
            task = asyncio.ensure_future(asyncio.to_thread(self._fetch, ticker, cached, calendar))
            self._refreshing[ticker] = task
            task.add_done_callback(lambda done: self._finished(ticker, done))
        timeout = self.settings.refresh_timeout_s
        try:
            # shield: a request that stops waiting must not cancel the refresh others await.
            return await asyncio.wait_for(asyncio.shield(task), timeout)
        except TimeoutError:
            problem = f"the data source did not answer within {timeout:g} s"
        except UnknownTicker:
            if cached is None:
                raise
            problem = "the data source no longer knows it"
        except Exception as exc:  # DataSourceError, a bad answer: the cache still serves
            problem = f"refresh failed: {exc}"
        if cached is None:
            raise SourceUnavailable(f"{ticker}: no cached bars and {problem}") from None
        log.warning("%s: %s; serving cached bars up to %s", ticker, problem, cached["date"].iloc[-1].date())
        return cached

    def _finished(self, ticker: str, task: asyncio.Task) -> None:
        self._refreshing.pop(ticker, None)
        if task.cancelled() or task.exception() is not None:  # exception() also marks it retrieved
            self._failed_at[ticker] = time.monotonic()
        else:
            self._failed_at.pop(ticker, None)

    def _fetch(self, ticker: str, cached: pd.DataFrame | None, calendar: str) -> pd.DataFrame:
        """Download, keep closed sessions only, store; the ticker's stored bars. Blocking."""
        if cached is None:
            start = (utcnow() - timedelta(days=365)).date()
        else:
            start = cached["date"].iloc[-1].date()
        from forecaster.data.yahoo import download_bars  # yfinance: only when the source is Yahoo

        try:
            new = download_bars([ticker], start=start)
        except DataSourceError as exc:
            message = str(exc)
            if cached is None and ("404" in message or "delisted" in message or "no bars" in message.lower()):
                raise UnknownTicker(f"{ticker}: unknown to the data source ({message})") from None
            raise
        closed = pd.Timestamp(last_session_closed_by(calendar, utcnow()))
        new = new[new["date"] <= closed]
        store = PriceStore(self.settings.price_dir)
        if new.empty:
            if cached is None:
                raise DataSourceError(f"{ticker}: no bars of closed sessions from the data source")
            return cached
        if cached is None:
            store.write(new)
        else:
            store.upsert(new)  # the same merge the ingest job does: revised days replace stored ones
        return store.read([ticker])
