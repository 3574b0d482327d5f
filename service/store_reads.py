"""What the API reads from the forecast store besides stored forecasts, cached for a few seconds.

- `ACICache`: each ticker's adaptive-conformal working levels, which the batch job learns and
  stores; the API only reads them, so every worker and every restart serves the batch job's
  state (at most `ttl_s` old) and a ticker's quantiles agree with the stored ones.
- `RegimeCounts`: how many tickers are in each regime by their latest stored forecast, for the
  `/metrics` gauge. Counted from the store, so it is the same whichever worker is scraped.

Both read off the event loop, one short query per ticker or scrape at most every `ttl_s`. A
store that fails is logged and treated as empty (nominal levels, no gauge) until the next try:
the store must not take forecasting down with it.
"""

from __future__ import annotations

import asyncio
import logging
import time

import numpy as np
from sqlalchemy.engine import Engine

from forecaster import forecast_store, serving
from forecaster.runtime.redact import mask_credentials

log = logging.getLogger("service.store")


class ACICache:
    def __init__(self, engine: Engine, ttl_s: float):
        self.engine, self.ttl_s = engine, ttl_s
        self._cache: dict[tuple, tuple[float, np.ndarray | None]] = {}  # key -> (expires at, working)

    async def working(self, loaded, ticker: str) -> np.ndarray | None:
        """The ticker's working levels [H, Q] for the served model; None: no state, serve nominal."""
        return (await self.working_many(loaded, [ticker]))[ticker]

    async def working_many(self, loaded, tickers: list[str]) -> dict[str, np.ndarray | None]:
        """`working` of each ticker, the ones not cached read in one query."""
        model = loaded.forecaster
        key = (loaded.name, model.levels, model.config.window.horizon, model.config.train.aci_method)
        now, out = time.monotonic(), {}
        for ticker in tickers:
            hit = self._cache.get((*key, ticker))
            if hit is not None and hit[0] > now:
                out[ticker] = hit[1]
        if missing := [t for t in tickers if t not in out]:
            try:
                records = await asyncio.to_thread(
                    forecast_store.load_aci_state, self.engine, loaded.name, missing
                )
            except Exception as exc:  # a store outage: serve the nominal levels, try again after ttl_s
                log.warning(
                    "%s: no ACI state (forecast store: %s)", ", ".join(missing), mask_credentials(exc)
                )
                records = []
            state = serving.aci_state(model, records) if records else None
            for ticker in missing:
                out[ticker] = state.working.get(ticker) if state is not None else None
                self._cache[(*key, ticker)] = (time.monotonic() + self.ttl_s, out[ticker])
        return out


class RegimeCounts:
    def __init__(self, engine: Engine, ttl_s: float):
        self.engine, self.ttl_s = engine, ttl_s
        self._cache: tuple[float, str | None, dict[str, int]] = (-np.inf, None, {})

    async def counts(self, model_name: str | None) -> dict[str, int]:
        """Tickers per regime label, by each ticker's latest stored forecast of `model_name`."""
        expires, name, counts = self._cache
        if name == model_name and expires > time.monotonic():
            return counts
        try:
            counts = await asyncio.to_thread(forecast_store.tickers_by_regime, self.engine, model_name)
        except Exception as exc:
            log.warning("no regime counts (forecast store: %s)", mask_credentials(exc))
            counts = {}
        self._cache = (time.monotonic() + self.ttl_s, model_name, counts)
        return counts
