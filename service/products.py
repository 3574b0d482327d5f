"""Joint products for the API: VaR / ES and quintile ranks of several stored tickers.

The bars come from the price store as for `POST /v1/forecast {ticker}` (`service.bars`, refreshed
from the source when behind); the simulation is `forecaster.products.simulate_joint` on each
ticker's latest window and the trailing daily returns the copula reads. It costs tens to hundreds
of ms of CPU (paths x tickers), so it runs in a thread, never on the event loop.

A worker keeps the last `joint_cache_size` simulations, keyed by the served model (a reload is
another), the tickers, the horizon, the path count and a digest of the bars read: the draws are a
seeded function of these, so a request that asks again (the bars change once a day) gets the same
numbers without simulating. Two identical requests that arrive together may both simulate. It
also keeps each ticker's bars as last read (`StoredBars`), read again when the file changes.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections import OrderedDict
from collections.abc import Callable
from datetime import UTC, datetime

import numpy as np
import pandas as pd
from fastapi import HTTPException, Request

from forecaster import products, serving
from forecaster.calibration.aci import ACIState
from forecaster.data import PriceStore
from forecaster.data.sessions import last_closed_session
from forecaster.features.windows import concat_windows, window_from_arrays
from forecaster.joint import Copula
from service import bars as bar_source
from service.forecasting import InputError, bars_needed
from service.model_state import LoadedModel

SEED = 0  # one seed: the same request gets the same answer from every worker


class JointCache:
    """The last `size` simulations of one worker, least recently used out first.

    An entry is the `JointDraws` of a key and the products already computed from it, by product
    key (the rank table; risk tables by weights and levels): those are functions of the draws too.
    """

    def __init__(self, size: int):
        self.size = size
        self._items: OrderedDict[tuple, tuple[products.JointDraws, dict]] = OrderedDict()

    def get(self, key: tuple) -> tuple[products.JointDraws, dict] | None:
        item = self._items.get(key)
        if item is not None:
            self._items.move_to_end(key)
        return item

    def put(self, key: tuple, joint: products.JointDraws, product_key: tuple, result) -> None:
        if self.size <= 0:
            return
        item = self._items.setdefault(key, (joint, {}))
        item[1][product_key] = result
        self._items.move_to_end(key)
        while len(self._items) > self.size:
            self._items.popitem(last=False)


def _cache(http: Request) -> JointCache:
    """The worker's cache, made on first use (the app's event loop is its only user)."""
    cache = getattr(http.app.state, "joint_cache", None)
    if cache is None:
        cache = http.app.state.joint_cache = JointCache(http.app.state.settings.joint_cache_size)
    return cache


def check_tickers(http: Request, tickers: list[str], field: tuple = ("body", "tickers")) -> list[str]:
    """The tickers upper-cased, repeats dropped; at most `max_joint_tickers`."""
    unique = list(dict.fromkeys(t.upper() for t in tickers))
    most = http.app.state.settings.max_joint_tickers
    if len(unique) > most:
        raise InputError(field, f"{len(unique)} tickers; at most {most} (FORECASTER_MAX_JOINT_TICKERS)")
    return unique


async def joint_product(
    http: Request,
    loaded: LoadedModel,
    tickers: list[str],
    horizon: int,
    product: Callable[[products.JointDraws], object],
    product_key: tuple,
    field: tuple = ("body", "tickers"),
):
    """(JointDraws, product(draws), stale) for the tickers' latest bars; the CPU work in a thread.

    `product_key` names the product and its parameters: a repeated request is answered from the
    cache. The simulation runs in the tickers' sorted order, as `forecaster.products` does, so the
    same tickers get the same draws whatever order they are asked in; answers follow the request's.
    404 for a ticker without bars, 503 when its bars cannot be had, 422 naming `field[i]` for the
    i-th requested ticker when its bars end before the others' or are too few.
    """
    where = {t: (*field, i) for i, t in enumerate(tickers)}  # the field naming each ticker
    tickers = sorted(tickers)
    arrays = await _bars(http, loaded, tickers)
    as_of = _common_as_of(tickers, arrays, where)
    calendar = loaded.forecaster.config.window.calendar
    stale = bool(as_of < last_closed_session(calendar, np.datetime64(datetime.now(UTC).date(), "D")))
    paths = http.app.state.settings.joint_paths
    # The marginals are the quantiles /v1/forecast serves: at each ticker's ACI working levels.
    working = await http.app.state.aci.working_many(loaded, tickers)
    state = served_state(loaded.forecaster, working)
    cache = _cache(http)
    key = (loaded.uri, loaded.version, loaded.checksum, loaded.loaded_at, tuple(tickers), horizon, paths)
    key += (_digest(tickers, arrays), _levels_digest(working))
    cached = cache.get(key)
    if cached is not None and product_key in cached[1]:
        return cached[0], cached[1][product_key], stale

    def work():
        joint = cached[0] if cached else _simulate(loaded, tickers, arrays, horizon, paths, where, state)
        return joint, product(joint)

    try:
        joint, result = await asyncio.to_thread(work)
    except InputError:
        raise
    except ValueError as exc:  # LinAlgError too: the inputs cannot be simulated
        raise InputError(field, str(exc)) from None
    cache.put(key, joint, product_key, result)
    return joint, result, stale


class StoredBars:
    """Each ticker's arrays as last read, by the identity of its price-store file (mtime, size, inode).

    Reading and validating 100 Parquet files costs about a second; a `stat` of each costs ~2 ms.
    A file that changed (the ingest job, a refresh) is read again through `BarSource.arrays`, and so
    is a ticker whose cached bars are behind the last closed session when the source refreshes.
    """

    def __init__(self):
        self._items: dict[str, tuple[tuple, int, dict[str, np.ndarray]]] = {}  # ticker -> (stamp, n, arrays)

    def get(self, ticker: str, stamp: tuple | None, n: int, fresh_after) -> dict[str, np.ndarray] | None:
        item = self._items.get(ticker)
        if stamp is None or item is None or item[:2] != (stamp, n):
            return None
        arrays = item[2]
        if fresh_after is not None and arrays["date"][-1] < fresh_after:  # the source may have newer bars
            return None
        return arrays

    def put(self, ticker: str, stamp: tuple | None, n: int, arrays: dict[str, np.ndarray]) -> None:
        if stamp is not None:
            self._items[ticker] = (stamp, n, arrays)


def _stamps(settings, tickers: list[str]) -> list[tuple | None]:
    """Each ticker's file identity in the price store (None: no such file). Blocking."""
    store = PriceStore(settings.price_dir)
    out = []
    for ticker in tickers:
        try:
            info = store.path(ticker).stat()
        except (OSError, ValueError):
            out.append(None)
        else:
            out.append((info.st_mtime_ns, info.st_size, info.st_ino))
    return out


