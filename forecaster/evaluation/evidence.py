"""The evidence tables of a backtest a risk team reads: MCS, wins, VaR and ES backtests, traffic light.

All on the 1-day-ahead rows (horizon 1) for the risk tests: the VaR backtests assume one forecast
a day whose outcome is known before the next, and overlapping h-day forecasts make the
independence and dynamic-quantile tests reject whatever the model. The model comparison (MCS and
wins) uses the pinball loss of every horizon, averaged per origin (MCS) or per ticker (wins).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from forecaster.evaluation.comparison import model_confidence_set, win_counts
from forecaster.evaluation.risk_backtests import (
    acerbi_szekely_z2,
    expected_shortfall,
    kupiec_pof,
    quantile_function,
    quantile_sampler,
    risk_table,
    traffic_light,
    violations,
)
from forecaster.evaluation.scoring import quantile_columns, row_pinball

VAR_ALPHAS = (0.01, 0.025, 0.05)
ES_ALPHA = 0.025  # FRTB's expected shortfall level
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
    """Per model, alpha and tail: the pooled violation rate with its Kupiec p-value, and the share
    of tickers not rejected at 5%.

    The pooled Kupiec test treats every (ticker, day) as one trial. Tickers' exceptions cluster on
    the same market days, so the pooled test over-rejects a correct model a little: read a pooled
    p just under 5% as borderline, and the per-ticker shares as the main evidence.
    """
    if tests.empty:
        return tests
    grouped = tests.groupby(["model", "alpha", "tail"], sort=False)
    return grouped.apply(
        lambda g: pd.Series(
            {
                "tickers": len(g),
                "rate": g["violations"].sum() / g["n"].sum(),
                # POF depends on the counts only: any hit series with that many hits in that many days
                "kupiec_pooled_p": float(
                    kupiec_pof(np.arange(g["n"].sum()) < g["violations"].sum(), g.name[1]).p_value
                ),
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


def es_backtests(
    forecasts: pd.DataFrame, alpha: float = ES_ALPHA, n_sims: int = 1000
) -> tuple[pd.DataFrame, dict[tuple[str, str], np.ndarray]]:
    """Acerbi-Szekely Z2 of the lower-tail 1-day ES per model and ticker, with its simulated null.

    VaR and ES come from each row's quantiles (`quantile_function`, `expected_shortfall`: the tail
    mean of the interpolated quantile function), the null from outcomes drawn from the same
    quantiles (`quantile_sampler`), so the test asks whether the forecast distribution's tail is
    as heavy as the outcomes'. Returns the tests (model, ticker, n, violations, z2, p_value,
    one-sided: small when the realized tail is heavier than forecast; critical_value, the null's
    5% quantile) and the null draws per (model, ticker), for `es_summary`'s pooled test.
    """
    one_day = _with_quantiles(forecasts[forecasts["horizon"] == 1])
    rows, nulls = [], {}
    groups = one_day.sort_values("origin").groupby(["model", "ticker"], sort=True)
    for seed, ((model, ticker), g) in enumerate(groups):
        columns = {level: c for level, c in quantile_columns(g).items() if g[c].notna().all()}
        if len(columns) < 2:
            continue
        y, q = g["actual_log_return"].to_numpy(np.float64), g[list(columns.values())].to_numpy(np.float64)
        z2, null, hits = _z2_with_null(y, q, np.array(list(columns)), alpha, n_sims, seed)
        rows.append(
            {"model": model, "ticker": ticker, "n": len(y), "violations": hits, "z2": z2}
            | {"p_value": (1 + np.sum(null <= z2)) / (1 + n_sims)}
            | {"critical_value": float(np.quantile(null, SIGNIFICANCE))}
        )
        nulls[(model, ticker)] = null
    columns = ["model", "ticker", "n", "violations", "z2", "p_value", "critical_value"]
    return pd.DataFrame(rows, columns=columns), nulls


def _z2_with_null(y, quantiles, levels, alpha, n_sims, seed, chunk: int = 200):
    """(Z2 of the outcomes, Z2 of `n_sims` paths drawn from the forecasts [n_sims], VaR violations)."""
    var = quantile_function(quantiles, levels, np.full(len(y), alpha))
    es = expected_shortfall(quantiles, levels, alpha)
    sample, rng = quantile_sampler(quantiles, levels), np.random.default_rng(seed)
    null = np.concatenate(
        [
            acerbi_szekely_z2(sample(rng, min(chunk, n_sims - i)), var, es, alpha)
            for i in range(0, n_sims, chunk)
        ]
    )
    return float(acerbi_szekely_z2(y, var, es, alpha)), null, int(violations(y, var).sum())


def es_summary(tests: pd.DataFrame, nulls: dict[tuple[str, str], np.ndarray]) -> pd.DataFrame:
    """Per model: tickers, share not rejected at 5%, mean Z2, and the pooled Z2 with its p-value.

    The pooled Z2 is that of all the model's rows at once, the n-weighted mean of the tickers' Z2;
    its null is the same weighting of their simulated nulls (tickers drawn independently).
    """
    columns = ["model", "tickers", "z2_pass", "mean_z2", "pooled_z2", "pooled_p"]
    rows = []
    for model, g in tests.groupby("model", sort=False):
        weights = g["n"].to_numpy(np.float64) / g["n"].sum()
        pooled = float(weights @ g["z2"].to_numpy(np.float64))
        null = sum(w * nulls[(model, t)] for w, t in zip(weights, g["ticker"], strict=True))
        rows.append(
            {"model": model, "tickers": len(g), "z2_pass": float((g["p_value"] >= SIGNIFICANCE).mean())}
            | {"mean_z2": float(g["z2"].mean()), "pooled_z2": pooled}
            | {"pooled_p": float((1 + np.sum(null <= pooled)) / (1 + len(null)))}
        )
    return pd.DataFrame(rows, columns=columns)


def evidence_tables(forecasts: pd.DataFrame) -> dict[str, pd.DataFrame]:
    tests, (es_tests, es_nulls) = var_backtests(forecasts), es_backtests(forecasts)
    return {
        "mcs": mcs_table(forecasts),
        "wins": wins_table(forecasts),
        "var_tests": tests,
        "var_summary": var_summary(tests),
        "es_tests": es_tests,
        "es_summary": es_summary(es_tests, es_nulls),
        "traffic_light": traffic_lights(forecasts),
    }


def traffic_light_shares(lights: pd.DataFrame) -> pd.DataFrame:
    """Share of green / yellow / red windows per model, pooled over tickers."""
    if lights.empty:
        return lights
    totals = lights.groupby("model")[["green", "yellow", "red"]].sum()
    return totals.div(np.maximum(totals.sum(axis=1), 1), axis=0).reset_index()
