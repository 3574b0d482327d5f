"""What people act on, from a fitted model and the bars: VaR / ES per ticker and portfolio, quintile ranks.

One joint simulation serves both (`forecaster.joint`): each ticker's calibrated quantiles of its
h-day cumulative log return, from the latest window in `bars`, are the marginals; a copula fitted on
the trailing daily returns of the same bars, dated up to the as-of date, is the dependence. The
model, the CLI verbs `risk` / `rank`, the API routes and the batch job all call these two functions.

The as-of date is the latest date every requested ticker has a bar; a ticker whose last bar is older
is refused by name (its window would end on another day than the others').
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from forecaster.features.windows import latest_windows
from forecaster.joint import (
    DEFAULT_ALPHAS,
    Copula,
    m6_frame,
    portfolio_risk,
    rank_probabilities,
    simulate_returns,
    ticker_risk,
)

DEFAULT_PATHS = 10_000


@dataclass(frozen=True)
class JointDraws:
    """S simulated h-day cumulative log returns of N tickers, as of one date."""

    tickers: tuple[str, ...]
    as_of: pd.Timestamp
    horizon: int
    draws: np.ndarray  # [S, N]
    last_price: np.ndarray  # [N]


def joint_draws(
    model, bars: pd.DataFrame, *, horizon: int, tickers=None, n_paths: int = DEFAULT_PATHS, seed: int = 0
) -> JointDraws:
    """Simulate the tickers' h-day returns jointly from `model`'s quantiles and a copula on `bars`."""
    h_max = model.config.window.horizon
    if not 1 <= horizon <= h_max:
        raise ValueError(
            f"horizon {horizon} is outside 1..{h_max}: this model forecasts {h_max} days ahead; "
            "train one with a longer horizon (1-day quantiles are never compounded)"
        )
    bars = _select(bars, tickers)
    as_of = _common_as_of(bars)
    windows = latest_windows(bars, model.config.window)
    quantiles = model.predict_windows(windows).quantiles  # [N, H, Q], calibrated
    closes = bars.pivot(index="date", columns="ticker", values="adj_close")
    returns = np.log(closes).diff().iloc[1:][list(windows.ticker)]  # [T, N] in the windows' order
    copula = Copula().fit(returns, as_of=as_of)
    draws = simulate_returns(quantiles, model.levels, copula, horizon=horizon, n_paths=n_paths, seed=seed)
    return JointDraws(tuple(map(str, windows.ticker)), as_of, horizon, draws, windows.last_price)


def risk_tables(
    joint: JointDraws, *, weights=None, alphas=DEFAULT_ALPHAS
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """VaR and ES per ticker and for the portfolio, as positive fractions of value over the horizon.

    Returns (tickers, portfolio). tickers: one row per ticker and alpha with the ticker's own VaR
    and ES, its portfolio weight and its component ES (its share of the portfolio's ES; they sum
    to it). portfolio: one row per alpha. `weights`: ticker -> weight, or one per ticker in
    order; default equal.
    """
    var, es = ticker_risk(joint.draws, alphas)  # [N, A]
    w = None if weights is None else _weights(weights, joint.tickers)
    risk = portfolio_risk(joint.draws, w, alphas)
    tickers = pd.DataFrame(
        [
            {
                "ticker": t,
                "horizon": joint.horizon,
                "alpha": a,
                "var": var[i, j],
                "es": es[i, j],
                "weight": risk.weights[i],
                "component_es": risk.component_es[i, j],
            }
            for i, t in enumerate(joint.tickers)
            for j, a in enumerate(risk.alphas)
        ]
    )
    portfolio = pd.DataFrame({"horizon": joint.horizon, "alpha": risk.alphas, "var": risk.var, "es": risk.es})
    return tickers, portfolio


def rank_table(joint: JointDraws) -> pd.DataFrame:
    """Each ticker's probabilities of each quintile of the cross-section, in M6's `ID,Rank1..Rank5`."""
    if len(joint.tickers) < 5:
        raise ValueError(f"ranking into quintiles needs at least 5 tickers, got {len(joint.tickers)}")
    return m6_frame(list(joint.tickers), rank_probabilities(joint.draws))


def _select(bars: pd.DataFrame, tickers) -> pd.DataFrame:
    if tickers is None:
        return bars
    tickers = list(dict.fromkeys(tickers))
    missing = [t for t in tickers if t not in set(bars["ticker"])]
    if missing:
        raise ValueError(f"no bars for ticker(s) {', '.join(missing)}")
    return bars[bars["ticker"].isin(tickers)]


def _common_as_of(bars: pd.DataFrame) -> pd.Timestamp:
    last = bars.groupby("ticker")["date"].max()
    as_of = last.max()
    stale = last[last < as_of]
    if len(stale):
        named = ", ".join(f"{t} (last bar {d.date()})" for t, d in stale.items())
        raise ValueError(f"every ticker needs a bar on {as_of.date()}, the latest date; missing for {named}")
    return as_of


def _weights(weights, tickers: tuple[str, ...]) -> np.ndarray:
    """Portfolio weights in the tickers' order: a mapping ticker -> weight, or a sequence."""
    if isinstance(weights, dict):
        unknown = sorted(set(weights) - set(tickers))
        if unknown:
            raise ValueError(f"weights name ticker(s) not in the portfolio: {', '.join(unknown)}")
        return np.array([float(weights.get(t, 0.0)) for t in tickers])
    w = np.asarray(weights, dtype=np.float64)
    if w.shape != (len(tickers),):
        raise ValueError(f"weights must hold one value per ticker ({len(tickers)}), got {w.shape}")
    return w
