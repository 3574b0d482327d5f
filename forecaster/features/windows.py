"""Sliding windows pooled across tickers: lazy (one [T, F] array and window ends), cut on demand.

A window ending on day t (its *origin*, the as-of date) holds the features of days t-L+1..t;
its target is the log returns of the adjusted close on the next H trading days t+1..t+H.
Windows are lazy: a `WindowSet` keeps every ticker's daily features once, as one [T, F]
array, and the row where each window ends; a batch of windows is gathered on demand, so
memory grows with the bars, not with windows x L. Daily features live in `forecaster.features.daily`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pandas as pd

from forecaster.config import CONTEXT, WindowConfig
from forecaster.features.daily import daily_features, history_needed
from forecaster.features.market import market_context
from forecaster.features.volatility import horizon_scale, origin_volatility


@dataclass
class WindowSet:
    """Windows pooled across tickers; row i of every per-window array describes window i.

    Window i is `features[end[i] - window + 1 : end[i] + 1]`. `gather(rows)` cuts a batch
    [B, L, F]; `x` cuts all of them (compatibility, costs N x L x F). A training loop can keep
    `features` as one device tensor and gather batches there:
    `features_t[torch.as_tensor(ws.window_index(rows))]` -> [B, L, F].
    Subsets share `features` with the set they come from.
    """

    features: np.ndarray  # [T, F] float32, raw (unscaled) daily features of all tickers, stacked
    end: np.ndarray  # [N] int64, row in `features` of each window's last day (its origin)
    window: int  # L, days per window
    y: np.ndarray  # [N, H] float32, next H log returns; NaN where the future is unknown
    ticker: np.ndarray  # [N] str
    origin: np.ndarray  # [N] datetime64[D], last day inside the window (the as-of date)
    target_dates: np.ndarray  # [N, H] datetime64[D]; NaT where the future is not in the data
    last_price: np.ndarray  # [N] float64, adjusted close on the origin day
    # [T, C] float32, market context of every row of `features` (columns `config.CONTEXT`), or None
    # for a model without a market; the gate reads it at a window's last day.
    context: np.ndarray | None = None

    _PER_WINDOW = ("end", "y", "ticker", "origin", "target_dates", "last_price")

    def __len__(self) -> int:
        return len(self.end)

    def window_index(self, rows=slice(None)) -> np.ndarray:
        """Rows of `features` that windows `rows` (indices, mask or slice) cover: [B, L] int64."""
        return np.atleast_1d(self.end[rows])[:, None] + np.arange(1 - self.window, 1)

    def gather(self, rows=slice(None)) -> np.ndarray:
        """Raw features of windows `rows`: [B, L, F] float32."""
        return self.features[self.window_index(rows)]

    @property
    def x(self) -> np.ndarray:
        """Every window's raw features, materialised: [N, L, F] float32."""
        return self.gather()

    @cached_property
    def returns(self) -> np.ndarray:
        """Raw daily log returns inside each window: [N, L] (feature 0 only, so cheap; cached)."""
        return self.features[:, 0][self.window_index()]

    @property
    def origin_context(self) -> np.ndarray:
        """Market context on each window's last day: [N, C]."""
        if self.context is None:
            raise ValueError("these windows carry no market context: the model's config sets no market")
        return self.context[self.end]

    def subset(self, mask: np.ndarray) -> WindowSet:
        return dataclasses.replace(self, **{f: getattr(self, f)[mask] for f in self._PER_WINDOW})

    def target_prices(self) -> np.ndarray:
        """The actual adjusted-close path over the horizon: [N, H]."""
        return self.last_price[:, None] * np.exp(np.cumsum(self.y, axis=1))


def make_windows(bars: pd.DataFrame, config: WindowConfig, *, labelled: bool = True) -> WindowSet:
    """Cut validated bars (the long contract frame) into windows, pooled across tickers.

    `labelled=True` keeps the windows whose next H days are all in the data (for training and
    evaluation); `labelled=False` keeps every window, including the latest ones to forecast from.
    """
    L, H = config.window, config.horizon
    context = market_context(bars, config.market) if config.market else None  # {ticker: [T-1, C]}
    own = tuple(f for f in config.features if f not in CONTEXT)
    inputs = [CONTEXT.index(f) for f in config.features if f in CONTEXT]  # context the experts read
    parts = []
    for ticker, one in bars.groupby("ticker", sort=True):
        feats = daily_features(one, own)  # [T-1, F]; row j is the day of bar j+1
        if inputs:
            feats = np.hstack([feats, context[ticker][:, inputs]])
        dates = one["date"].to_numpy("datetime64[D]")
        prices = one["adj_close"].to_numpy(np.float64)
        n_days = len(feats)
        last_end = n_days - H if labelled else n_days  # exclusive upper bound for window ends
        ends = np.arange(L - 1, last_end, config.stride)  # index j of each window's last feature row
        if len(ends) == 0:
            continue
        # Targets: returns of feature rows j+1..j+H; padded with NaN past the end of the data.
        future = ends[:, None] + np.arange(1, H + 1)[None, :]  # [N, H]
        known = future < n_days
        returns = np.append(feats[:, 0], np.nan)
        y = returns[np.where(known, future, n_days)]
        day_dates = np.append(dates[1:], np.datetime64("NaT"))
        parts.append(
            WindowSet(
                features=feats.astype(np.float32),
                end=ends,
                window=L,
                y=y.astype(np.float32),
                ticker=np.full(len(ends), ticker, dtype=object),
                origin=dates[1:][ends],
                target_dates=day_dates[np.where(known, future, n_days)],
                last_price=prices[1:][ends],
                context=None if context is None else context[ticker],
            )
        )
    if not parts:
        need = (
            f"{L + H + 1} bars (window {L} + horizon {H} + 1)"
            if labelled
            else f"{L + 1} bars (window {L} + 1)"
        )
        raise ValueError(f"no complete window: a ticker needs at least {need}, for the first return")
    return concat_windows(parts)


