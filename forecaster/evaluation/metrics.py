"""Forecast metrics, pure numpy: point errors, MASE, Theil's U, direction, coverage, Diebold-Mariano.

Errors are reported on two scales: prices (what users read) and cumulative log returns
(scale-free, so pooled tickers at different price levels weigh the same).
"""

from __future__ import annotations

import numpy as np
from scipy import stats


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


def pinball_loss(actual: np.ndarray, quantiles: np.ndarray, levels) -> np.ndarray:
    """Pinball (quantile) loss per level: actual [..., ], quantiles [..., Q] -> [..., Q].

    Its mean over many evenly spread levels approximates the CRPS; lower is better.
    """
    levels = np.asarray(levels, dtype=np.float64)
    diff = np.asarray(actual, dtype=np.float64)[..., None] - quantiles
    return np.maximum(levels * diff, (levels - 1) * diff)


def winkler_score(actual: np.ndarray, lower: np.ndarray, upper: np.ndarray, coverage: float) -> np.ndarray:
    """Winkler (interval) score of central intervals at `coverage`: width plus 2/alpha times any miss."""
    alpha = 1 - coverage
    below, above = np.maximum(lower - actual, 0), np.maximum(actual - upper, 0)
    return (upper - lower) + 2 / alpha * (below + above)


def quantile_summary(actual: np.ndarray, quantiles: np.ndarray, levels) -> dict[str, float]:
    """Distribution metrics on cumulative log returns: actual [N, H], quantiles [N, H, Q].

    pinball (mean over levels and horizons, and per horizon), winkler_XX for every central
    interval the levels hold, and calibration_error: the mean gap between each
    level and the share of outcomes at or below its quantile.
    """
    levels = tuple(float(q) for q in levels)
    loss = pinball_loss(actual, quantiles, levels)  # [N, H, Q]
    out = {"pinball": float(loss.mean())}
    for h in range(actual.shape[1]):
        out[f"pinball_h{h + 1}"] = float(loss[:, h].mean())
    below = (actual[..., None] <= quantiles).mean(axis=(0, 1))  # [Q]
    out["calibration_error"] = float(np.abs(below - np.asarray(levels)).mean())
    for q, level in enumerate(levels):
        if level < 0.5 and round(1 - level, 6) in levels:
            hi = levels.index(round(1 - level, 6))
            coverage = round(1 - 2 * level, 6)
            pct = round(100 * coverage)
            lo_q, hi_q = quantiles[..., q], quantiles[..., hi]
            out[f"winkler_{pct}"] = float(winkler_score(actual, lo_q, hi_q, coverage).mean())
    return out
