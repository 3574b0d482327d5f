"""The joint products walked forward: M6 quintile ranks (RPS) and equal-weight portfolio VaR.

Folds refit on the first origin of each calendar year, on every bar dated up to it (an expanding
window, `forecaster.walkforward`'s layout with yearly refits). Each fold's model forecasts every
origin of its year in one batched predict; each origin's joint simulation (`forecaster.joint`) reads
those quantiles and a copula fitted on the daily returns dated up to the origin, so nothing after
the as-of date t enters a forecast made at t.

- Ranks: non-overlapping periods of H trading days (H the model's horizon) start every H-th origin
  from `start`; at each start the model's H-day draws give the quintile probabilities, scored with
  M6's RPS against the realised H-day returns, beside uniform probabilities (0.16) and the
  one-factor volatility baseline (`ranking.factor_rank_probabilities`) on the same data.
- VaR: the equal-weight portfolio (weights fixed at t, simple returns) at every origin, VaR from
  the 1-day draws against the next day's return, and from the H-day draws at the period starts.
  A hit is a realised loss above the VaR; Kupiec and Christoffersen's conditional coverage test them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from forecaster.evaluation.comparison import diebold_mariano_hac
from forecaster.evaluation.ranking import factor_rank_probabilities, rps
from forecaster.evaluation.risk_backtests import christoffersen, kupiec_pof
from forecaster.joint import (
    N_QUINTILES,
    Copula,
    centered,
    portfolio_risk,
    rank_probabilities,
    simulate_returns,
)
from forecaster.products import daily_returns
from forecaster.walkforward import Fold, WalkForward, walk_forward_folds

ALPHAS = (0.01, 0.05)
# `model`: the ranks of the model's draws as simulated; `model_centered`: with each ticker's median
# moved to 0 (`joint.centered`), what `products.rank_table` serves. The model's point forecasts are
# level with naive, so their per-ticker drifts add noise to the ranks; centred, the ranks keep what
# the model knows of spread, skew, tails and co-movement (what beats uniform in M6).
SOURCES = ("model", "model_centered", "factor", "uniform")
RANK_COLUMNS = tuple(f"Rank{k}" for k in range(1, N_QUINTILES + 1))


@dataclass(frozen=True)
class ProductsBacktest:
    """What the walk-forward forecast and what happened, one row per forecast."""

    periods: pd.DataFrame  # per ranking period: as_of, end, fold, year, rps_<source>, the H-day portfolio VaR
    days: pd.DataFrame  # per origin: as_of, fold, year, portfolio_return (next day), var_<alpha>, hit_<alpha>
    ranks: pd.DataFrame  # per period and ticker: as_of, ticker, realised, model / factor Rank1..5
    horizon: int


def yearly_folds(bars: pd.DataFrame, window, *, start=None, end=None) -> WalkForward:
    """The walk-forward's layout over origins in [start, end], one fold per calendar year."""
    plan = walk_forward_folds(bars, window, start=start, end=end, refit_every=None)
    years = plan.origins.astype("datetime64[Y]")
    refits = plan.origins[np.flatnonzero(np.append(True, years[1:] != years[:-1]))]
    stops = [*refits[1:], plan.origins[-1] + 1]
    folds = tuple(Fold(i, r, s) for i, (r, s) in enumerate(zip(refits, stops, strict=True)))
    return dataclasses.replace(plan, folds=folds)


def period_starts(origins: np.ndarray, horizon: int) -> np.ndarray:
    """Every `horizon`-th origin: starts of non-overlapping periods of `horizon` trading days."""
    return np.asarray(origins)[::horizon]


def backtest_products(
    bars: pd.DataFrame,
    config,
    *,
    start=None,
    end=None,
    n_paths: int = 2000,
    seed: int = 0,
    alphas=ALPHAS,
    fit: Callable | None = None,
    progress: Callable[[str], None] | None = None,
) -> ProductsBacktest:
    """Walk the model of `config` forward over [start, end] (see the module docstring).

    `fit(config, train_bars)` returns a fitted model (default: `FuzzyLSTMForecaster(config).fit`,
    quietly); `progress` receives one line per fold.
    """
    plan = yearly_folds(bars, config.window, start=start, end=end)
    config = config.with_(window={"test_fraction": 0.0})  # the refit day's bars are all training data
    fit = fit or _fit_forecaster
    returns = daily_returns(bars)  # the copula and the factor baseline read only rows dated <= t
    starts = period_starts(plan.origins, config.window.horizon)
    days, periods, ranks = [], [], []
    for fold in plan.folds:
        model = fit(config, plan.train_bars(fold))
        d, p, r = fold_forecasts(
            model, plan, fold, returns, starts, n_paths=n_paths, seed=seed, alphas=alphas
        )
        days += d
        periods += p
        ranks += r
        if progress is not None:
            progress(
                f"fold {fold.index + 1}/{len(plan.folds)}: refit on {fold.refit}, {len(d)} days, {len(p)} periods"
            )
    return ProductsBacktest(
        pd.DataFrame(periods), pd.DataFrame(days), pd.concat(ranks, ignore_index=True), config.window.horizon
    )


def _fit_forecaster(config, bars: pd.DataFrame):
    from forecaster.model import FuzzyLSTMForecaster  # the heavy model only when no `fit` is given

    return FuzzyLSTMForecaster(config).fit(bars, progress=False)


