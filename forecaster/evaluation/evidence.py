"""The evidence tables of a backtest a risk team reads: MCS, per-ticker wins, VaR backtests, traffic light.

All on the 1-day-ahead rows (horizon 1) for the risk tests: the VaR backtests assume one forecast
a day whose outcome is known before the next, and overlapping h-day forecasts make the
independence and dynamic-quantile tests reject whatever the model. The model comparison (MCS and
wins) uses the pinball loss of every horizon, averaged per origin (MCS) or per ticker (wins).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from forecaster.evaluation.comparison import model_confidence_set, win_counts
from forecaster.evaluation.risk_backtests import risk_table, traffic_light, violations
from forecaster.evaluation.scoring import quantile_columns, row_pinball

VAR_ALPHAS = (0.01, 0.025, 0.05)
SIGNIFICANCE = 0.05


def _with_quantiles(forecasts: pd.DataFrame) -> pd.DataFrame:
    """Rows of the models that forecast quantiles, with their pinball loss."""
    frame = forecasts.assign(
        model=forecasts["model"].astype(str),
        loss=row_pinball(forecasts),
        actual_log_return=np.log(
            forecasts["actual"] / forecasts["last_price"]
        ),  # what the quantiles forecast
    )
    return frame[frame["loss"].notna()]


def mcs_table(forecasts: pd.DataFrame, size: float = 0.10, seed: int = 0) -> pd.DataFrame:
    """The 90% Model Confidence Set on the pinball loss, averaged over tickers and horizons per origin."""
    frame = _with_quantiles(forecasts)
    losses = frame.pivot_table(index="origin", columns="model", values="loss", aggfunc="mean").dropna()
    if losses.shape[1] < 2 or len(losses) < 10:
        return pd.DataFrame(columns=["model", "mean_loss", "pvalue", "included"])
    return model_confidence_set(losses, size=size, seed=seed).reset_index()


def wins_table(forecasts: pd.DataFrame) -> pd.DataFrame:
    """How many tickers each model has the lowest mean pinball loss in."""
    frame = _with_quantiles(forecasts)
    per_ticker = frame.groupby(["ticker", "model"], observed=True)["loss"].mean().reset_index()
    return win_counts(per_ticker)


def var_backtests(forecasts: pd.DataFrame, alphas=VAR_ALPHAS) -> pd.DataFrame:
    """Kupiec, Christoffersen and DQ per model, ticker, alpha and tail on the 1-day VaR (long table)."""
    one_day = _with_quantiles(forecasts[forecasts["horizon"] == 1])
    if one_day.empty:
        return pd.DataFrame()
    return risk_table(one_day, alphas, by=("model", "ticker"))


def var_summary(tests: pd.DataFrame) -> pd.DataFrame:
    """Per model, alpha and tail: the pooled violation rate and the share of tickers not rejected at 5%."""
    if tests.empty:
        return tests
    grouped = tests.groupby(["model", "alpha", "tail"], sort=False)
    return grouped.apply(
        lambda g: pd.Series(
            {
                "tickers": len(g),
                "rate": g["violations"].sum() / g["n"].sum(),
                "kupiec_pass": (g["kupiec_p"] >= SIGNIFICANCE).mean(),
                "cc_pass": (g["cc_p"] >= SIGNIFICANCE).mean(),
                "dq_pass": (g["dq_p"] >= SIGNIFICANCE).mean(),
            }
        ),
        include_groups=False,
    ).reset_index()


def traffic_lights(forecasts: pd.DataFrame, window: int = 250) -> pd.DataFrame:
    """Basel zones of rolling 250-day windows of 1-day 99% VaR exceptions, counted per model and ticker."""
    one_day = _with_quantiles(forecasts[forecasts["horizon"] == 1])
    levels = quantile_columns(one_day)
    if not levels or min(levels) > 0.01 + 1e-9:
        return pd.DataFrame(columns=["model", "ticker", "windows", "green", "yellow", "red"])
    column = levels[min(levels, key=lambda level: abs(level - 0.01))]
    rows = []
    for (model, ticker), g in one_day.sort_values("origin").groupby(["model", "ticker"], sort=True):
        hits = violations(g["actual_log_return"].to_numpy(), g[column].to_numpy())
        counts = traffic_light(hits, window).counts
        rows.append({"model": model, "ticker": ticker, "windows": sum(counts.values()), **counts})
    return pd.DataFrame(rows)


def evidence_tables(forecasts: pd.DataFrame) -> dict[str, pd.DataFrame]:
    tests = var_backtests(forecasts)
    return {
        "mcs": mcs_table(forecasts),
        "wins": wins_table(forecasts),
        "var_tests": tests,
        "var_summary": var_summary(tests),
        "traffic_light": traffic_lights(forecasts),
    }


def traffic_light_shares(lights: pd.DataFrame) -> pd.DataFrame:
    """Share of green / yellow / red windows per model, pooled over tickers."""
    if lights.empty:
        return lights
    totals = lights.groupby("model")[["green", "yellow", "red"]].sum()
    return totals.div(np.maximum(totals.sum(axis=1), 1), axis=0).reset_index()
