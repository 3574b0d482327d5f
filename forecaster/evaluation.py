"""Forecast metrics and the naive baseline.

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