async def _bars(http: Request, loaded: LoadedModel, tickers: list[str]) -> list[dict[str, np.ndarray]]:
    """Each ticker's last bars: enough for its window's features and the copula's trailing window."""
    calendar = loaded.forecaster.config.window.calendar
    n = max(bars_needed(loaded), Copula.window + 1)
    settings, source = http.app.state.settings, http.app.state.bars
    stored = getattr(http.app.state, "joint_bars", None)
    if stored is None:
        stored = http.app.state.joint_bars = StoredBars()
    refreshes = settings.source == "yahoo"
    fresh_after = (
        last_closed_session(calendar, np.datetime64(bar_source.utcnow().date(), "D")) if refreshes else None
    )
    stamps = await asyncio.to_thread(_stamps, settings, tickers)
    arrays = [stored.get(t, stamp, n, fresh_after) for t, stamp in zip(tickers, stamps, strict=True)]
    missing = [i for i, a in enumerate(arrays) if a is None]
    results = await asyncio.gather(
        *(source.arrays(tickers[i], calendar, n) for i in missing), return_exceptions=True
    )
    for i, result in zip(missing, results, strict=True):
        if isinstance(result, bar_source.UnknownTicker):
            raise HTTPException(404, str(result))
        if isinstance(result, bar_source.SourceUnavailable):
            raise HTTPException(503, str(result))
        if isinstance(result, BaseException):
            raise result
        stored.put(tickers[i], stamps[i], n, result)  # a file written since is read again next time
        arrays[i] = result
    return arrays


def _common_as_of(tickers: list[str], arrays: list[dict], where: dict) -> np.datetime64:
    last = [a["date"][-1] for a in arrays]
    as_of = max(last)
    for ticker, day in zip(tickers, last, strict=True):
        if day < as_of:
            raise InputError(
                where[ticker],
                f"{ticker}: last bar {day}, the other tickers' {as_of}: a joint forecast needs every "
                "ticker's bars up to the same day",
            )
    return as_of


def _digest(tickers: list[str], arrays: list[dict]) -> str:
    """What the simulation reads of the bars, hashed: a revised bar changes it."""
    h = hashlib.blake2b(digest_size=16)
    for ticker, a in zip(tickers, arrays, strict=True):
        h.update(ticker.encode())
        for name in ("date", "adj_close", "high", "low", "volume"):
            h.update(np.ascontiguousarray(a[name]).tobytes())
    return h.hexdigest()


def served_state(model, working: dict[str, np.ndarray | None]) -> ACIState:
    """An ACI state holding the tickers' stored working levels (nominal for those without)."""
    state = serving.aci_state(model)
    state.working.update({t: w for t, w in working.items() if w is not None})
    return state


def _levels_digest(working: dict[str, np.ndarray | None]) -> str:
    h = hashlib.blake2b(digest_size=16)
    for ticker in sorted(working):
        h.update(ticker.encode())
        if working[ticker] is not None:
            h.update(np.ascontiguousarray(working[ticker], dtype=np.float64).tobytes())
    return h.hexdigest()


def _simulate(
    loaded, tickers, arrays, horizon: int, paths: int, where: dict, state=None
) -> products.JointDraws:
    """Windows and daily returns from the arrays, then the joint simulation. Blocking."""
    model = loaded.forecaster
    windows = []
    for ticker, a in zip(tickers, arrays, strict=True):
        try:
            windows.append(window_from_arrays(ticker, a, model.config.window))
        except ValueError as exc:
            raise InputError(where[ticker], str(exc)) from None
    long = pd.DataFrame(
        {
            "ticker": np.repeat(tickers, [len(a["date"]) for a in arrays]),
            "date": np.concatenate([a["date"] for a in arrays]).astype("datetime64[ns]"),
            "adj_close": np.concatenate([a["adj_close"] for a in arrays]),
        }
    )
    joint = products.simulate_joint(
        model,
        concat_windows(windows),
        products.daily_returns(long),
        horizon=horizon,
        n_paths=paths,
        seed=SEED,
        state=state,
    )
    if not np.isfinite(joint.draws).all():
        raise ValueError("the simulated returns are not finite (prices or quantiles too extreme)")
    return joint
