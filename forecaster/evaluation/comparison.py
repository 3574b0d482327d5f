"""Forecast comparisons robust to autocorrelated losses: HAC Diebold-Mariano, bootstrap, MCS, wins.

DESIGN decision 16: a claim that one model beats another rests on a HAC long-run variance or a
stationary bootstrap, and on the Model Confidence Set. Loss differentials d_t = L(model)_t -
L(reference)_t: a negative mean favours the model.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pandas as pd
from arch.bootstrap import MCS, StationaryBootstrap, optimal_block_length
from arch.covariance.kernel import Bartlett
from scipy import stats


class DMResult(NamedTuple):
    statistic: float  # HLN-corrected; negative: the first forecast has the smaller loss
    p_value: float  # two-sided, Student t with n - 1 degrees of freedom
    bandwidth: int  # Bartlett bandwidth used (lags 1..bandwidth get weight 1 - j / (bandwidth + 1))
    mean: float  # mean loss differential


def _differential(loss_diff) -> np.ndarray:
    d = np.asarray(loss_diff, dtype=np.float64)
    if d.ndim != 1:
        raise ValueError(f"loss_diff must be 1-D, got shape {d.shape}")
    if not np.isfinite(d).all():
        raise ValueError(f"loss_diff has {int((~np.isfinite(d)).sum())} non-finite values; drop them first")
    return d


def newey_west_bandwidth(loss_diff) -> int:
    """Newey and West's (1994) automatic Bartlett bandwidth, rounded up (`arch.covariance.kernel`)."""
    return int(Bartlett(_differential(loss_diff), force_int=True).bandwidth)


def long_run_variance(loss_diff, bandwidth: int) -> float:
    """Bartlett-kernel (Newey-West 1987) long-run variance: gamma_0 + 2 sum_j (1 - j/(b+1)) gamma_j."""
    return float(np.squeeze(Bartlett(_differential(loss_diff), bandwidth=bandwidth).cov.long_run))


def diebold_mariano_hac(loss_diff, horizon: int = 1, *, bandwidth: int | None = None) -> DMResult:
    """Diebold-Mariano (1995) test of equal accuracy with a HAC long-run variance.

    DM = mean(d) / sqrt(LRV / n), LRV the Bartlett-kernel long-run variance with bandwidth
    max(horizon, Newey-West automatic bandwidth) unless given: the lag-(h-1) truncation of the
    original test assumes the differential is MA(h-1), which autocorrelated losses (volatility
    clustering) break, and then it over-rejects. Harvey, Leybourne and Newbold's (1997) correction
    scales DM by sqrt((n + 1 - 2h + h(h-1)/n) / n) and compares it with Student t(n - 1). NaN when
    the differential is constant.
    """
    d = _differential(loss_diff)
    n = len(d)
    if n < 3:
        raise ValueError(f"diebold_mariano_hac needs at least 3 differentials, got {n}")
    if np.ptp(d) == 0:
        return DMResult(float("nan"), float("nan"), 0, float(d.mean()))
    if bandwidth is None:
        bandwidth = max(int(horizon), newey_west_bandwidth(d))
    bandwidth = min(int(bandwidth), n - 1)
    lrv = long_run_variance(d, bandwidth)
    statistic = d.mean() / np.sqrt(lrv / n)
    statistic *= np.sqrt((n + 1 - 2 * horizon + horizon * (horizon - 1) / n) / n)
    p = 2 * stats.t.sf(abs(statistic), df=n - 1)
    return DMResult(float(statistic), float(p), bandwidth, float(d.mean()))


def bootstrap_pvalue(loss_diff, *, reps: int = 999, block_size: float | None = None, seed=0) -> float:
    """Two-sided stationary-bootstrap p-value of a zero mean loss differential.

    Politis and Romano (1994) via `arch.bootstrap.StationaryBootstrap`, the expected block length
    from Politis and White (2004, corrected 2009; `optimal_block_length`, at least 1). The
    differential is centred to impose the null; p = (1 + #{|mean(d*)| >= |mean(d)|}) / (1 + reps).
    """
    d = _differential(loss_diff)
    if block_size is None:
        block_size = max(1.0, float(optimal_block_length(d)["stationary"].iloc[0]))
    bs = StationaryBootstrap(block_size, d - d.mean(), seed=seed)
    means = bs.apply(np.mean, reps).ravel()
    return float((1 + np.sum(np.abs(means) >= abs(d.mean()))) / (1 + reps))


def model_confidence_set(
    losses, size: float = 0.10, *, reps: int = 1000, block_size: int | None = None, seed=0
) -> pd.DataFrame:
    """Hansen, Lunde and Nason's (2011) Model Confidence Set over a [T, M] loss matrix.

    `arch.bootstrap.MCS` with the T_max statistic (method "max": its elimination handles exact ties, where the range statistic of arch 8 fails) and a stationary bootstrap. The
    block length defaults to the mean `optimal_block_length` of each model's loss differential
    from the cross-model mean loss (at least 1). Returns one row per model (columns' order):
    mean_loss, pvalue (the MCS p-value), included (pvalue > size).
    """
    frame = pd.DataFrame(losses)
    if frame.shape[1] < 2:
        raise ValueError(f"the MCS needs 2+ models (columns), got {frame.shape[1]}")
    if frame.isna().any().any():
        bad = list(frame.columns[frame.isna().any()])
        raise ValueError(f"losses have NaN for models {bad}; align the rows first")
    frame.columns = [str(c) for c in frame.columns]
    # Two models with identical losses (drift's quantiles can equal naive's) are one model to the
    # MCS, whose elimination breaks on exact ties: test one of each, give its twins its p-value.
    twin_of = {c: next(d for d in frame.columns if frame[d].equals(frame[c])) for c in frame.columns}
    unique = frame[list(dict.fromkeys(twin_of.values()))]
    if unique.shape[1] < 2:
        pvalues = pd.Series(1.0, index=unique.columns)
    else:
        pvalues = _mcs_pvalues(unique, size, reps, block_size, seed)
    out = pd.DataFrame({"mean_loss": frame.mean(), "pvalue": [pvalues[twin_of[c]] for c in frame.columns]})
    out["included"] = out["pvalue"] > size
    out.index.name = "model"
    return out


def _mcs_pvalues(frame: pd.DataFrame, size: float, reps: int, block_size, seed) -> pd.Series:
    if block_size is None:
        relative = frame.sub(frame.mean(axis=1), axis=0)
        block_size = int(np.ceil(optimal_block_length(relative)["stationary"].mean()))
    mcs = MCS(frame, size=size, reps=reps, block_size=max(1, block_size), method="max", seed=seed)
    mcs.compute()
    return mcs.pvalues["Pvalue"].reindex(frame.columns)


def win_counts(losses: pd.DataFrame) -> pd.DataFrame:
    """How many tickers each model has the lowest mean loss in, from a long frame (ticker, model, loss).

    Ties count as a win for every tied model; a model with no win gets 0. Columns: model, wins,
    tickers (how many tickers the model has losses for), sorted by wins, then model.
    """
    missing = {"ticker", "model", "loss"} - set(losses.columns)
    if missing:
        raise ValueError(f"losses frame lacks columns {sorted(missing)}")
    means = losses.groupby(["ticker", "model"], observed=True)["loss"].mean().unstack("model")
    best = means.eq(means.min(axis=1), axis=0) & means.notna()
    out = pd.DataFrame({"wins": best.sum().astype(int), "tickers": means.notna().sum().astype(int)})
    out = out.rename_axis("model").reset_index()
    return out.sort_values(["wins", "model"], ascending=[False, True], ignore_index=True)
