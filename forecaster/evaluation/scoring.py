"""Scores of backtest forecasts (long frames from `backtest.walk_forward`) per group, and DM tests.

Probabilistic scores are on the cumulative log-return scale (scale-free): the pinball loss, the
quantile CRPS and the weighted interval score of the quantile columns `q_<level>`, and the Winkler
(interval) score and coverage of the `lower_XX` / `upper_XX` intervals; the proper scores come
from `scoringrules`. Coverage is also reported conditionally (`conditional_coverage`): per volatility tercile,
per dominant fuzzy regime and per year.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd
import scoringrules as sr

from forecaster.evaluation.comparison import bootstrap_pvalue, diebold_mariano_hac, newey_west_bandwidth
from forecaster.metrics import (
    coverage,
    direction_hit_rate,
    mase,
    pinball_losses,
    quantile_hit_rates,
    theil_u,
)


def score(forecasts: pd.DataFrame, by: Sequence[str] = ("model",)) -> pd.DataFrame:
    """Metrics of backtest forecasts per group: price and return scale, MASE, Theil U, intervals.

    Price scale: mae, rmse, mape (%), mase, theil_u (RMSE over the naive forecast's RMSE on the
    same rows). Return scale (cumulative log return from the origin, comparable across tickers):
    return_mae, return_rmse, return_theil_u. direction: share of right direction calls (NaN for
    a forecast that never calls one). coverage_XX / width_XX (mean width over the last price).
    Probabilistic: pinball (mean over rows and the model's quantile levels), crps and wis
    (`quantile_scores`), winkler_XX (the interval score of the XX% interval).
    """
    rows = []
    for key, group in forecasts.groupby(list(by), sort=True, observed=True):
        key = key if isinstance(key, tuple) else (key,)
        rows.append({**dict(zip(by, key, strict=True)), **_score_group(group)})
    return pd.DataFrame(rows)


def _score_group(g: pd.DataFrame) -> dict[str, float]:
    return {**_point_scores(g), **_probabilistic_scores(g)}


def _point_scores(g: pd.DataFrame) -> dict[str, float]:
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
        out[f"width_{pct}"] = float(((upper - lower) / last).mean()) if has else np.nan
    return out


def _probabilistic_scores(g: pd.DataFrame) -> dict[str, float]:
    """pinball, crps, wis, coverage_XX and winkler_XX of one group (NaN where the model gives none)."""
    actual, last = g["actual"].to_numpy(np.float64), g["last_price"].to_numpy(np.float64)
    y = np.log(actual / last)
    out = {"pinball": float(row_pinball(g).mean()), **quantile_scores(g)}
    for column in [c for c in g.columns if c.startswith("lower_")]:
        pct = column.removeprefix("lower_")
        lower, upper = g[column].to_numpy(np.float64), g[f"upper_{pct}"].to_numpy(np.float64)
        if np.isnan(lower).all():
            out[f"coverage_{pct}"] = out[f"winkler_{pct}"] = np.nan
            continue
        out[f"coverage_{pct}"] = coverage(actual, lower, upper)
        alpha = 1 - int(pct) / 100
        winkler = sr.interval_score(y, np.log(lower / last), np.log(upper / last), alpha, backend="numpy")
        out[f"winkler_{pct}"] = float(np.mean(winkler))
    return out


def quantile_scores(frame: pd.DataFrame) -> dict[str, float]:
    """Mean quantile CRPS and weighted interval score of the rows' `q_<level>` columns (NaN: none).

    crps: `scoringrules.crps_quantile`, 2 / Q times the summed pinball loss over the levels (Berrisch
    and Ziel 2023; the CRPS up to the grid, whose tails weigh as much as its centre). wis: the
    weighted interval score (Bracher et al. 2021, weights alpha / 2) of the median and the central
    intervals (tau, 1 - tau) of every level tau < 0.5 whose mirror level is there too; it equals the
    crps for a symmetric set of levels. Rows without every quantile (a point model's) drop out.
    """
    columns = quantile_columns(frame)
    q = frame[list(columns.values())].to_numpy(np.float64)
    keep = ~np.isnan(q).any(axis=1) if columns else np.zeros(len(frame), bool)
    if not keep.any():
        return {"crps": np.nan, "wis": np.nan}
    levels, q = np.array(list(columns)), q[keep]
    y = np.log(frame["actual"].to_numpy(np.float64) / frame["last_price"].to_numpy(np.float64))[keep]
    out = {"crps": float(np.mean(sr.crps_quantile(y, q, levels, backend="numpy")))}
    lower = [j for j, tau in enumerate(levels) if tau < 0.5 and np.isclose(levels, 1 - tau).any()]
    mid = np.flatnonzero(np.isclose(levels, 0.5))
    if not lower or not len(mid):
        return out | {"wis": np.nan}
    upper = [int(np.flatnonzero(np.isclose(levels, 1 - levels[j]))[0]) for j in lower]
    alpha = 2 * levels[lower]
    # WIS = (|y - m| / 2 + sum_k alpha_k / 2 * IS_k) / (K + 1/2). Not sr.weighted_interval_score:
    # its numpy backend (scoringrules 0.10) adds w_median * median where |y - median| belongs.
    interval = sr.interval_score(y, q[:, lower], q[:, upper], alpha, backend="numpy")  # squeezed
    interval = np.reshape(interval, (len(y), len(alpha)))  # [N, K], also for K = 1 or N = 1
    wis = (np.abs(y - q[:, mid[0]]) / 2 + (interval * alpha / 2).sum(axis=-1)) / (len(alpha) + 0.5)
    return out | {"wis": float(np.mean(wis))}


def quantile_columns(frame: pd.DataFrame) -> dict[float, str]:
    """{level: column} of the `q_<level>` columns, by level."""
    found = {float(c.removeprefix("q_")): c for c in frame.columns if c.startswith("q_")}
    return dict(sorted(found.items()))


def row_pinball(frame: pd.DataFrame) -> pd.Series:
    """Pinball loss of every row, averaged over the quantile levels that row has (NaN: none).

    All competitors of a backtest forecast the same levels by default, so their means compare.
    """
    columns = quantile_columns(frame)
    if not columns:
        return pd.Series(np.nan, index=frame.index)
    y = np.log(frame["actual"].to_numpy(np.float64) / frame["last_price"].to_numpy(np.float64))
    losses = pinball_losses(y, frame[list(columns.values())].to_numpy(np.float64), list(columns))
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN rows: a model without quantiles
        return pd.Series(np.nanmean(losses, axis=1), index=frame.index)


TERCILES = ["low", "mid", "high"]


def volatility_terciles(forecasts: pd.DataFrame) -> pd.Series:
    """Each row's volatility tercile ("low", "mid", "high") of its origin's trailing realized volatility.

    Terciles are cut per ticker over the backtest's origins (ranks, so ties split evenly): every
    stock contributes to every tercile, and the high tercile is each stock's own turbulent third
    rather than the most volatile stocks. An evaluation grouping: it uses the whole backtest period.
    """
    origins = forecasts[["ticker", "origin", "realized_vol"]].drop_duplicates(["ticker", "origin"])
    ranks = origins.groupby("ticker", observed=True)["realized_vol"].rank(method="first", pct=True)
    origins = origins.assign(vol_tercile=pd.cut(ranks, [0, 1 / 3, 2 / 3, 1], labels=TERCILES))
    keyed = forecasts[["ticker", "origin"]].merge(
        origins[["ticker", "origin", "vol_tercile"]], on=["ticker", "origin"], how="left"
    )
    labels = pd.Categorical(keyed["vol_tercile"], categories=TERCILES, ordered=True)
    return pd.Series(labels, index=forecasts.index, name="vol_tercile")


def conditional_coverage(
    forecasts: pd.DataFrame, conditions: Sequence[str] = ("vol_tercile", "regime", "year")
) -> pd.DataFrame:
    """Coverage, Winkler and pinball per model within each group of each condition (long table).

    Columns: model, condition, group, n, pinball, coverage_XX, winkler_XX. `vol_tercile` is
    `volatility_terciles`; `regime` (the dominant fuzzy regime, 0 = calmest) is skipped when the
    backtest has none. Rows pool every horizon.
    """
    frame = forecasts
    if "vol_tercile" in conditions and "realized_vol" in frame:
        frame = frame.assign(vol_tercile=volatility_terciles(frame))
    rows = []
    for condition in [c for c in conditions if c in frame and frame[c].notna().any()]:
        for (model, group), g in frame.groupby(["model", condition], sort=True, observed=True):
            rows.append(
                {"model": model, "condition": condition, "group": str(group), "n": len(g)}
                | _probabilistic_scores(g)
            )
    return pd.DataFrame(rows)


def reliability(forecasts: pd.DataFrame) -> pd.DataFrame:
    """Share of outcomes at or below each quantile, per model: model, level, observed, n."""
    columns = quantile_columns(forecasts)
    rows = []
    if not columns:  # point forecasts only
        return pd.DataFrame(columns=["model", "level", "observed", "n"])
    for model, g in forecasts.groupby("model", sort=True, observed=True):
        q = g[list(columns.values())].to_numpy(np.float64)
        keep = ~np.isnan(q).any(axis=1)
        if not keep.any():
            continue
        y = np.log(g["actual"].to_numpy(np.float64) / g["last_price"].to_numpy(np.float64))[keep]
        for level, observed in zip(columns, quantile_hit_rates(y, q[keep]), strict=True):
            rows.append({"model": model, "level": level, "observed": float(observed), "n": int(keep.sum())})
    return pd.DataFrame(rows)


def dm_tests(
    forecasts: pd.DataFrame,
    references: Sequence[str] = ("naive", "single_lstm"),
    loss: str = "squared",
) -> pd.DataFrame:
    """Diebold-Mariano tests of every model against each reference, per horizon and over all.

    Loss: "squared", the squared error of the cumulative log return (scale-free), or "pinball",
    `row_pinball` (models without quantiles drop out). The loss differential is averaged over
    tickers at each origin, giving one time series per test; "all" averages over horizons too.
    Its variance is HAC (Bartlett) with a bandwidth of at least `MIN_DM_LAGS` trading days, H and
    the automatic Newey-West one (`comparison.diebold_mariano_hac`): losses follow persistent
    regimes, and a lag-(H-1) window overstated significance (p 0.008 at 4 lags, 0.068 at 22).
    `bootstrap_p` is a stationary-bootstrap p-value of the same mean, for the "all" rows.
    A negative statistic favours the model.
    """
    if loss == "squared":
        values = (np.log(forecasts["forecast"]) - np.log(forecasts["actual"])) ** 2
    elif loss == "pinball":
        values = row_pinball(forecasts)
    else:
        raise ValueError(f"loss must be 'squared' or 'pinball', got {loss!r}")
    frame = forecasts.assign(loss=values, model=forecasts["model"].astype(str))
    wide = frame.set_index(["ticker", "origin", "horizon", "model"])["loss"].unstack("model")
    max_h = int(frame["horizon"].max())
    models = [str(m) for m in pd.unique(forecasts["model"])]  # in the order they were run
    models = [m for m in models if wide[m].notna().any()]
    rows = []
    for ref in [r for r in references if r in models]:
        for model in [m for m in models if m != ref]:
            diff = (wide[model] - wide[ref]).dropna()
            by_h = diff.groupby(level=["origin", "horizon"]).mean()
            series = {h: by_h.xs(h, level="horizon").sort_index() for h in range(1, max_h + 1)}
            series["all"] = by_h.groupby(level="origin").mean().sort_index()
            for h, d in series.items():
                horizon = max_h if h == "all" else h
                test = diebold_mariano_hac(
                    d.to_numpy(), horizon, bandwidth=_dm_bandwidth(d.to_numpy(), horizon)
                )
                boot = bootstrap_pvalue(d.to_numpy(), seed=0) if h == "all" and test.mean != 0 else np.nan
                rows.append(
                    {
                        "model": model,
                        "reference": ref,
                        "loss": loss,
                        "horizon": str(h),
                        "n": len(d),
                        "mean_loss_diff": float(d.mean()),
                        "dm_stat": test.statistic,
                        "p_value": test.p_value,
                        "lags": test.bandwidth,
                        "bootstrap_p": boot,
                    }
                )
    return pd.DataFrame(rows)


MIN_DM_LAGS = 22  # a trading month: DESIGN decision 16


def _dm_bandwidth(d: np.ndarray, horizon: int) -> int:
    """max(22, H, Newey-West automatic), capped by the series (the test needs lags < n)."""
    if len(d) < 3 or np.ptp(d) == 0:
        return horizon
    return min(max(MIN_DM_LAGS, horizon, newey_west_bandwidth(d)), len(d) - 2)
