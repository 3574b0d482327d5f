"""Forecast metrics, pure numpy: point errors, MASE, Theil's U, direction, coverage,
and the scores of distributional forecasts (pinball loss, Winkler interval score, reliability).

Errors are reported on two scales: prices (what users read) and cumulative log returns
(scale-free, so pooled tickers at different price levels weigh the same).
"""

from __future__ import annotations

import numpy as np


def point_metrics(actual: np.ndarray, forecast: np.ndarray) -> dict[str, np.ndarray]:
    """Per-horizon MAE, RMSE and MAPE (%) of [N, H] arrays."""
    err = forecast - actual
    return {
        "mae": np.abs(err).mean(axis=0),
        "rmse": np.sqrt((err**2).mean(axis=0)),
        "mape": 100 * np.abs(err / actual).mean(axis=0),
    }


def direction_hit_rate(actual_change, forecast_change, axis: int | None = None):
    """Share of the forecast's direction calls that were right: over all (a float), or along `axis`.

    A call is a forecast change other than zero, and it is right when the actual change has its
    sign. A forecast of no change (the naive one) makes no call, so it is left out rather than
    counted wrong (that would score the random walk at 0%); NaN where no call was made. When
    every forecast makes a call this is the plain share of matching signs.
    """
    actual_change, forecast_change = np.asarray(actual_change), np.asarray(forecast_change)
    called = forecast_change != 0
    right = called & (np.sign(actual_change) == np.sign(forecast_change))
    with np.errstate(invalid="ignore", divide="ignore"):  # no call: 0 / 0 = NaN
        rate = right.sum(axis=axis) / called.sum(axis=axis)
    return float(rate) if axis is None else rate


def coverage(y, lower, upper, axis: int | None = None):
    """Share of outcomes inside [lower, upper], bounds included: over all (a float), or along `axis`."""
    y = np.asarray(y, dtype=np.float64)
    inside = (y >= lower) & (y <= upper)
    return float(inside.mean()) if axis is None else inside.mean(axis=axis)


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
    out["directional_accuracy"] = float(direction_hit_rate(log_actual, log_model, axis=0).mean())
    for level, (lower, upper) in (intervals or {}).items():
        pct = round(100 * level)
        out[f"coverage_{pct}"] = float(coverage(actual_prices, lower, upper, axis=0).mean())
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


# ---- distributional forecasts -------------------------------------------------------------------


def pinball_losses(y: np.ndarray, quantiles: np.ndarray, levels) -> np.ndarray:
    """Pinball (quantile) loss of every quantile: y [...], quantiles [..., Q] -> [..., Q].

    rho_tau(y - q) = tau * (y - q) when y >= q, else (1 - tau) * (q - y). NaN in, NaN out.
    """
    levels = np.asarray(levels, dtype=np.float64)
    diff = np.asarray(y, dtype=np.float64)[..., None] - np.asarray(quantiles, dtype=np.float64)
    return np.maximum(levels * diff, (levels - 1) * diff)


def pinball_loss(y: np.ndarray, quantiles: np.ndarray, levels, *, per_level: bool = False):
    """Mean pinball loss over rows and levels (a float), or per level ([Q]) with `per_level`.

    Averaged over levels spread across (0, 1) it approximates half the CRPS
    (CRPS = 2 * integral of the pinball loss over tau).
    """
    losses = pinball_losses(y, quantiles, levels).reshape(-1, len(levels))
    return losses.mean(axis=0) if per_level else float(losses.mean())


def winkler_score(y: np.ndarray, lower: np.ndarray, upper: np.ndarray, alpha: float) -> float:
    """Mean interval (Winkler) score of central (1 - alpha) intervals; lower is better.

    width + 2/alpha * (lower - y) when y < lower, + 2/alpha * (y - upper) when y > upper
    (Gneiting & Raftery 2007): a narrow interval pays for every miss in proportion to its size.
    """
    y, lower, upper = (np.asarray(a, dtype=np.float64) for a in (y, lower, upper))
    below = np.where(y < lower, lower - y, 0.0)
    above = np.where(y > upper, y - upper, 0.0)
    return float((upper - lower + 2 / alpha * (below + above)).mean())


def quantile_hit_rates(y: np.ndarray, quantiles: np.ndarray) -> np.ndarray:
    """Share of outcomes at or below each quantile: y [...], quantiles [..., Q] -> [Q].

    A calibrated forecast gives back its levels (the reliability diagram's diagonal).
    """
    q = np.asarray(quantiles, dtype=np.float64)
    hits = np.asarray(y, dtype=np.float64)[..., None] <= q
    return hits.reshape(-1, q.shape[-1]).mean(axis=0)


def quantile_summary(actual: np.ndarray, quantiles: np.ndarray, levels) -> dict[str, float]:
    """Distribution metrics on cumulative log returns: actual [N, H], quantiles [N, H, Q].

    pinball (mean over levels and horizons, and per horizon), winkler_XX for every central
    interval the levels hold, and calibration_error: the mean gap between each level and the
    share of outcomes at or below its quantile.
    """
    levels = tuple(float(q) for q in levels)
    out = {"pinball": pinball_loss(actual, quantiles, levels)}
    for h in range(actual.shape[1]):
        out[f"pinball_h{h + 1}"] = pinball_loss(actual[:, h], quantiles[:, h], levels)
    out["calibration_error"] = float(
        np.abs(quantile_hit_rates(actual, quantiles) - np.asarray(levels)).mean()
    )
    for q, level in enumerate(levels):
        if level < 0.5 and round(1 - level, 6) in levels:
            upper = quantiles[..., levels.index(round(1 - level, 6))]
            out[f"winkler_{round(100 * (1 - 2 * level))}"] = winkler_score(
                actual, quantiles[..., q], upper, 2 * level
            )
    return out
