"""Market context: what every ticker shares on a date, and where each ticker stands against it.

The gate's own descriptors are statistics of the window the experts read, so on their own the
gate knows nothing the experts don't. Market context adds what a single window cannot show:
the state of the whole market and of the cross-section on that date. Every value on day t uses
bars dated on or before t (rolling and exponentially weighted statistics only), so adding
later bars changes no past value.

Columns (`CONTEXT`, in this order):

- `mkt_return`: the market's daily log return;
- `mkt_vol`: log EWMA volatility of the market (RiskMetrics lambda 0.94);
- `mkt_rv_66`: log 66-day realised volatility of the market (HAR's quarter);
- `mkt_trend`: the market's 22-day return in units of its 22-day volatility;
- `dispersion`: log of the cross-sectional standard deviation of the day's returns, EWMA-smoothed;
- `avg_corr`: the mean over tickers of the 66-day R^2 of each ticker on the market;
- `breadth`: the share of tickers whose adjusted close is above its 50-day average;
- `beta`: the ticker's 66-day beta to the market;
- `idio_vol`: log of the ticker's 66-day residual volatility after the market.

The market is the equal-weight average return of the tickers in the bars (`market="universe"`)
or one ticker of the bars, an index from the same source (`market="^GSPC"`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from forecaster.config import CONTEXT
from forecaster.features.volatility import LAMBDA, VOL_FLOOR

UNIVERSE = "universe"
ROLLING = 66  # days of the beta, residual volatility and R^2 (a quarter, like rv_66)
BREADTH_DAYS = 50
TREND_DAYS = 22
_MIN_DAYS = 10  # a rolling statistic starts once this many days exist; before, a neutral value
_NEUTRAL = {"beta": 1.0, "avg_corr": 0.0, "breadth": 0.5, "mkt_trend": 0.0}


def market_returns(returns: pd.DataFrame, market: str) -> pd.Series:
    """The market's daily log returns on the dates of `returns` [D, N] (tickers as columns)."""
    if market == UNIVERSE:
        return returns.mean(axis=1, skipna=True).fillna(0.0)
    if market not in returns.columns:
        raise ValueError(
            f"market {market!r} is not in the bars (tickers: {', '.join(map(str, returns.columns[:8]))}"
            f"{', ...' if len(returns.columns) > 8 else ''}): load its bars with the universe, or use "
            f"market {UNIVERSE!r}"
        )
    return returns[market].fillna(0.0)  # a day the index did not print: no market move


def market_context(bars: pd.DataFrame, market: str) -> dict[str, np.ndarray]:
    """Context of every ticker's days: {ticker: [T-1, C]} float32, row j the day of bar j+1.

    Rows line up with `forecaster.features.daily.daily_features` of the same ticker's bars.
    """
    prices = bars.pivot(index="date", columns="ticker", values="adj_close").sort_index()
    returns = np.log(prices).diff()  # [D, N]; NaN on a ticker's first day and on days it has no bar
    m = market_returns(returns, market)
    beta, residual_var, r2 = _against_market(returns, m)  # [D, N] each
    shared = _shared_columns(prices, returns, m, r2)  # {name: [D]}
    idio = _log_vol(residual_var.clip(lower=0)).ffill().fillna(np.log(VOL_FLOOR))
    beta = beta.ffill().fillna(_NEUTRAL["beta"])
    out = {}
    for ticker, one in bars.groupby("ticker", sort=True):
        days = pd.DatetimeIndex(one["date"].iloc[1:])  # the days daily_features has rows for
        columns = {name: shared[name].reindex(days).to_numpy() for name in shared}
        columns["beta"] = beta[ticker].reindex(days).to_numpy()
        columns["idio_vol"] = idio[ticker].reindex(days).to_numpy()
        out[ticker] = np.column_stack([columns[name] for name in CONTEXT]).astype(np.float32)
    return out


def _against_market(returns: pd.DataFrame, m: pd.Series):
    """Every ticker's rolling beta, residual variance and R^2 on the market: [D, N] each."""
    rolling = returns.rolling(ROLLING, min_periods=_MIN_DAYS)
    var_m = m.rolling(ROLLING, min_periods=_MIN_DAYS).var()
    var_i = rolling.var()
    beta = rolling.cov(m).div(var_m.where(var_m > 0), axis=0)  # each column against the market
    explained = (beta**2).mul(var_m, axis=0)
    return beta, var_i - explained, (explained / var_i.where(var_i > 0)).clip(0, 1)


def _shared_columns(prices: pd.DataFrame, returns: pd.DataFrame, m: pd.Series, r2) -> dict[str, pd.Series]:
    """The columns every ticker shares on a date: [D] each."""
    ewm = dict(alpha=1 - LAMBDA, adjust=False)  # RiskMetrics, causal
    square = m**2
    trend_vol = np.sqrt(square.rolling(TREND_DAYS, min_periods=_MIN_DAYS).mean() * TREND_DAYS)
    spread = returns.std(axis=1, skipna=True).fillna(0.0)  # one ticker on a day: no dispersion
    above = (prices > prices.rolling(BREADTH_DAYS, min_periods=_MIN_DAYS).mean()).where(prices.notna())
    columns = {
        "mkt_return": m,
        "mkt_vol": _log_vol(square.ewm(**ewm).mean()),
        "mkt_rv_66": _log_vol(square.rolling(ROLLING, min_periods=1).mean()),
        "mkt_trend": m.rolling(TREND_DAYS, min_periods=_MIN_DAYS).sum() / trend_vol.where(trend_vol > 0),
        "dispersion": _log_vol((spread**2).ewm(**ewm).mean()),
        "avg_corr": r2.mean(axis=1, skipna=True),
        "breadth": above.mean(axis=1, skipna=True),
    }
    return {name: s.fillna(_NEUTRAL.get(name, 0.0)) for name, s in columns.items()}


def _log_vol(variance):
    """log of a volatility, floored so a flat stretch (or the market against itself) stays finite."""
    return np.log(np.sqrt(np.maximum(variance, VOL_FLOOR**2)))