def fold_forecasts(
    model, plan: WalkForward, fold: Fold, returns: pd.DataFrame, starts, *, n_paths, seed, alphas
):
    """The fold's day rows, period rows and rank frames, from one batched predict of its windows."""
    test = plan.test_windows(fold)
    quantiles = model.predict_windows(test, intervals=False).quantiles  # [M, H, Q] calibrated
    horizon = quantiles.shape[1]
    days, periods, ranks = [], [], []
    for origin in np.unique(test.origin):
        rows = np.flatnonzero(test.origin == origin)
        tickers = [str(t) for t in test.ticker[rows]]
        realised = test.y[rows].astype(np.float64)  # [N, H] daily log returns after t
        copula = Copula().fit(returns[tickers], as_of=pd.Timestamp(origin))

        def draws(h: int, q=quantiles[rows], copula=copula) -> np.ndarray:
            return simulate_returns(q, model.levels, copula, horizon=h, n_paths=n_paths, seed=seed)  # [S, N]

        days.append(_var_row(origin, fold, draws(1), realised[:, 0], alphas))
        if np.isin(origin, starts):
            joint, total = draws(horizon), realised.sum(axis=1)  # H-day log returns
            period, frame = _period(
                origin, tickers, joint, total, returns, horizon, n_paths=n_paths, seed=seed
            )
            end = pd.Timestamp(test.target_dates[rows[0], -1])
            periods.append(_var_row(origin, fold, joint, total, alphas) | period | {"end": end})
            ranks.append(frame)
    return days, periods, ranks


def _var_row(origin, fold: Fold, draws: np.ndarray, realised: np.ndarray, alphas) -> dict:
    """The equal-weight portfolio's VaR from draws [S, N] of log returns, and its realised return."""
    risk = portfolio_risk(draws, None, alphas)
    ret = float(np.mean(np.expm1(realised)))  # weights fixed at t, simple returns
    as_of = pd.Timestamp(origin)
    row = {"as_of": as_of, "fold": fold.index, "year": as_of.year, "portfolio_return": ret}
    for a, var in zip(risk.alphas, risk.var, strict=True):
        row[f"var_{a:g}"] = float(var)
        row[f"hit_{a:g}"] = bool(-ret > var)  # the loss, a positive fraction, beyond the VaR
    return row


def _period(
    origin, tickers, draws, realised, returns, horizon, *, n_paths, seed
) -> tuple[dict, pd.DataFrame]:
    """One ranking period: the RPS of each source, and its model and factor probabilities per ticker."""
    as_of = pd.Timestamp(origin)
    probabilities = {
        "model": rank_probabilities(draws),
        "model_centered": rank_probabilities(centered(draws)),
        "factor": factor_rank_probabilities(
            returns[tickers], horizon, as_of=as_of, n_paths=n_paths, seed=seed
        ),
        "uniform": np.full((len(tickers), N_QUINTILES), 1.0 / N_QUINTILES),
    }
    row = {f"rps_{s}": rps(p, realised) for s, p in probabilities.items()}
    frame = pd.DataFrame({"as_of": as_of, "ticker": tickers, "realised": realised})
    for source in ("model", "model_centered", "factor"):
        frame[[f"{source}_{c}" for c in RANK_COLUMNS]] = probabilities[source]
    return row, frame


# ---- summaries ----


def rps_by_year(periods: pd.DataFrame) -> pd.DataFrame:
    """Mean RPS of each source per calendar year of the period start and over all periods, with the
    standard error over periods (sd / sqrt(n)): one row per year and "all"."""
    groups = [(str(year), part) for year, part in periods.groupby("year")] + [("all", periods)]
    rows = []
    for label, part in groups:
        row = {"year": label, "periods": len(part)}
        for source in SOURCES:
            score = part[f"rps_{source}"]
            row[source] = float(score.mean())
            row[f"{source}_se"] = float(score.std(ddof=1) / np.sqrt(len(score))) if len(score) > 1 else np.nan
        rows.append(row)
    return pd.DataFrame(rows)


def paired_rps(periods: pd.DataFrame, reference: str = "factor", model: str = "model") -> dict:
    """`model`'s RPS minus `reference`'s, period by period: mean, SE, and the HAC Diebold-Mariano p.

    The periods do not overlap, so the differentials are one-step-ahead (DM horizon 1); the HAC
    variance still allows for autocorrelation between consecutive periods.
    """
    d = (periods[f"rps_{model}"] - periods[f"rps_{reference}"]).to_numpy()
    test = diebold_mariano_hac(d, horizon=1)
    return {
        "model": model,
        "reference": reference,
        "periods": len(d),
        "mean_diff": float(d.mean()),
        "se": float(d.std(ddof=1) / np.sqrt(len(d))),
        "dm_stat": test.statistic,
        "dm_p": test.p_value,
        "model_better_share": float(np.mean(d < 0)),
    }


def var_table(frame: pd.DataFrame, alphas=ALPHAS, *, label: str = "") -> pd.DataFrame:
    """Exceedances of the portfolio VaR at each alpha, with Kupiec's and Christoffersen's cc p-values."""
    rows = []
    for a in alphas:
        hits = frame[f"hit_{a:g}"].to_numpy(bool)
        _, cc = christoffersen(hits, a)
        rows.append(
            {
                "horizon": label,
                "alpha": a,
                "n": len(hits),
                "exceedances": int(hits.sum()),
                "rate": float(hits.mean()),
                "kupiec_p": float(kupiec_pof(hits, a).p_value),
                "cc_p": float(cc.p_value),
            }
        )
    return pd.DataFrame(rows)
