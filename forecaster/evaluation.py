"""Forecast metrics, baselines and the walk-forward backtest.

Errors are reported on two scales: prices (what users read) and cumulative log returns
(scale-free, so pooled tickers at different price levels weigh the same).

The backtest (`walk_forward`) rolls an origin over a date range and refits every competitor
every `refit_every` trading days on the bars up to and including the refit date only, then
forecasts every horizon 1..H from every origin until the next refit. All competitors see the
same origins and the same targets, so their errors can be compared row by row (`score`,
`dm_tests`) and written out with plots (`write_report`).
"""

from __future__ import annotations

import dataclasses
import logging
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from forecaster.config import ForecasterConfig, WindowConfig
from forecaster.intervals import ConformalCalibrator
from forecaster.windows import WindowSet, make_windows

log = logging.getLogger(__name__)


def point_metrics(actual: np.ndarray, forecast: np.ndarray) -> dict[str, np.ndarray]:
    """Per-horizon MAE, RMSE and MAPE (%) of [N, H] arrays."""
    err = forecast - actual
    return {
        "mae": np.abs(err).mean(axis=0),
        "rmse": np.sqrt((err**2).mean(axis=0)),
        "mape": 100 * np.abs(err / actual).mean(axis=0),
    }


def directional_accuracy(actual_change: np.ndarray, forecast_change: np.ndarray) -> np.ndarray:
    """Share of windows whose forecast move has the sign of the actual move, per horizon."""
    return (np.sign(actual_change) == np.sign(forecast_change)).mean(axis=0)


def interval_coverage(actual: np.ndarray, lower: np.ndarray, upper: np.ndarray) -> np.ndarray:
    return ((actual >= lower) & (actual <= upper)).mean(axis=0)


def naive_forecast(last_price: np.ndarray, horizon: int) -> np.ndarray:
    """Random walk: every future price equals the last one. [N] -> [N, H]."""
    return np.repeat(last_price[:, None], horizon, axis=1)


def summarize(actual_prices, model_prices, last_price, intervals: dict | None = None) -> dict[str, float]:
    """Overall and per-horizon metrics of the model and of the naive forecast on the same windows.

    `intervals`: {level: (lower_prices, upper_prices)}. Keys read like `val_rmse_h1`,
    `val_naive_rmse`, `val_coverage_80`; the caller adds the split prefix.
    """
    naive = naive_forecast(last_price, actual_prices.shape[1])
    log_actual = np.log(actual_prices / last_price[:, None])
    log_model = np.log(model_prices / last_price[:, None])
    out: dict[str, float] = {}
    for name, fc in (("", model_prices), ("naive_", naive)):
        for metric, values in point_metrics(actual_prices, fc).items():
            out[f"{name}{metric}"] = (
                float(values.mean()) if metric != "rmse" else float(np.sqrt((values**2).mean()))
            )
            for h, v in enumerate(values, start=1):
                out[f"{name}{metric}_h{h}"] = float(v)
    log_err = log_model - log_actual
    out["return_rmse"] = float(np.sqrt((log_err**2).mean()))
    out["naive_return_rmse"] = float(np.sqrt((log_actual**2).mean()))
    out["theil_u"] = out["rmse"] / out["naive_rmse"]
    out["directional_accuracy"] = float(directional_accuracy(log_actual, log_model).mean())
    for level, (lower, upper) in (intervals or {}).items():
        pct = round(100 * level)
        out[f"coverage_{pct}"] = float(interval_coverage(actual_prices, lower, upper).mean())
        out[f"width_{pct}"] = float(((upper - lower) / last_price[:, None]).mean())
    return out


# ---- more metrics --------------------------------------------------------------------------


def naive_scale(prices: np.ndarray, horizon: int) -> np.ndarray:
    """In-sample MAE of the h-step naive forecast on one price series, h = 1..H: [T] -> [H].

    The denominator of MASE: an error of 1 MASE is as large as the naive forecast's own
    average error on the training data at that horizon.
    """
    prices = np.asarray(prices, dtype=np.float64)
    if len(prices) <= horizon:
        raise ValueError(f"naive_scale needs more than {horizon} prices, got {len(prices)}")
    return np.array([np.abs(prices[h:] - prices[:-h]).mean() for h in range(1, horizon + 1)])


