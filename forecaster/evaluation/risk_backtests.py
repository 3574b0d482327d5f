"""VaR and ES backtests of quantile forecasts: Kupiec, Christoffersen, dynamic quantile, Basel, Z2.

Conventions. Outcomes `y` and forecasts are on the same return scale (the backtest's cumulative log
returns and its `q_<level>` columns). The VaR at level alpha is a *quantile of returns*, not a
positive loss: for the lower tail it is q_alpha and a violation (hit) is y_t < q_alpha,t; the upper
tail is handled by symmetry, with the quantile q_{1-alpha} and a violation y_t > q_{1-alpha},t. ES is
likewise the signed tail mean of returns, E[y | y < q_alpha] (negative for the lower tail).

The tests assume one series in time order (one model, ticker and horizon). Overlapping h-step
forecasts (h > 1 from daily origins) have autocorrelated hits by construction, so the independence
and DQ tests then reject whatever the model; backtest horizon 1 or non-overlapping origins.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple

import numpy as np
import pandas as pd
from scipy import stats
from scipy.special import xlogy

TAILS = ("lower", "upper")
Sampler = Callable[[np.random.Generator, int], np.ndarray]  # (rng, n_sims) -> outcomes [n_sims, T]


class BacktestResult(NamedTuple):
    statistic: float | np.ndarray
    p_value: float | np.ndarray


class TrafficLight(NamedTuple):
    windows: pd.DataFrame  # end (position or index label of the window's last day), exceptions, zone
    counts: dict[str, int]  # windows per zone: green, yellow, red


class ESBacktest(NamedTuple):
    z2: float
    p_value: float  # one-sided: the share of simulated Z2 at or below the observed one
    critical_value: float  # the 5% quantile of Z2 under the null


def _out(a):
    a = np.asarray(a, dtype=np.float64)
    return float(a) if a.ndim == 0 else a


def _check_tail(tail: str) -> None:
    if tail not in TAILS:
        raise ValueError(f"tail must be 'lower' or 'upper', got {tail!r}")


def _hits(hits) -> np.ndarray:
    h = np.asarray(hits)
    if h.dtype != bool and not np.isin(h, (0, 1)).all():
        raise ValueError("hits must be booleans or 0/1")
    if h.ndim == 0 or h.shape[-1] == 0:
        raise ValueError("hits: empty series")
    return h.astype(bool)


def violations(y, var, tail: str = "lower") -> np.ndarray:
    """Hits: y_t < q_t for the lower tail, y_t > q_t for the upper tail (NaN compares False)."""
    _check_tail(tail)
    y, var = np.asarray(y, dtype=np.float64), np.asarray(var, dtype=np.float64)
    return y < var if tail == "lower" else y > var


def _pof_lr(x, n, alpha: float):
    p = x / n
    null = xlogy(n - x, 1 - alpha) + xlogy(x, alpha)
    alt = xlogy(n - x, 1 - p) + xlogy(x, p)  # 0 log 0 = 0: no violations or all violations stay finite
    return np.maximum(-2 * (null - alt), 0.0)


def kupiec_pof(hits, alpha: float) -> BacktestResult:
    """Kupiec's (1995) proportion-of-failures test of unconditional coverage, LR ~ chi2(1).

    LR = -2 ln[(1-a)^(T-x) a^x / ((1-x/T)^(T-x) (x/T)^x)] for x hits in T days. With no hits it
    is -2 T ln(1-a), with all hits -2 T ln a. `hits` [..., T] (the last axis is time): arrays in,
    arrays out.
    """
    h = _hits(hits)
    lr = _pof_lr(h.sum(-1), h.shape[-1], alpha)
    return BacktestResult(_out(lr), _out(stats.chi2.sf(lr, 1)))


def christoffersen(hits, alpha: float) -> tuple[BacktestResult, BacktestResult]:
    """Christoffersen's (1998) independence and conditional coverage tests: (ind, cc).

    Independence: a first-order Markov chain of hits (transition counts n_ij from state i to j,
    pi_01 = n01/(n00+n01), pi_11 = n11/(n10+n11)) against an iid one (pi = (n01+n11)/(T-1));
    LR_ind ~ chi2(1). Conditional coverage: LR_cc = LR_pof + LR_ind ~ chi2(2), LR_pof on all T
    days as in Christoffersen (1998) and Jorion. Empty transition rows contribute nothing to
    either likelihood (0 log 0 = 0), so no hits, all hits, or a single day give LR_ind = 0.
    """
    h = _hits(hits)
    prev, cur = h[..., :-1], h[..., 1:]
    n00, n01 = (~prev & ~cur).sum(-1), (~prev & cur).sum(-1)
    n10, n11 = (prev & ~cur).sum(-1), (prev & cur).sum(-1)
    pi0 = n01 / np.maximum(n00 + n01, 1)
    pi1 = n11 / np.maximum(n10 + n11, 1)
    pi = (n01 + n11) / np.maximum(n00 + n01 + n10 + n11, 1)
    null = xlogy(n00 + n10, 1 - pi) + xlogy(n01 + n11, pi)
    alt = xlogy(n00, 1 - pi0) + xlogy(n01, pi0) + xlogy(n10, 1 - pi1) + xlogy(n11, pi1)
    lr_ind = np.maximum(-2 * (null - alt), 0.0)
    lr_cc = _pof_lr(h.sum(-1), h.shape[-1], alpha) + lr_ind
    return (
        BacktestResult(_out(lr_ind), _out(stats.chi2.sf(lr_ind, 1))),
        BacktestResult(_out(lr_cc), _out(stats.chi2.sf(lr_cc, 2))),
    )


def dynamic_quantile(hits, var, alpha: float, lags: int = 4) -> BacktestResult:
    """Engle and Manganelli's (2004) dynamic quantile test, DQ ~ chi2(K + 2) for K = `lags`.

    Hit_t = 1{violation} - alpha is regressed on a constant, Hit_{t-1..t-K} and the VaR forecast
    q_t over t = K+1..T; DQ = Hit' X (X'X)^-1 X' Hit / (alpha (1 - alpha)), the explained sum of
    squares. Where X is rank-deficient (a constant VaR, or hits that never change) the projection
    uses the pseudo-inverse and the degrees of freedom are rank(X), so the edge cases stay finite.
    """
    h = _hits(hits)
    var = np.asarray(var, dtype=np.float64)
    if h.ndim != 1 or var.shape != h.shape:
        raise ValueError(f"hits and var must be 1-D of the same length, got {h.shape} and {var.shape}")
    n = len(h)
    if n <= lags + 2:
        raise ValueError(f"dynamic_quantile needs more than lags + 2 = {lags + 2} days, got {n}")
    hit = h.astype(np.float64) - alpha
    lagged = [hit[lags - k : n - k] for k in range(1, lags + 1)]
    x = np.column_stack([np.ones(n - lags), *lagged, var[lags:]])  # [T-K, K+2]
    beta, _, rank, _ = np.linalg.lstsq(x, hit[lags:], rcond=None)
    fitted = x @ beta
    dq = float(fitted @ fitted / (alpha * (1 - alpha)))
    return BacktestResult(dq, float(stats.chi2.sf(dq, rank)))


def basel_zone_thresholds(window: int = 250, alpha: float = 0.01) -> tuple[int, int]:
    """(most exceptions still green, most still yellow) for `window` days of a VaR at level alpha.

    Basel Committee (1996), "Supervisory framework for the use of backtesting": an exception count
    k is green while the binomial cumulative probability P(X <= k) stays below 95%, yellow while it
    stays below 99.99%, red from there on. 250 days at 99%: green 0-4, yellow 5-9, red 10+.
    """
    cdf = stats.binom.cdf(np.arange(window + 1), window, alpha)
    return int((cdf < 0.95).sum() - 1), int((cdf < 0.9999).sum() - 1)


def traffic_light(hits, window: int = 250, alpha: float = 0.01) -> TrafficLight:
    """Basel zone of every rolling `window`-day window of hits, and the count of windows per zone.

    A series shorter than `window` has no windows (an empty frame, zero counts). `end` is the
    position of each window's last day, or its index label when `hits` is a pandas Series.
    """
    h = _hits(hits)
    if h.ndim != 1:
        raise ValueError(f"hits must be 1-D, got shape {h.shape}")
    green, yellow = basel_zone_thresholds(window, alpha)
    csum = np.concatenate([[0], np.cumsum(h)])
    exceptions = csum[window:] - csum[:-window] if len(h) >= window else np.zeros(0, dtype=int)
    zone = np.where(exceptions <= green, "green", np.where(exceptions <= yellow, "yellow", "red"))
    ends = np.arange(window - 1, len(h))
    if isinstance(hits, pd.Series):
        ends = hits.index[ends]
    windows = pd.DataFrame({"end": ends, "exceptions": exceptions.astype(int), "zone": zone})
    counts = {z: int((zone == z).sum()) for z in ("green", "yellow", "red")}
    return TrafficLight(windows, counts)


def _grid(quantiles, levels) -> tuple[np.ndarray, np.ndarray]:
    q, lv = np.asarray(quantiles, dtype=np.float64), np.asarray(levels, dtype=np.float64)
    q = q[None, :] if q.ndim == 1 else q
    if lv.ndim != 1 or len(lv) < 2 or q.shape[-1] != len(lv):
        raise ValueError(f"need 2+ levels matching the quantiles' last axis, got {lv} for {q.shape}")
    if np.any(np.diff(lv) <= 0) or lv[0] <= 0 or lv[-1] >= 1:
        raise ValueError(f"levels must increase strictly inside (0, 1), got {lv}")
    return q, lv


def quantile_function(quantiles, levels, u) -> np.ndarray:
    """The predictive quantile function at probabilities u: quantiles [T, Q], u [..., T] -> [..., T].

    Linear in the level between forecast levels; beyond the outermost levels an exponential tail
    through the two outermost quantiles, Q(u) = q_1 + s ln(u / l_1) with s = (q_2 - q_1) / ln(l_2 / l_1)
    (and its mirror image above), so the support is unbounded and the tail mean finite.
    """
    q, lv = _grid(quantiles, levels)
    u = np.asarray(u, dtype=np.float64)
    j = np.clip(np.searchsorted(lv, u, side="right") - 1, 0, len(lv) - 2)  # segment [lv[j], lv[j+1]]
    rows = np.arange(q.shape[0])
    lo, hi = q[rows, j], q[rows, j + 1]
    out = lo + (hi - lo) * (u - lv[j]) / (lv[j + 1] - lv[j])
    s_lo = (q[:, 1] - q[:, 0]) / np.log(lv[1] / lv[0])
    s_hi = (q[:, -1] - q[:, -2]) / np.log((1 - lv[-2]) / (1 - lv[-1]))
    with np.errstate(divide="ignore"):
        below = q[:, 0] + s_lo * np.log(u / lv[0])
        above = q[:, -1] - s_hi * np.log((1 - u) / (1 - lv[-1]))
    return np.where(u < lv[0], below, np.where(u > lv[-1], above, out))


def expected_shortfall(quantiles, levels, alpha: float, tail: str = "lower") -> np.ndarray:
    """ES as the tail mean of the interpolated quantile function: (1/alpha) int_0^alpha Q(u) du.

    Acerbi and Tasche (2002). `quantile_function` is integrated exactly: trapezoids between the
    forecast levels below alpha (Q is linear there) and, below the lowest level l_1, the
    exponential tail, whose mean over (0, a) is q_1 + s (ln(a / l_1) - 1). Signed, on the
    quantiles' scale; the upper tail, (1/alpha) int_{1-alpha}^1 Q(u) du, by symmetry.
    quantiles [T, Q] (or [Q]) -> [T].
    """
    _check_tail(tail)
    q, lv = _grid(quantiles, levels)
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must lie in (0, 1), got {alpha}")
    if tail == "upper":
        return -expected_shortfall(-q[:, ::-1], 1 - lv[::-1], alpha)
    s = (q[:, 1] - q[:, 0]) / np.log(lv[1] / lv[0])
    a = min(alpha, lv[0])
    area = a * (q[:, 0] + s * (np.log(a / lv[0]) - 1))  # int_0^a of the exponential tail
    grid = np.concatenate([lv[(lv > lv[0]) & (lv < alpha)], [alpha]]) if alpha > lv[0] else []
    if len(grid):
        points = np.concatenate([[lv[0]], grid])
        values = quantile_function(q, lv, np.broadcast_to(points[:, None], (len(points), q.shape[0])))
        area = area + np.trapezoid(values, points, axis=0)
    return area / alpha


def quantile_sampler(quantiles, levels) -> Sampler:
    """Outcomes drawn from the predictive distributions given as quantiles (`quantile_function`).

    Inverse-transform sampling: y*_t = Q_t(U), U ~ Uniform(0, 1), independent over t.
    """
    q, lv = _grid(quantiles, levels)

    def sample(rng: np.random.Generator, n_sims: int) -> np.ndarray:
        return quantile_function(q, lv, rng.uniform(size=(n_sims, q.shape[0])))

    return sample


def student_t_sampler(loc, scale, df: float) -> Sampler:
    """Outcomes loc_t + scale_t * e_t, e_t a Student t with `df` degrees of freedom and unit variance."""
    loc, scale = np.asarray(loc, dtype=np.float64), np.asarray(scale, dtype=np.float64)
    if df <= 2:
        raise ValueError(f"df must exceed 2 for a unit-variance Student t, got {df}")

    def sample(rng: np.random.Generator, n_sims: int) -> np.ndarray:
        e = rng.standard_t(df, size=(n_sims, *np.broadcast(loc, scale).shape)) * np.sqrt((df - 2) / df)
        return loc + scale * e

    return sample


def acerbi_szekely_z2(y, var, es, alpha: float, tail: str = "lower"):
    """Acerbi and Szekely's (2014) Z2 = 1 - (1 / (T alpha)) sum_t I_t y_t / es_t.

    With signed ES (es_t = E[y | violation], on the returns' scale), this is their
    Z2 = sum_t X_t I_t / (T alpha ES_t) + 1 with ES_t = -es_t > 0 the loss convention; the same
    formula serves the upper tail (I_t = y_t > q_t, es_t > 0). E[Z2] = 0 under the null and Z2 < 0
    when the tail is heavier than forecast. y [..., T] -> [...].
    """
    y = np.asarray(y, dtype=np.float64)
    hits = violations(y, var, tail)
    es = np.asarray(es, dtype=np.float64)
    n = y.shape[-1]
    return _out(1 - np.sum(np.where(hits, y / es, 0.0), axis=-1) / (n * alpha))


def es_backtest(
    y, var, es, alpha: float = 0.025, *, sampler: Sampler, tail: str = "lower", n_sims: int = 2000, seed=0
) -> ESBacktest:
    """Z2 with its null distribution simulated from the forecast distribution (`sampler`).

    Acerbi and Szekely (2014): draw outcomes from the predictive distributions (`quantile_sampler`
    on the forecast quantiles, or a parametric null such as `student_t_sampler`), recompute Z2 on
    each path with the same VaR and ES, and read the one-sided p-value (1 + #{Z2* <= Z2}) /
    (1 + n_sims). `var` and `es` must belong to the distribution the sampler draws from.
    """
    z2 = acerbi_szekely_z2(y, var, es, alpha, tail)
    null = acerbi_szekely_z2(sampler(np.random.default_rng(seed), n_sims), var, es, alpha, tail)
    p = (1 + np.sum(null <= z2)) / (1 + n_sims)
    return ESBacktest(float(z2), float(p), float(np.quantile(null, 0.05)))


def _series(data) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(y [T], quantiles [T, Q], levels [Q]) from a frame or a (y, quantiles, levels) tuple."""
    if isinstance(data, pd.DataFrame):
        columns = {float(c.removeprefix("q_")): c for c in data.columns if c.startswith("q_")}
        outcome = next((c for c in ("actual_log_return", "y") if c in data), None)
        if outcome is None or not columns:
            raise ValueError(f"frame needs `actual_log_return` (or `y`) and q_<level> columns: {list(data)}")
        frame = data.sort_values("origin", kind="stable") if "origin" in data else data
        levels = sorted(columns)
        quantiles = frame[[columns[v] for v in levels]].to_numpy(np.float64)
        return frame[outcome].to_numpy(np.float64), quantiles, np.array(levels)
    y, quantiles, levels = data
    return np.asarray(y, np.float64), np.asarray(quantiles, np.float64), np.asarray(levels, np.float64)


def _rows(y, quantiles, levels, alphas, tails, lags) -> list[dict]:
    rows = []
    for tail in tails:
        _check_tail(tail)
        for alpha in alphas:
            level = alpha if tail == "lower" else 1 - alpha
            if not levels[0] - 1e-9 <= level <= levels[-1] + 1e-9:
                continue  # the forecast does not reach this level; extrapolated VaR is not backtested
            var = quantile_function(quantiles, levels, np.full(len(y), np.clip(level, *levels[[0, -1]])))
            keep = np.isfinite(y) & np.isfinite(var)
            if keep.sum() <= lags + 2:
                continue
            hits = violations(y[keep], var[keep], tail)
            pof, (ind, cc) = kupiec_pof(hits, alpha), christoffersen(hits, alpha)
            dq = dynamic_quantile(hits, var[keep], alpha, lags)
            rows.append(
                {"alpha": alpha, "tail": tail, "level": level, "n": int(keep.sum())}
                | {"violations": int(hits.sum()), "rate": float(hits.mean())}
                | {"kupiec_lr": pof.statistic, "kupiec_p": pof.p_value}
                | {"ind_lr": ind.statistic, "ind_p": ind.p_value, "cc_lr": cc.statistic, "cc_p": cc.p_value}
                | {"dq_stat": dq.statistic, "dq_p": dq.p_value}
            )
    return rows


def risk_table(
    frame_or_arrays,
    alphas: Sequence[float] = (0.01, 0.025, 0.05),
    tails: Sequence[str] = TAILS,
    *,
    by: Sequence[str] = (),
    lags: int = 4,
) -> pd.DataFrame:
    """Kupiec, Christoffersen (ind, cc) and DQ tests per alpha and tail (and per `by` group).

    Input: a backtest frame (`actual_log_return` or `y`, `q_<level>` columns, sorted by `origin`
    when present) or a tuple (y [T], quantiles [T, Q], levels [Q]). The VaR at a level between the
    forecast levels is interpolated linearly; a level outside them is skipped, as are rows with NaN.
    Columns: [by...], alpha, tail, level, n, violations, rate, kupiec_lr, kupiec_p, ind_lr, ind_p,
    cc_lr, cc_p, dq_stat, dq_p.
    """
    if by:
        if not isinstance(frame_or_arrays, pd.DataFrame):
            raise ValueError("`by` needs a frame")
        rows = []
        for key, g in frame_or_arrays.groupby(list(by), sort=True, observed=True):
            key = dict(zip(by, key if isinstance(key, tuple) else (key,), strict=True))
            rows += [key | r for r in _rows(*_series(g), alphas, tails, lags)]
        return pd.DataFrame(rows)
    return pd.DataFrame(_rows(*_series(frame_or_arrays), alphas, tails, lags))
