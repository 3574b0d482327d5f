"""What people act on, from a fitted model and the bars: VaR / ES per ticker and portfolio, quintile ranks.

One joint simulation serves both (`forecaster.joint`): each ticker's calibrated quantiles of its
h-day cumulative log return, from the latest window in `bars`, are the marginals; a copula fitted on
the trailing daily returns of the same bars, dated up to the as-of date, is the dependence. The
model (`FuzzyLSTMForecaster.risk` / `.rank`), the CLI verbs `risk` / `rank`, the API routes and the
batch job all call these functions.

The as-of date is the latest date every requested ticker has a bar; a ticker whose last bar is older
is refused by name (its window would end on another day than the others'). Results are seeded: the
same model, bars, horizon, path count and seed give the same numbers.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from forecaster.features.windows import WindowSet, latest_windows
from forecaster.joint import (
    DEFAULT_ALPHAS,
    Copula,
    centered,
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
    model,
    bars: pd.DataFrame,
    *,
    horizon: int | None = None,
    tickers=None,
    n_paths: int = DEFAULT_PATHS,
    seed: int = 0,
) -> JointDraws:
    """Simulate the tickers' h-day returns jointly from `model`'s quantiles and a copula on `bars`.

    `horizon` 1..the model's H (default H); `tickers` default every ticker in `bars`.
    """
    check_horizon(model, horizon)
    bars = _select(bars, tickers)
    common_as_of(bars.groupby("ticker")["date"].max())
    windows = latest_windows(bars, model.config.window)
    return simulate_joint(model, windows, daily_returns(bars), horizon=horizon, n_paths=n_paths, seed=seed)


def simulate_joint(
    model,
    windows: WindowSet,
    returns: pd.DataFrame,
    *,
    horizon: int | None = None,
    n_paths: int = DEFAULT_PATHS,
    seed: int = 0,
    state=None,
) -> JointDraws:
    """`joint_draws` from the latest window of each ticker (all ending on one day) and the wide
    frame of daily log returns (`daily_returns`) the copula is fitted on (`state`: see
    `simulate_horizons`)."""
    horizon = check_horizon(model, horizon)
    return simulate_horizons(
        model, windows, returns, horizons=(horizon,), n_paths=n_paths, seed=seed, state=state
    )[0]


def simulate_horizons(
    model,
    windows: WindowSet,
    returns: pd.DataFrame,
    *,
    horizons,
    n_paths: int = DEFAULT_PATHS,
    seed: int = 0,
    state=None,
) -> list[JointDraws]:
    """`simulate_joint` at each of `horizons`, with one forecast and one copula fit for all.

    Each horizon's draws are those `simulate_joint` gives at that horizon with the same seed.
    `state` (an `ACIState`): the marginals are the quantiles as served, at each ticker's ACI working
    levels, so VaR and ranks agree with the forecast the same job stores; None: nominal levels.
    """
    horizons = [check_horizon(model, h) for h in horizons]
    origins = np.unique(windows.origin)
    if len(origins) != 1:
        raise ValueError(f"the windows end on {len(origins)} different days; a joint forecast needs one")
    as_of = pd.Timestamp(origins[0])
    tickers = [str(t) for t in windows.ticker]
    quantiles = model.predict_windows(windows, intervals=False).quantiles  # [N, H, Q], calibrated
    if state is not None:
        quantiles = state.adjust(tickers, quantiles)
    copula = Copula().fit(returns[tickers], as_of=as_of)  # in the windows' order
    return [
        JointDraws(
            tuple(tickers),
            as_of,
            h,
            simulate_returns(quantiles, model.levels, copula, horizon=h, n_paths=n_paths, seed=seed),
            windows.last_price,
        )
        for h in horizons
    ]


def daily_returns(bars: pd.DataFrame) -> pd.DataFrame:
    """Daily log returns of the adjusted close, each ticker's own (a gap spans it): [dates, tickers].

    `bars` sorted by ticker and date, as validated bars are; NaN where a ticker has no return.
    Columns in sorted ticker order; dates on which no ticker has a return are left out.
    """
    codes, names = pd.factorize(bars["ticker"], sort=True)  # on the column: no Python strings made
    same = np.append(False, codes[1:] == codes[:-1])  # [T] a return needs the ticker's previous bar
    r = np.diff(np.log(bars["adj_close"].to_numpy(np.float64)), prepend=np.nan)[same]
    dates, row = np.unique(bars["date"].to_numpy()[same], return_inverse=True)
    wide = np.full((len(dates), len(names)), np.nan)  # [dates, tickers] by scatter, not DataFrame.pivot
    wide[row, codes[same]] = r
    return pd.DataFrame(
        wide, index=pd.DatetimeIndex(dates, name="date"), columns=pd.Index(names, name="ticker")
    )


def check_horizon(model, horizon: int | None) -> int:
    """The horizon asked for (default the model's H); a horizon beyond H is refused."""
    h_max = model.config.window.horizon
    if horizon is None:
        return h_max
    if not 1 <= horizon <= h_max:
        raise ValueError(
            f"horizon {horizon} is outside 1..{h_max}: this model forecasts {h_max} days ahead; "
            "train one with a longer horizon (1-day quantiles are never compounded)"
        )
    return horizon


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


def portfolio_losses(joint: JointDraws, weights=None) -> np.ndarray:
    """The portfolio's simulated loss over the horizon on every path, a fraction of value: [S]."""
    n = len(joint.tickers)
    w = np.full(n, 1.0 / n) if weights is None else _weights(weights, joint.tickers)
    return -(np.expm1(joint.draws) @ w)


def rank_table(joint: JointDraws, *, drift: bool = False) -> pd.DataFrame:
    """Each ticker's probabilities of each quintile of the cross-section, in M6's `ID,Rank1..Rank5`.

    By default each ticker's draws are centred on their median first (`joint.centered`): the
    model's median forecasts are no better than naive, and in the products backtest (20 US stocks,
    2012-2017, docs/honest-numbers.md) their drifts made the ranks worse than uniform (RPS 0.1608),
    while the centred ranks, which keep the spread, tails and co-movement, beat uniform in every
    year and the one-factor baseline overall (0.1575 against 0.1591). `drift=True` keeps them.
    """
    if len(joint.tickers) < 5:
        raise ValueError(f"ranking into quintiles needs at least 5 tickers, got {len(joint.tickers)}")
    draws = joint.draws if drift else centered(joint.draws)
    return m6_frame(list(joint.tickers), rank_probabilities(draws))


def risk(
    model,
    bars: pd.DataFrame,
    tickers=None,
    weights=None,
    horizon: int | None = None,
    alphas=DEFAULT_ALPHAS,
    n_paths: int = DEFAULT_PATHS,
    seed: int = 0,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """VaR and ES per ticker and of a portfolio over `horizon` trading days (default the model's H).

    Returns `risk_tables`' (tickers, portfolio): losses as positive fractions of value at each tail
    probability in `alphas`. `weights`: ticker -> weight (default equal).
    """
    joint = joint_draws(model, bars, horizon=horizon, tickers=tickers, n_paths=n_paths, seed=seed)
    return risk_tables(joint, weights=weights, alphas=alphas)


def rank(
    model,
    bars: pd.DataFrame,
    tickers=None,
    horizon: int | None = None,
    n_paths: int = DEFAULT_PATHS,
    seed: int = 0,
) -> pd.DataFrame:
    """Quintile rank probabilities of the tickers' returns over `horizon` days, in M6's layout
    (`ID,Rank1..Rank5`; Rank1 the lowest returns). Needs at least 5 tickers."""
    return rank_table(joint_draws(model, bars, horizon=horizon, tickers=tickers, n_paths=n_paths, seed=seed))


def common_as_of(last: pd.Series) -> pd.Timestamp:
    """The latest date of `last` (ticker -> date of its last bar); every ticker must have a bar on it."""
    as_of = last.max()
    stale = last[last < as_of]
    if len(stale):
        named = ", ".join(f"{t} (last bar {pd.Timestamp(d).date()})" for t, d in stale.items())
        raise ValueError(f"every ticker needs a bar on {as_of.date()}, the latest date; missing for {named}")
    return as_of


def _select(bars: pd.DataFrame, tickers) -> pd.DataFrame:
    if tickers is None:
        return bars
    tickers = list(dict.fromkeys(tickers))
    missing = [t for t in tickers if t not in set(bars["ticker"])]
    if missing:
        raise ValueError(f"no bars for ticker(s) {', '.join(missing)}")
    return bars[bars["ticker"].isin(tickers)]


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