def concat_windows(parts: list[WindowSet]) -> WindowSet:
    """One set of all `parts`' windows, in order; their features are stacked unless shared."""
    if len({p.window for p in parts}) > 1:
        raise ValueError(f"cannot join windows of different lengths {sorted({p.window for p in parts})}")
    first = parts[0]
    if len({p.context is None for p in parts}) > 1:
        raise ValueError("cannot join windows with market context and windows without")
    if all(p.features is first.features for p in parts):  # subsets of one set: share, don't copy
        features, context, offsets = first.features, first.context, [0] * len(parts)
    else:
        features = np.concatenate([p.features for p in parts])
        context = None if first.context is None else np.concatenate([p.context for p in parts])
        offsets = np.cumsum([0] + [len(p.features) for p in parts[:-1]])
    columns = {f: np.concatenate([getattr(p, f) for p in parts]) for f in WindowSet._PER_WINDOW}
    columns["end"] = np.concatenate([p.end + o for p, o in zip(parts, offsets, strict=True)])
    return WindowSet(features=features, window=first.window, context=context, **columns)


def latest_windows(bars: pd.DataFrame, config: WindowConfig) -> WindowSet:
    """The most recent window of every ticker: what a forecast made today reads.

    Only the last `history_needed` bars of each ticker are cut (L + 1, plus a volatility
    feature's lookback), so a universe of hundreds of tickers with decades of history costs
    little.
    """
    # With a market, every ticker's bars over the same tail of dates make its context.
    need = history_needed(config.features, config.window, context=config.market is not None)
    tail = bars.groupby("ticker", sort=False).tail(need)
    every = make_windows(tail, dataclasses.replace(config, stride=1), labelled=False)
    last = np.append(every.ticker[1:] != every.ticker[:-1], True)  # windows are by ticker, then date
    return every.subset(last)


def window_from_arrays(ticker: str, bars: dict[str, np.ndarray], config: WindowConfig) -> WindowSet:
    """The latest window of one ticker's validated bars given as arrays (`date`, `adj_close`, ...).

    Same result as `latest_windows` on the equivalent frame, without pandas: the service's
    request path. Needs at least L + 1 bars; the volatility features are exact from
    `history_needed` bars on and warm up on fewer (see `forecaster.features.volatility`).
    """
    L, H = config.window, config.horizon
    if config.market is not None:
        raise ValueError(
            f"{ticker}: this model reads market context (market {config.market!r}), which one "
            "ticker's bars cannot give: forecast it with the universe's bars (`forecaster forecast`, "
            "the batch job)"
        )
    n = len(bars["adj_close"])
    if n < L + 1:
        raise ValueError(f"{ticker}: {n} bars, a forecast needs at least {L + 1} (window {L} + 1)")
    keep = min(n, history_needed(config.features, L))
    tail = {name: np.asarray(values)[-keep:] for name, values in bars.items()}
    features = daily_features(tail, config.features)[-L:]  # [L, F]
    return WindowSet(
        features=features.astype(np.float32),
        end=np.array([L - 1]),
        window=L,
        y=np.full((1, H), np.nan, dtype=np.float32),
        ticker=np.array([ticker], dtype=object),
        origin=np.asarray(tail["date"], dtype="datetime64[D]")[-1:],
        target_dates=np.full((1, H), np.datetime64("NaT"), dtype="datetime64[D]"),
        last_price=np.asarray(tail["adj_close"], dtype=np.float64)[-1:],
    )


def standardized_targets(windows: WindowSet) -> tuple[np.ndarray, np.ndarray]:
    """Cumulative log returns in units of sigma_t * sqrt(h), and that scale: both [N, H]."""
    scale = horizon_scale(origin_volatility(windows.returns), windows.y.shape[1])
    return np.cumsum(windows.y.astype(np.float64), axis=1) / scale, scale
