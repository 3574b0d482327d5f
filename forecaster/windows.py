"""Scale-free daily features, sliding windows pooled across tickers, and chronological splits.

A window ending on day t (its *origin*, the as-of date) holds the features of days t-L+1..t;
its target is the log returns of the adjusted close on the next H trading days t+1..t+H.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from forecaster.config import WindowConfig

_EPS = 1e-12


def daily_features(bars, features: tuple[str, ...]) -> np.ndarray:
    """Features of one ticker's bars, one row per day from the second bar on: [T-1, F].

    `bars` is a frame or any mapping of column name -> array (the service passes arrays, so
    its request path needs no pandas). `log_return` comes first: the target and the regime
    descriptors are read from column 0.
    """
    column = lambda name: np.asarray(bars[name], dtype=np.float64)  # noqa: E731
    columns = {"log_return": np.diff(np.log(column("adj_close")))}
    if "log_range" in features:
        columns["log_range"] = np.log(column("high") / column("low"))[1:]
    if "log_volume_change" in features:
        # +1 keeps days with zero volume (some indices report none) finite.
        columns["log_volume_change"] = np.diff(np.log1p(column("volume")))
    order = ["log_return"] + [f for f in features if f != "log_return"]
    return np.column_stack([columns[f] for f in order])


@dataclass
class WindowSet:
    """Windows pooled across tickers; row i of every array describes window i."""

    x: np.ndarray  # [N, L, F] float32, raw (unscaled) daily features
    y: np.ndarray  # [N, H] float32, next H log returns; NaN where the future is unknown
    ticker: np.ndarray  # [N] str
    origin: np.ndarray  # [N] datetime64[D], last day inside the window (the as-of date)
    target_dates: np.ndarray  # [N, H] datetime64[D]; NaT where the future is not in the data
    last_price: np.ndarray  # [N] float64, adjusted close on the origin day

    def __len__(self) -> int:
        return len(self.x)

    @property
    def returns(self) -> np.ndarray:
        """Raw daily log returns inside each window: [N, L]."""
        return self.x[:, :, 0]

    def subset(self, mask: np.ndarray) -> WindowSet:
        return WindowSet(
            *(a[mask] for a in (self.x, self.y, self.ticker, self.origin, self.target_dates, self.last_price))
        )

    def target_prices(self) -> np.ndarray:
        """The actual adjusted-close path over the horizon: [N, H]."""
        return self.last_price[:, None] * np.exp(np.cumsum(self.y, axis=1))


def make_windows(bars: pd.DataFrame, config: WindowConfig, *, labelled: bool = True) -> WindowSet:
    """Cut validated bars (the long contract frame) into windows, pooled across tickers.

    `labelled=True` keeps the windows whose next H days are all in the data (for training and
    evaluation); `labelled=False` keeps every window, including the latest ones to forecast from.
    """
    L, H = config.window, config.horizon
    parts = []
    for ticker, one in bars.groupby("ticker", sort=True):
        feats = daily_features(one, config.features)  # [T-1, F]; row j is the day of bar j+1
        dates = one["date"].to_numpy("datetime64[D]")
        prices = one["adj_close"].to_numpy(np.float64)
        n_days = len(feats)
        last_end = n_days - H if labelled else n_days  # exclusive upper bound for window ends
        ends = np.arange(L - 1, last_end, config.stride)  # index j of each window's last feature row
        if len(ends) == 0:
            continue
        views = np.lib.stride_tricks.sliding_window_view(feats, L, axis=0)  # [T-L, F, L]
        x = views[ends - (L - 1)].transpose(0, 2, 1)  # [N, F, L] -> [N, L, F]
        # Targets: returns of feature rows j+1..j+H; padded with NaN past the end of the data.
        future = ends[:, None] + np.arange(1, H + 1)[None, :]  # [N, H]
        known = future < n_days
        returns = np.append(feats[:, 0], np.nan)
        y = returns[np.where(known, future, n_days)]
        day_dates = np.append(dates[1:], np.datetime64("NaT"))
        parts.append(
            WindowSet(
                x=x.astype(np.float32),
                y=y.astype(np.float32),
                ticker=np.full(len(ends), ticker, dtype=object),
                origin=dates[1:][ends],
                target_dates=day_dates[np.where(known, future, n_days)],
                last_price=prices[1:][ends],
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
    return WindowSet(
        *(np.concatenate([getattr(p, f) for p in parts]) for f in WindowSet.__dataclass_fields__)
    )


def latest_windows(bars: pd.DataFrame, config: WindowConfig) -> WindowSet:
    """The most recent window of every ticker: what a forecast made today reads.

    Only the last L + 1 bars of each ticker are cut, so a universe of hundreds of tickers
    with decades of history costs one window each.
    """
    tail = bars.groupby("ticker", sort=False).tail(config.window + 1)
    return make_windows(tail, config, labelled=False)


def window_from_arrays(ticker: str, bars: dict[str, np.ndarray], config: WindowConfig) -> WindowSet:
    """The latest window of one ticker's validated bars given as arrays (`date`, `adj_close`, ...).

    Same result as `latest_windows` on the equivalent frame, without pandas: the service's
    request path. Needs at least L + 1 bars.
    """
    L, H = config.window, config.horizon
    n = len(bars["adj_close"])
    if n < L + 1:
        raise ValueError(f"{ticker}: {n} bars, a forecast needs at least {L + 1} (window {L} + 1)")
    tail = {name: np.asarray(values)[-(L + 1) :] for name, values in bars.items()}
    x = daily_features(tail, config.features)[None, :, :]  # [1, L, F]
    return WindowSet(
        x=x.astype(np.float32),
        y=np.full((1, H), np.nan, dtype=np.float32),
        ticker=np.array([ticker], dtype=object),
        origin=np.asarray(tail["date"], dtype="datetime64[D]")[-1:],
        target_dates=np.full((1, H), np.datetime64("NaT"), dtype="datetime64[D]"),
        last_price=np.asarray(tail["adj_close"], dtype=np.float64)[-1:],
    )


def split_windows(windows: WindowSet, config: WindowConfig) -> dict[str, WindowSet]:
    """Chronological train / val / test split with a gap, on the calendar of all windows.

    The calendar (every trading date any window touches) is cut at the `1 - val - test` and
    `1 - test` quantiles. A window belongs to a block only if all its target days lie inside it,
    and the first target day of a block starts `gap` trading days after the block before ends,
    so no target crosses a boundary and no validation window's future overlaps training.
    """
    calendar = np.unique(np.concatenate([windows.origin, windows.target_dates.ravel()]))
    calendar = calendar[~np.isnat(calendar)]
    n = len(calendar)
    val_start = int(n * (1 - config.val_fraction - config.test_fraction))
    test_start = int(n * (1 - config.test_fraction)) if config.test_fraction > 0 else n
    gap = config.split_gap
    first = np.searchsorted(calendar, windows.target_dates[:, 0])  # calendar index of the first target day
    last = np.searchsorted(calendar, windows.target_dates[:, -1])
    last = np.where(np.isnat(windows.target_dates[:, -1]), n, last)  # unlabelled windows belong to no block
    masks = {
        "train": last < val_start,
        "val": (first >= val_start + gap) & (last < test_start),
        "test": (first >= test_start + gap) & (last < n),
    }
    splits = {name: windows.subset(mask) for name, mask in masks.items()}
    for name in ("train", "val"):
        if len(splits[name]) == 0:
            raise ValueError(
                f"the {name} split is empty: give more data or change val_fraction/test_fraction"
            )
    return splits


@dataclass
class FeatureScaler:
    """Standardizes features and targets with statistics of the training windows only."""

    mean: np.ndarray | None = None  # [F]
    std: np.ndarray | None = None  # [F]
    target_std: float | None = None  # one scale for all horizons: daily log returns share a unit

    def fit(self, windows: WindowSet) -> FeatureScaler:
        flat = windows.x.reshape(-1, windows.x.shape[-1]).astype(np.float64)
        self.mean = flat.mean(axis=0)
        self.std = np.maximum(flat.std(axis=0), _EPS)
        self.target_std = float(max(np.nanstd(windows.y.astype(np.float64)), _EPS))
        return self

    def transform_x(self, x: np.ndarray) -> np.ndarray:
        return ((x - self.mean) / self.std).astype(np.float32)

    def transform_y(self, y: np.ndarray) -> np.ndarray:
        return (y / self.target_std).astype(np.float32)

    def inverse_y(self, y_scaled: np.ndarray) -> np.ndarray:
        return y_scaled * self.target_std

    def to_arrays(self) -> dict[str, np.ndarray]:
        return {"mean": self.mean, "std": self.std, "target_std": np.array(self.target_std)}

    @classmethod
    def from_arrays(cls, arrays) -> FeatureScaler:
        return cls(np.asarray(arrays["mean"]), np.asarray(arrays["std"]), float(arrays["target_std"]))


def regime_descriptors(returns: np.ndarray, names: tuple[str, ...]) -> np.ndarray:
    """A few numbers per window that tell market regimes apart: [N, L] returns -> [N, D].

    The fuzzy gate clusters these instead of the raw L-dimensional return vector: on the
    bundled S&P 500 sample FCM on the raw vectors collapses every center onto the mean and
    gives uniform memberships (FPC = 1/c), which would turn the ensemble into a plain average.
    """
    r = returns.astype(np.float64)
    vol = r.std(axis=1) + 1e-8
    every = {
        "cum_return": lambda: r.sum(axis=1),
        "log_volatility": lambda: np.log(vol),
        "last5_return": lambda: r[:, -5:].sum(axis=1),
        "max_abs_move": lambda: np.abs(r).max(axis=1) / vol,
        "trend_strength": lambda: r.sum(axis=1) / (vol * np.sqrt(r.shape[1])),
    }
    return np.column_stack([every[name]() for name in names])
