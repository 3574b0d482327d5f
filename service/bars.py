"""Bars of a ticker for the API: the price store, refreshed from the data source when behind."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd

from forecaster.data import DataSourceError, PriceStore, download_bars
from forecaster.sessions import last_closed_session
from service.settings import ServiceSettings

log = logging.getLogger("service.bars")


class UnknownTicker(LookupError):
    pass


class SourceUnavailable(RuntimeError):
    pass


def _arrays(bars: pd.DataFrame) -> dict[str, np.ndarray]:
    return {
        "date": bars["date"].to_numpy("datetime64[D]"),
        **{c: bars[c].to_numpy(np.float64) for c in ("adj_close", "high", "low", "volume")},
    }


def ticker_arrays(
    settings: ServiceSettings, ticker: str, calendar: str, window: int
) -> dict[str, np.ndarray]:
    """The latest bars of `ticker` (enough for one window) from the store.

    With `source=yahoo`, bars that end before the last closed session are refreshed first; when
    the refresh fails the cached bars are served (the response's `as_of` and `stale` say how old).
    Raises UnknownTicker when nothing is cached and the source has no such ticker, and
    SourceUnavailable when nothing is cached and the source cannot be reached.
    """
    store = PriceStore(settings.price_dir)
    cached = None
    if ticker in store.tickers():
        cached = store.read([ticker])
    if settings.source == "yahoo":
        today = np.datetime64(datetime.now(UTC).date(), "D")
        last = None if cached is None else cached["date"].iloc[-1].to_datetime64().astype("datetime64[D]")
        if last is None or last < last_closed_session(calendar, today):
            cached = (
                _refresh(store, ticker, cached, last) if cached is not None else _first_fetch(store, ticker)
            )
    if cached is None:
        raise UnknownTicker(f"{ticker}: no bars in the price store ({settings.source} source)")
    return _arrays(cached.tail(window + 1))


def _first_fetch(store: PriceStore, ticker: str) -> pd.DataFrame:
    try:
        bars = download_bars([ticker], start=(datetime.now(UTC) - timedelta(days=365)).date())
    except DataSourceError as exc:
        message = str(exc)
        if "404" in message or "delisted" in message or "no bars" in message.lower():
            raise UnknownTicker(f"{ticker}: unknown to the data source ({message})") from None
        raise SourceUnavailable(f"{ticker}: no cached bars and the data source failed: {message}") from None
    store.write(bars)
    return bars


def _refresh(store: PriceStore, ticker: str, cached: pd.DataFrame, last) -> pd.DataFrame:
    try:
        new = download_bars([ticker], start=pd.Timestamp(last).date())
    except DataSourceError as exc:
        log.warning("%s: refresh failed, serving cached bars up to %s: %s", ticker, last, exc)
        return cached
    store.upsert(new)  # the same merge the ingest job does: revised days replace stored ones
    return store.read([ticker])
