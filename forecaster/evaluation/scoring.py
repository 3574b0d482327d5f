"""Scores of backtest forecasts (long frames from `backtest.walk_forward`) per group, and DM tests."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from forecaster.evaluation.metrics import diebold_mariano, direction_hit_rate, mase, theil_u


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