def mase(actual: np.ndarray, forecast: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """Mean absolute scaled error; `scale` broadcasts against the errors (e.g. one per horizon)."""
    return (np.abs(np.asarray(forecast) - np.asarray(actual)) / scale).mean(axis=0)


def theil_u(actual: np.ndarray, forecast: np.ndarray, naive: np.ndarray) -> float:
    """RMSE of the forecast over RMSE of the naive forecast on the same rows; below 1 beats naive."""
    return float(np.sqrt(np.mean((forecast - actual) ** 2) / np.mean((naive - actual) ** 2)))


def direction_hit_rate(actual_change: np.ndarray, forecast_change: np.ndarray) -> float:
    """Share of the forecast's direction calls that were right; NaN when it never calls one.

    A forecast of no change (the naive one) makes no call, so it is left out rather than
    counted wrong: that would score the random walk at 0%.
    """
    called = np.asarray(forecast_change) != 0
    if not called.any():
        return float("nan")
    return float((np.sign(actual_change[called]) == np.sign(forecast_change[called])).mean())


def diebold_mariano(loss_diff: np.ndarray, horizon: int = 1) -> tuple[float, float]:
    """Diebold-Mariano test of equal accuracy with the Harvey-Leybourne-Newbold correction.

    `loss_diff` is the time series d_t = L(e1_t) - L(e2_t); h-step forecasts overlap, so the
    variance of its mean counts autocovariances up to lag h-1. The statistic is scaled by
    sqrt((n + 1 - 2h + h(h-1)/n) / n) and compared with Student's t on n-1 degrees of freedom.
    Returns (statistic, two-sided p-value); a negative statistic means the first forecast has
    the smaller loss. NaN when the two forecasts have identical losses.
    """
    d = np.asarray(loss_diff, dtype=np.float64)
    n = len(d)
    if n < 3:
        return float("nan"), float("nan")
    centred = d - d.mean()
    gamma = [centred[k:] @ centred[: n - k] / n for k in range(min(horizon, n))]
    variance = gamma[0] + 2 * sum(gamma[1:])
    if variance <= 0:  # the truncated sum can go negative; fall back to the lag-0 variance
        variance = gamma[0]
    if variance <= 0:
        return float("nan"), float("nan")
    statistic = d.mean() / np.sqrt(variance / n)
    statistic *= np.sqrt((n + 1 - 2 * horizon + horizon * (horizon - 1) / n) / n)
    return float(statistic), float(2 * stats.t.sf(abs(statistic), df=n - 1))


# ---- baselines -----------------------------------------------------------------------------


@dataclass
class BaselineForecast:
    """Point forecasts and intervals of a baseline; the fields the backtest reads from `Prediction`."""

    log_return: np.ndarray  # [N, H] cumulative log return from the origin
    price: np.ndarray  # [N, H]
    intervals: dict[float, tuple[np.ndarray, np.ndarray]]  # level -> (lower, upper) prices [N, H]


class _Baseline:
    """A per-ticker statistical forecaster of cumulative log returns.

    `fit` learns its parameters from each ticker's training bars, then calibrates intervals on
    its own in-sample errors: the empirical quantile of |h-step cumulative log error| over the
    training windows, per horizon (`ConformalCalibrator` with unit scale). Unlike the model's
    intervals they do not adapt to volatility.
    """

    def __init__(self, window: WindowConfig | None = None, coverage: Sequence[float] = (0.8, 0.95)):
        self.window = window or WindowConfig()
        self.coverage = tuple(coverage)

    def fit(self, bars: pd.DataFrame) -> _Baseline:
        self.params_ = {}
        for ticker, one in bars.groupby("ticker", sort=True):
            returns = np.diff(np.log(one["adj_close"].to_numpy(np.float64)))
            self.params_[ticker] = self._fit_returns(returns)
        train = make_windows(bars, self.window)
        self.calibrator_ = ConformalCalibrator(self.coverage).fit(
            np.cumsum(train.y.astype(np.float64), axis=1), self._log_paths(train), np.ones(len(train))
        )
        return self

    def predict_windows(self, windows: WindowSet) -> BaselineForecast:
        paths = self._log_paths(windows)
        base = windows.last_price[:, None]
        ones = np.ones(len(windows))
        bounds = {}
        for level in self.coverage:
            lo, hi = self.calibrator_.interval(paths, ones, level)
            bounds[level] = (base * np.exp(lo), base * np.exp(hi))
        return BaselineForecast(paths, base * np.exp(paths), bounds)

    def _log_paths(self, windows: WindowSet) -> np.ndarray:
        """Cumulative log-return forecasts [N, H], ticker by ticker."""
        out = np.zeros((len(windows), self.window.horizon))
        for ticker in np.unique(windows.ticker):
            if ticker not in self.params_:
                raise ValueError(f"{type(self).__name__} was not fitted on {ticker}")
            rows = windows.ticker == ticker
            out[rows] = np.cumsum(self._forecast_returns(self.params_[ticker], windows.returns[rows]), axis=1)
        return out

    def _fit_returns(self, returns: np.ndarray) -> dict:
        return {}

    def _forecast_returns(self, params: dict, returns: np.ndarray) -> np.ndarray:
        """Daily log-return forecasts of the next H days from each window: [N, L] -> [N, H]."""
        raise NotImplementedError


class NaiveForecaster(_Baseline):
    """Random walk: every future price equals the last one."""

    def _forecast_returns(self, params, returns):
        return np.zeros((len(returns), self.window.horizon))


class DriftForecaster(_Baseline):
    """Random walk with drift: the mean daily log return of the training bars, every day ahead."""

    def _fit_returns(self, returns):
        return {"mu": float(returns.mean())}

    def _forecast_returns(self, params, returns):
        return np.full((len(returns), self.window.horizon), params["mu"])


class ArimaForecaster(_Baseline):
    """ARMA(p, q) on daily log returns (ARIMA(p, 1, q) on log prices), order by AIC on training data.

    statsmodels fits every order in 0..max_p x 0..max_q on the last `max_obs` training returns
    (demeaned; innovations MLE, which is fast); the lowest AIC wins. Forecasts from a window run
    the fitted ARMA recursion over the window's returns (innovations start at 0, which the
    window's L days wash out for an invertible MA part), so a forecast only reads its window.
    """

    def __init__(
        self, window=None, coverage=(0.8, 0.95), max_p: int = 2, max_q: int = 2, max_obs: int = 1000
    ):
        super().__init__(window, coverage)
        self.max_p, self.max_q, self.max_obs = max_p, max_q, max_obs

    def _fit_returns(self, returns):
        from statsmodels.tsa.arima.model import ARIMA

        r = returns[-self.max_obs :]
        mu = float(r.mean())
        x = (r - mu) * 100  # percent: better conditioned for the optimizer; AR/MA terms are scale-free
        best = None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # convergence chatter on near-white-noise returns
            for p in range(self.max_p + 1):
                for q in range(self.max_q + 1):
                    res = ARIMA(x, order=(p, 0, q), trend="n").fit(method="innovations_mle")
                    if best is None or res.aic < best.aic:
                        best = res
        return {
            "mu": mu,
            "ar": np.asarray(best.arparams, dtype=np.float64),
            "ma": np.asarray(best.maparams, dtype=np.float64),
            "order": (len(best.arparams), len(best.maparams)),
        }

    def _forecast_returns(self, params, returns):
        ar, ma, mu = params["ar"], params["ma"], params["mu"]
        n, length = returns.shape
        horizon = self.window.horizon
        x = np.zeros((n, length + horizon))
        x[:, :length] = returns - mu
        e = np.zeros_like(x)  # innovations; 0 before the window and in the future
        for t in range(length + horizon):
            fitted = sum(ar[i] * x[:, t - 1 - i] for i in range(len(ar)) if t - 1 - i >= 0)
            fitted = fitted + sum(ma[j] * e[:, t - 1 - j] for j in range(len(ma)) if t - 1 - j >= 0)
            if t < length:
                e[:, t] = x[:, t] - fitted
            else:
                x[:, t] = fitted
        return x[:, length:] + mu


# ---- walk-forward backtest -----------------------------------------------------------------

COMPETITORS = ("naive", "drift", "arima", "single_lstm", "equal_weight", "hard_cluster", "fuzzy")


@dataclass
class BacktestResult:
    """What `walk_forward` produced, as long frames (one row per model, ticker, origin, horizon)."""

    forecasts: pd.DataFrame  # model, fold, ticker, origin, horizon, target_date, last_price, actual,
    # forecast, lower_XX / upper_XX per level, mase_scale (the fold's in-sample naive MAE)
    memberships: pd.DataFrame  # fold, ticker, origin, u_0..u_{c-1}: clusters ordered calm -> turbulent
    folds: pd.DataFrame  # fold, refit_date, first_origin, last_origin, train_bars, <model>_seconds


def walk_forward(
    bars: pd.DataFrame,
    config: ForecasterConfig | None = None,
    *,
    start=None,
    end=None,
    refit_every: int = 250,
    train_days: int | None = None,
    models: Sequence[str] = COMPETITORS,
    progress: bool | None = False,
) -> BacktestResult:
    """Rolling-origin backtest of every competitor on the same origins and targets.

    Origins are the trading days in [start, end] whose next H days are in `bars`. Every
    `refit_every` origins (on the calendar of all tickers) each competitor is refitted on the
    bars dated up to and including that refit date: all of them (`train_days=None`, an
    expanding window) or the last `train_days` per ticker (a fixed-length window). The
    forecaster gets `test_fraction=0`, so its scaler, cluster centers, early-stopping split
    and conformal residuals all come from those bars; a forecast made at an origin reads only
    the window ending there. Nothing after an origin reaches the forecast made at it.
    """
    config = config or ForecasterConfig()
    config = dataclasses.replace(config, window=dataclasses.replace(config.window, test_fraction=0.0))
    unknown = [m for m in models if m not in COMPETITORS]
    if unknown or not models:
        raise ValueError(f"unknown model(s) {unknown}; choose from {', '.join(COMPETITORS)}")
    if refit_every < 1:
        raise ValueError(f"refit_every must be >= 1 trading day, got {refit_every}")
    if train_days is not None and train_days <= config.window.window + 2 * config.window.horizon:
        raise ValueError(f"train_days={train_days} is too short for windows of {config.window.window} days")
    windows = make_windows(bars, config.window)  # labelled: every origin's targets are known
    lo = np.datetime64(pd.Timestamp(start).date()) if start is not None else windows.origin.min()
    hi = np.datetime64(pd.Timestamp(end).date()) if end is not None else windows.origin.max()
    in_range = (windows.origin >= lo) & (windows.origin <= hi)
    origins = np.unique(windows.origin[in_range])
    if len(origins) == 0:
        raise ValueError(
            f"no origin between {lo} and {hi} with {config.window.horizon} trading days of data after it"
        )
    refits = origins[::refit_every]
    parts, members, folds = [], [], []
    for fold, refit in enumerate(refits):
        stop = refits[fold + 1] if fold + 1 < len(refits) else origins[-1] + 1
        test = windows.subset(in_range & (windows.origin >= refit) & (windows.origin < stop))
        train_bars = bars[bars["date"].to_numpy("datetime64[D]") <= refit]
        if train_days is not None:
            train_bars = train_bars.groupby("ticker", sort=False).tail(train_days + 1)
        scales = {
            t: naive_scale(one["adj_close"].to_numpy(), config.window.horizon)
            for t, one in train_bars.groupby("ticker")
        }
        row = {
            "fold": fold,
            "refit_date": pd.Timestamp(refit),
            "first_origin": pd.Timestamp(test.origin.min()),
            "last_origin": pd.Timestamp(test.origin.max()),
            "train_bars": len(train_bars),
        }
        try:
            predictors, seconds, fuzzy = _fit_competitors(models, train_bars, config, progress)
        except ValueError as exc:
            raise ValueError(f"fold {fold} (refit on {refit}): {exc}") from exc
        for name in models:
            parts.append(_forecast_rows(name, fold, test, predictors[name](test), scales, config))
        if fuzzy is not None:
            members.append(_membership_rows(fuzzy, fold, test))
        folds.append({**row, **{f"{name}_seconds": s for name, s in seconds.items()}})
        log.info(
            "fold %d/%d: refit on %s, %d origins, fit %s",
            fold + 1,
            len(refits),
            refit,
            len(np.unique(test.origin)),
            ", ".join(f"{k} {v:.0f}s" for k, v in seconds.items()),
        )
    forecasts = pd.concat(parts, ignore_index=True)
    forecasts["model"] = pd.Categorical(forecasts["model"], categories=list(models), ordered=True)
    return BacktestResult(
        forecasts=forecasts,
        memberships=pd.concat(members, ignore_index=True) if members else pd.DataFrame(),
        folds=pd.DataFrame(folds),
    )


def _fit_competitors(models, bars, config, progress):
    """Fit what `models` need on `bars`: {name: windows -> forecast}, fit seconds, the fuzzy model."""
    from forecaster.model import FuzzyLSTMForecaster  # model.py imports this module

    def with_gate(gate):
        return dataclasses.replace(config, cluster=dataclasses.replace(config.cluster, gate=gate))

    predictors: dict[str, Callable] = {}
    seconds: dict[str, float] = {}
    fuzzy = None
    if {"fuzzy", "equal_weight"} & set(models):
        # One fit serves both: the equal-weight ensemble is the same experts weighted 1/K.
        started = time.perf_counter()
        fuzzy = FuzzyLSTMForecaster(with_gate("fuzzy")).fit(bars, progress=progress)
        predictors["fuzzy"] = fuzzy.predict_windows
        predictors["equal_weight"] = lambda w: fuzzy.predict_windows(w, combine="equal")
        seconds["fuzzy"] = time.perf_counter() - started
    baselines = {"naive": NaiveForecaster, "drift": DriftForecaster, "arima": ArimaForecaster}
    for name in models:
        if name in ("fuzzy", "equal_weight"):
            continue
        started = time.perf_counter()
        if name in baselines:
            predictors[name] = baselines[name](config.window, config.train.coverage).fit(bars).predict_windows
        else:
            gate = {"single_lstm": "single", "hard_cluster": "hard"}[name]
            predictors[name] = (
                FuzzyLSTMForecaster(with_gate(gate)).fit(bars, progress=progress).predict_windows
            )
        seconds[name] = time.perf_counter() - started
    return predictors, seconds, fuzzy


def _forecast_rows(name, fold, windows: WindowSet, pred, scales, config) -> pd.DataFrame:
    n, h = pred.price.shape
    frame = pd.DataFrame(
        {
            "model": name,
            "fold": fold,
            "ticker": np.repeat(windows.ticker.astype(str), h),
            "origin": np.repeat(pd.to_datetime(windows.origin), h),
            "horizon": np.tile(np.arange(1, h + 1), n),
            "target_date": pd.to_datetime(windows.target_dates.ravel()),
            "last_price": np.repeat(windows.last_price, h),
            "actual": windows.target_prices().ravel(),
            "forecast": pred.price.ravel(),
        }
    )
    for level in config.train.coverage:
        pct = round(100 * level)
        lo, hi = pred.intervals.get(level, (np.full((n, h), np.nan),) * 2)
        frame[f"lower_{pct}"], frame[f"upper_{pct}"] = lo.ravel(), hi.ravel()
    frame["mase_scale"] = np.stack([scales[t] for t in windows.ticker]).ravel() if n else []
    return frame


def _membership_rows(model, fold, windows: WindowSet) -> pd.DataFrame:
    """Memberships of the fuzzy model, clusters sorted by the volatility of their centers.

    Cluster numbers are arbitrary and change from fit to fit; ordering them calm -> turbulent
    keeps one column meaning one kind of regime across folds.
    """
    u = model.predict_windows(windows, intervals=False).memberships
    descriptors = model.config.cluster.descriptors
    if "log_volatility" in descriptors:
        u = u[:, np.argsort(model.clusterer_.centers_[:, descriptors.index("log_volatility")])]
    frame = pd.DataFrame(
        {"fold": fold, "ticker": windows.ticker.astype(str), "origin": pd.to_datetime(windows.origin)}
    )
    for k in range(u.shape[1]):
        frame[f"u_{k}"] = u[:, k]
    return frame


# ---- scoring --------------------------------------------------------------------------------


def score(forecasts: pd.DataFrame, by: Sequence[str] = ("model",)) -> pd.DataFrame:
    """Metrics of backtest forecasts per group: price and return scale, MASE, Theil U, intervals.

    Price scale: mae, rmse, mape (%), mase, theil_u (RMSE over the naive forecast's RMSE on the
    same rows). Return scale (cumulative log return from the origin, comparable across tickers):
    return_mae, return_rmse, return_theil_u. direction: share of right direction calls (NaN for
    a forecast that never calls one). coverage_XX / width_XX (mean width over the last price).
    """
    rows = []
    for key, group in forecasts.groupby(list(by), sort=True, observed=True):
        key = key if isinstance(key, tuple) else (key,)
        rows.append({**dict(zip(by, key, strict=True)), **_score_group(group)})
    return pd.DataFrame(rows)


def _score_group(g: pd.DataFrame) -> dict[str, float]:
    actual, forecast, last = (g[c].to_numpy(np.float64) for c in ("actual", "forecast", "last_price"))
    r_actual, r_forecast = np.log(actual / last), np.log(forecast / last)
    out = {
        "n": len(g),
        "mae": float(np.abs(forecast - actual).mean()),
        "rmse": float(np.sqrt(((forecast - actual) ** 2).mean())),
        "mape": float(100 * np.abs((forecast - actual) / actual).mean()),
        "mase": float(mase(actual, forecast, g["mase_scale"].to_numpy(np.float64))),
        "theil_u": theil_u(actual, forecast, last),
        "return_mae": float(np.abs(r_forecast - r_actual).mean()),
        "return_rmse": float(np.sqrt(((r_forecast - r_actual) ** 2).mean())),
        "return_theil_u": theil_u(r_actual, r_forecast, np.zeros_like(r_actual)),
        "direction": direction_hit_rate(r_actual, r_forecast),
    }
    for column in [c for c in g.columns if c.startswith("lower_")]:
        pct = column.removeprefix("lower_")
        lower, upper = g[column].to_numpy(np.float64), g[f"upper_{pct}"].to_numpy(np.float64)
        has = not np.isnan(lower).all()
        out[f"coverage_{pct}"] = float(((actual >= lower) & (actual <= upper)).mean()) if has else np.nan
        out[f"width_{pct}"] = float(((upper - lower) / last).mean()) if has else np.nan
    return out


def dm_tests(forecasts: pd.DataFrame, references: Sequence[str] = ("naive", "single_lstm")) -> pd.DataFrame:
    """Diebold-Mariano tests of every model against each reference, per horizon and over all.

    Loss: squared error of the cumulative log return (scale-free). The loss differential is
    averaged over tickers at each origin, giving one time series per test; "all" averages over
    horizons too and allows autocorrelation up to lag H-1. A negative statistic favours the model.
    """
    frame = forecasts.assign(
        loss=(np.log(forecasts["forecast"]) - np.log(forecasts["actual"])) ** 2,
        model=forecasts["model"].astype(str),
    )
    wide = frame.set_index(["ticker", "origin", "horizon", "model"])["loss"].unstack("model")
    max_h = int(frame["horizon"].max())
    models = [str(m) for m in pd.unique(forecasts["model"])]  # in the order they were run
    rows = []
    for ref in [r for r in references if r in models]:
        for model in [m for m in models if m != ref]:
            diff = (wide[model] - wide[ref]).dropna()
            by_h = diff.groupby(level=["origin", "horizon"]).mean()
            series = {h: by_h.xs(h, level="horizon").sort_index() for h in range(1, max_h + 1)}
            series["all"] = by_h.groupby(level="origin").mean().sort_index()
            for h, d in series.items():
                stat, p = diebold_mariano(d.to_numpy(), max_h if h == "all" else h)
                rows.append(
                    {
                        "model": model,
                        "reference": ref,
                        "horizon": str(h),
                        "n": len(d),
                        "mean_loss_diff": float(d.mean()),
                        "dm_stat": stat,
                        "p_value": p,
                    }
                )
    return pd.DataFrame(rows)


# ---- report ---------------------------------------------------------------------------------


def markdown_table(frame: pd.DataFrame) -> str:
    """A GitHub Markdown table; floats to 4 significant digits (1 decimal from 100 on)."""

    def cell(v) -> str:
        if isinstance(v, float | np.floating):
            if np.isnan(v):
                return "-"
            return f"{v:,.1f}" if abs(v) >= 100 else f"{v:.4g}"
        if isinstance(v, pd.Timestamp):
            return str(v.date())
        return str(v)

    header = "| " + " | ".join(map(str, frame.columns)) + " |"
    rule = "|" + "|".join("---" if frame[c].dtype == object else "---:" for c in frame.columns) + "|"
    body = ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([header, rule, *body])


REPORT_COLUMNS = [
    "mae", "rmse", "mape", "mase", "theil_u", "return_rmse", "return_theil_u", "direction",
    "coverage_80", "width_80", "coverage_95", "width_95",
]  # fmt: skip


def summary_table(result: BacktestResult) -> pd.DataFrame:
    """The aggregated table: one row per model, with the DM p-values against the references."""
    table = score(result.forecasts)
    tests = dm_tests(result.forecasts)
    for ref in tests["reference"].unique() if len(tests) else []:
        p = tests[(tests["reference"] == ref) & (tests["horizon"] == "all")].set_index("model")["p_value"]
        table[f"dm_p_vs_{ref}"] = table["model"].astype(str).map(p)
    keep = ["model", "n", *[c for c in REPORT_COLUMNS if c in table]]
    return table[keep + [c for c in table if c.startswith("dm_p_")]]


def write_report(result: BacktestResult, output: str | Path, *, horizon_to_plot: int = 1) -> dict[str, Path]:
    """Write the backtest's tables (CSV, Markdown) and plots (PNG) into `output`; return the paths."""
    from forecaster import plots  # plots imports the model, which imports this module

    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    f = result.forecasts
    tables = {
        "summary": summary_table(result),
        "by_horizon": score(f, ("model", "horizon")),
        "by_fold": score(f, ("model", "fold")),
        "by_ticker": score(f, ("model", "ticker")),
        "dm_tests": dm_tests(f),
        "folds": result.folds,
    }
    paths: dict[str, Path] = {}
    for name, table in tables.items():
        paths[name] = output / f"{name}.csv"
        table.to_csv(paths[name], index=False)
    paths["forecasts"] = output / "forecasts.csv.gz"
    f.to_csv(paths["forecasts"], index=False)

    shown = "fuzzy" if "fuzzy" in set(f["model"]) else str(f["model"].cat.categories[-1])
    for ticker in sorted(f["ticker"].unique()):
        safe = ticker.replace("^", "")
        paths[f"forecast_{ticker}"] = plots.plot_backtest_forecast(
            f, shown, ticker, horizon_to_plot, output / f"forecast_vs_actual_{safe}.png"
        )
        if len(result.memberships):
            paths[f"memberships_{ticker}"] = plots.plot_backtest_memberships(
                f, result.memberships, ticker, output / f"memberships_{safe}.png"
            )
    paths["error_by_horizon"] = plots.plot_error_by_horizon(
        tables["by_horizon"], output / "error_by_horizon.png"
    )

    span = f"{f['origin'].min().date()} to {f['origin'].max().date()}"
    sections = [
        "# Walk-forward backtest",
        f"Origins {span}, tickers {', '.join(sorted(f['ticker'].unique()))}, {len(result.folds)} folds. "
        "Theil U and return_theil_u below 1 beat the naive last-price forecast; dm_p_vs_*: "
        "Diebold-Mariano p-value (HLN-corrected, squared log-return error, all horizons).",
        "## Aggregated",
        markdown_table(tables["summary"]),
        "## By horizon",
        markdown_table(tables["by_horizon"][["model", "horizon", "n", *REPORT_COLUMNS]]),
        "## By fold",
        markdown_table(
            tables["by_fold"][["model", "fold", "n", "rmse", "mase", "return_theil_u", "direction"]]
        ),
        "## Diebold-Mariano tests",
        markdown_table(tables["dm_tests"]),
        "## Folds",
        markdown_table(tables["folds"]),
    ]
    paths["report"] = output / "report.md"
    paths["report"].write_text("\n\n".join(sections) + "\n")
    return paths
