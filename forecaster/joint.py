"""A joint forecast across tickers: calibrated quantiles as marginals, a shrunk copula for dependence.

Cross-ticker products (portfolio VaR/ES, M6 quintile ranks) all come from one simulation of S paths
of the h-day cumulative log return of N tickers (DESIGN decision 17):

- Marginals. Each ticker's quantiles [Q] at `levels` (the model's calibrated output for horizon h)
  become a continuous quantile function: linear in normal scores Phi^-1(u) between the levels, as
  `calibration.aci.interpolate_quantiles` does, and beyond the outermost levels an exponential
  tail, q_1 + beta * log(u / tau_1), whose density meets the inner segment's at tau_1. The normal
  tail (`tail="normal"`, the straight line continued) is thinner: a 1% ES read from levels that
  stop at 2.5% would understate the loss of fat-tailed stocks. An exponential tail is heavier than
  the normal yet keeps every moment, where a Pareto index fitted to two quantiles is too noisy.
- Dependence. A Student-t copula (`df`, or Gaussian with `df=None`) whose correlation comes from a
  trailing window of daily log returns dated on or before the as-of date: each ticker's returns are
  divided by their EWMA volatility of the day before (so calm and wild months weigh alike), turned
  into normal scores of their ranks (the copula, free of the marginals and robust to crash days),
  and the correlation of the scores is shrunk (Ledoit-Wolf towards the identity, or a one-factor
  structure: market factor plus idiosyncratic noise), so hundreds of tickers stay positive definite.
  The correlation of daily returns stands in for that of h-day returns (lead-lag is ignored).
- Horizons. Draws for horizon h read the model's own h-day quantiles; a horizon beyond the model's H
  is refused: compounding 1-day quantiles would ignore volatility clustering and autocorrelation.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import special
from sklearn.covariance import ledoit_wolf
from sklearn.decomposition import FactorAnalysis

from forecaster.features.volatility import LAMBDA, WARMUP, ewma_variance

DEFAULT_ALPHAS = (0.01, 0.025, 0.05)  # tail probabilities of VaR / ES
N_QUINTILES = 5
_U_BOUNDS = (1e-12, 1 - 1e-12)  # keep log(u) and log(1 - u) finite; far beyond any path count
SHRINKAGE = ("ledoit_wolf", "factor")


# ---- marginals ----


def check_quantiles(quantiles, levels) -> tuple[np.ndarray, np.ndarray]:
    """Validate quantiles [N, Q] at `levels` [Q]; returns both as float arrays."""
    lv = np.asarray(levels, dtype=np.float64)
    q = np.asarray(quantiles, dtype=np.float64)
    if lv.ndim != 1 or len(lv) < 2 or not np.all((lv > 0) & (lv < 1)) or np.any(np.diff(lv) <= 0):
        raise ValueError(f"levels must be at least 2 increasing values in (0, 1), got {tuple(lv)}")
    if q.ndim != 2 or q.shape[1] != len(lv):
        raise ValueError(f"quantiles must be [N, Q={len(lv)}] to match the levels, got shape {q.shape}")
    if not np.all(np.isfinite(q)):
        raise ValueError(
            f"quantiles of ticker(s) {np.flatnonzero(~np.isfinite(q).all(1)).tolist()} are not finite"
        )
    crossing = np.flatnonzero((np.diff(q, axis=1) < 0).any(axis=1))
    if len(crossing):
        raise ValueError(
            f"quantiles decrease with the level for ticker(s) {crossing.tolist()}: sort them first"
        )
    return q, lv


def marginal_returns(u, quantiles, levels, *, tail: str = "exponential") -> np.ndarray:
    """Uniforms [S, N] -> returns [S, N] through each ticker's quantile function (quantiles [N, Q]).

    Between the levels: linear in normal scores (a level gives its own quantile exactly). Beyond
    them: `tail="exponential"` (density-matched, see the module docstring) or `"normal"`.
    """
    u = np.asarray(u, dtype=np.float64)
    if np.isnan(u).any() or u.min(initial=0.5) < 0 or u.max(initial=0.5) > 1:
        raise ValueError("uniforms must lie in [0, 1]")
    return marginal_from_scores(special.ndtri(np.clip(u, *_U_BOUNDS)), quantiles, levels, tail=tail)


def marginal_from_scores(z, quantiles, levels, *, tail: str = "exponential") -> np.ndarray:
    """`marginal_returns` of u = Phi(z), from normal scores z [S, N] (no round trip through u)."""
    q, lv = check_quantiles(quantiles, levels)
    z = np.asarray(z, dtype=np.float64)
    if z.ndim != 2 or z.shape[1] != q.shape[0]:
        raise ValueError(f"draws must be [S, N={q.shape[0]}], got shape {z.shape}")
    if tail not in ("exponential", "normal"):
        raise ValueError(f"tail must be 'exponential' or 'normal', got {tail!r}")
    x = special.ndtri(lv)  # [Q]
    i = np.clip(np.searchsorted(x, z) - 1, 0, len(x) - 2)  # [S, N] left knot; the end pairs extrapolate
    cols = np.arange(q.shape[0])[None, :]
    lo, hi = q[cols, i], q[cols, i + 1]  # [S, N]
    out = lo + (z - x[i]) / (x[i + 1] - x[i]) * (hi - lo)
    if tail == "exponential":
        slope = np.diff(q, axis=1) / np.diff(x)  # [N, Q-1] dq / dz of each segment
        # dq/du = slope / phi(z); the tail q_1 + beta * log(u / tau_1) has dq/du = beta / u there.
        beta_lo = lv[0] * slope[:, 0] / _phi(x[0])  # [N]
        beta_hi = (1 - lv[-1]) * slope[:, -1] / _phi(x[-1])  # [N]
        s, n = np.nonzero(z < x[0])
        out[s, n] = q[n, 0] + beta_lo[n] * np.log(special.ndtr(z[s, n]) / lv[0])
        s, n = np.nonzero(z > x[-1])  # 1 - u as Phi(-z): exact far into the upper tail
        out[s, n] = q[n, -1] - beta_hi[n] * np.log(special.ndtr(-z[s, n]) / (1 - lv[-1]))
    return out


def _phi(x: float) -> float:
    return float(np.exp(-0.5 * x * x) / np.sqrt(2 * np.pi))


# ---- dependence ----


def trailing_returns(returns, as_of=None, window: int = 504) -> tuple[np.ndarray, tuple[str, ...]]:
    """The last `window` rows of daily log returns dated on or before `as_of`: [T, N] and the tickers.

    `returns` is a wide frame (a sorted DatetimeIndex, one column per ticker; NaN where a ticker has
    no bar) or an array [T, N] of rows that are all in the past (then `as_of` must be None).
    """
    if window < 2:
        raise ValueError(f"window must be >= 2 rows, got {window}")
    if isinstance(returns, pd.DataFrame):
        if not returns.index.is_monotonic_increasing:
            raise ValueError("returns: the index must be sorted by date (oldest first)")
        rows = returns if as_of is None else returns.loc[returns.index <= pd.Timestamp(as_of)]
        tickers = tuple(str(c) for c in returns.columns)
        values = rows.to_numpy(dtype=np.float64)
    else:
        if as_of is not None:
            raise ValueError("as_of needs a frame with a date index; an array has no dates")
        values = np.asarray(returns, dtype=np.float64)
        if values.ndim != 2:
            raise ValueError(f"returns must be [T, N], got shape {values.shape}")
        tickers = tuple(str(j) for j in range(values.shape[1]))
    return values[-window:], tickers


def devolatilize(returns: np.ndarray, lam: float = LAMBDA) -> np.ndarray:
    """Daily returns [T, N] over the EWMA volatility of the day before (NaN stays NaN): [T, N].

    The recursion starts from each ticker's mean square over its first `WARMUP` rows, all of them
    dated on or before the as-of date like the rest.
    """
    r2 = np.nan_to_num(np.square(returns)).T  # [N, T]; a missing day adds no news
    start = np.maximum(r2[:, :WARMUP].mean(axis=1), 1e-12)  # [N]
    var = ewma_variance(r2, lam, start)  # [N, T]: var[:, t] uses days <= t
    before = np.concatenate([start[:, None], var[:, :-1]], axis=1)  # [N, T] forecast for day t
    return returns / np.sqrt(np.maximum(before, 1e-12)).T


def normal_scores(values: np.ndarray) -> np.ndarray:
    """Per column, Phi^-1(rank / (n + 1)) of the non-missing values; missing values score 0: [T, N]."""
    frame = pd.DataFrame(values)
    ranks = frame.rank(axis=0, method="average").to_numpy()  # [T, N], NaN kept
    counts = frame.notna().sum(axis=0).to_numpy()  # [N]
    return np.nan_to_num(special.ndtri(ranks / (counts + 1)))


def shrunk_correlation(scores: np.ndarray, shrinkage: str = "ledoit_wolf") -> np.ndarray:
    """A positive definite correlation [N, N] of scores [T, N]: Ledoit-Wolf or one factor.

    Ledoit-Wolf shrinks the sample covariance towards a multiple of the identity by the weight that
    minimises the expected error; "factor" fits loadings L and noise variances D of a one-factor
    model (cov = L L' + D, D > 0) by maximum likelihood.
    """
    if shrinkage == "ledoit_wolf":
        cov, _ = ledoit_wolf(scores)  # towards mu * I: positive definite whenever T < N too
    elif shrinkage == "factor":
        # maximum likelihood loadings and noise: an equal-weight market proxy would hold each
        # ticker's own noise and overstate correlations in a small universe
        cov = FactorAnalysis(n_components=1, random_state=0).fit(scores).get_covariance()
    else:
        raise ValueError(f"shrinkage must be one of {SHRINKAGE}, got {shrinkage!r}")
    d = np.sqrt(np.maximum(np.diag(cov), 1e-24))  # a ticker that never moved: uncorrelated, not NaN
    corr = cov / np.outer(d, d)
    np.fill_diagonal(corr, 1.0)
    return corr


@dataclass
class Copula:
    """Student-t (or Gaussian, `df=None`) copula with a shrunk correlation of past daily returns.

    `fit(returns, as_of)` reads only the last `window` rows dated on or before `as_of`;
    `sample(n_paths, seed)` draws uniforms [S, N] in the order of `tickers_`. A ticker needs
    `min_periods` returns in the window. Learned state: `correlation_` [N, N], `cholesky_`,
    `tickers_`, `n_obs_` (rows read) and `as_of_` (the last date read, None for an array).
    """

    df: float | None = 6.0  # t degrees of freedom (joint crashes: tail dependence); None: Gaussian
    window: int = 504  # trailing rows of daily returns (about 2 years)
    shrinkage: str = "ledoit_wolf"  # or "factor": market factor + idiosyncratic noise
    standardize: bool = True  # divide by the EWMA volatility of the day before
    min_periods: int = 60

    def fit(self, returns, as_of=None) -> Copula:
        if self.df is not None and not self.df > 0:
            raise ValueError(f"df must be positive (or None for a Gaussian copula), got {self.df}")
        values, tickers = trailing_returns(returns, as_of, self.window)  # [T, N]
        counts = np.isfinite(values).sum(axis=0)
        short = [t for t, c in zip(tickers, counts, strict=True) if c < self.min_periods]
        if short:
            raise ValueError(
                f"fewer than {self.min_periods} daily returns on or before {as_of} for: {', '.join(short[:10])}"
            )
        values = np.where(np.isfinite(values), values, np.nan)
        scores = normal_scores(devolatilize(values) if self.standardize else values)  # [T, N]
        self.correlation_ = shrunk_correlation(scores, self.shrinkage)
        self.cholesky_ = np.linalg.cholesky(self.correlation_)
        self.tickers_ = tickers
        self.n_obs_ = len(values)
        self.as_of_ = _last_date(returns, as_of)
        return self

    def sample(self, n_paths: int, seed: int | np.random.Generator = 0) -> np.ndarray:
        """Uniforms [S, N] with this copula's dependence (seeded, `np.random.default_rng(seed)`)."""
        return special.ndtr(self.sample_scores(n_paths, seed))

    def sample_scores(self, n_paths: int, seed: int | np.random.Generator = 0) -> np.ndarray:
        """Normal scores Phi^-1(u) [S, N] of `sample`'s uniforms (the same draws for the same seed)."""
        if n_paths < 1:
            raise ValueError(f"n_paths must be >= 1, got {n_paths}")
        if not hasattr(self, "cholesky_"):
            raise ValueError("the copula is not fitted: call Copula(...).fit(returns, as_of) first")
        rng = np.random.default_rng(seed)
        z = rng.standard_normal((n_paths, len(self.tickers_))) @ self.cholesky_.T  # [S, N]
        if self.df is None:
            return z
        mix = np.sqrt(rng.chisquare(self.df, size=(n_paths, 1)) / self.df)  # [S, 1] one shock per path
        t_grid, z_grid = _t_to_normal_grid(self.df)
        return np.interp(z / mix, t_grid, z_grid)  # Phi^-1(T_df(t)), 4x faster than stdtr and ndtri


def _t_to_normal_grid(df: float) -> tuple[np.ndarray, np.ndarray]:
    """Knots of t -> Phi^-1(T_df(t)) for |z| <= 8 (probability 1e-15 beyond); error below 1e-5 in z."""
    z = np.linspace(-8.0, 0.0, 2001)
    t = special.stdtrit(df, special.ndtr(z))  # lower half, where ndtr is exact; the map is odd
    return np.concatenate([t, -t[-2::-1]]), np.concatenate([z, -z[-2::-1]])


def _last_date(returns, as_of) -> pd.Timestamp | None:
    if not isinstance(returns, pd.DataFrame):
        return None
    dates = returns.index if as_of is None else returns.index[returns.index <= pd.Timestamp(as_of)]
    return pd.Timestamp(dates[-1])


def horizon_quantiles(quantiles, horizon: int | None = None) -> np.ndarray:
    """Quantiles [N, Q] for one horizon from [N, H, Q] (horizon 1..H), or [N, Q] as given."""
    q = np.asarray(quantiles, dtype=np.float64)
    if q.ndim == 2:
        return q
    if q.ndim != 3 or horizon is None:
        raise ValueError(f"quantiles must be [N, Q], or [N, H, Q] with a horizon; got shape {q.shape}")
    if not 1 <= horizon <= q.shape[1]:
        raise ValueError(
            f"horizon {horizon} is outside the model's 1..{q.shape[1]}: a longer horizon needs a model "
            "trained for it (1-day quantiles are never compounded)"
        )
    return q[:, horizon - 1, :]


def simulate_returns(
    quantiles,
    levels,
    copula: Copula,
    *,
    horizon: int | None = None,
    n_paths: int = 10_000,
    seed: int | np.random.Generator = 0,
    tail: str = "exponential",
) -> np.ndarray:
    """Joint draws [S, N] of the h-day cumulative log return of each of the copula's tickers.

    quantiles [N, Q] (one horizon) or [N, H, Q] with `horizon` h in 1..H, in the order of
    `copula.tickers_`; `levels` [Q] increasing.
    """
    q = horizon_quantiles(quantiles, horizon)
    if hasattr(copula, "tickers_") and q.shape[0] != len(copula.tickers_):
        raise ValueError(f"quantiles hold {q.shape[0]} tickers, the copula {len(copula.tickers_)}")
    return marginal_from_scores(copula.sample_scores(n_paths, seed), q, levels, tail=tail)


# ---- risk: losses as positive fractions of value, on simple returns exp(r) - 1 ----


@dataclass(frozen=True)
class PortfolioRisk:
    """VaR and ES of a portfolio and each ticker's component ES, per tail probability alpha."""

    alphas: tuple[float, ...]
    weights: np.ndarray  # [N] fractions of value
    var: np.ndarray  # [A] loss exceeded with probability alpha
    es: np.ndarray  # [A] mean loss over the worst alpha share of paths
    component_es: np.ndarray  # [N, A] E[-w_i R_i | portfolio loss >= VaR]; columns sum to `es`


def _tail_counts(n_paths: int, alphas) -> np.ndarray:
    """Paths in each alpha tail, ceil(alpha * S) (at least 1): [A]."""
    a = np.asarray(alphas, dtype=np.float64)
    if a.ndim != 1 or len(a) == 0 or not np.all((a > 0) & (a < 1)):
        raise ValueError(f"alphas must be tail probabilities in (0, 1), got {tuple(np.atleast_1d(a))}")
    return np.maximum(np.ceil(a * n_paths - 1e-9).astype(int), 1)


def ticker_risk(returns, alphas=DEFAULT_ALPHAS) -> tuple[np.ndarray, np.ndarray]:
    """Per ticker VaR and ES [N, A] of draws [S, N] of log returns: the k-th worst loss and the mean
    of the k worst, k = ceil(alpha * S)."""
    r = np.asarray(returns, dtype=np.float64)
    k = _tail_counts(r.shape[0], alphas)  # [A]
    losses = -np.expm1(r)  # [S, N]
    worst = -np.partition(-losses, k.max() - 1, axis=0)[: k.max()]  # [K, N] the K largest, unordered
    worst = -np.sort(-worst, axis=0)  # [K, N] largest first
    mean_worst = np.cumsum(worst, axis=0) / np.arange(1, len(worst) + 1)[:, None]  # [K, N]
    return worst[k - 1].T, mean_worst[k - 1].T


def portfolio_risk(returns, weights=None, alphas=DEFAULT_ALPHAS) -> PortfolioRisk:
    """VaR, ES and component ES of a portfolio with `weights` [N] (default equal) over draws [S, N]."""
    r = np.asarray(returns, dtype=np.float64)
    n = r.shape[1]
    w = np.full(n, 1.0 / n) if weights is None else np.asarray(weights, dtype=np.float64)
    if w.shape != (n,) or not np.all(np.isfinite(w)):
        raise ValueError(f"weights must be {n} finite numbers, one per ticker, got shape {w.shape}")
    k = _tail_counts(r.shape[0], alphas)
    pnl = np.expm1(r) * w  # [S, N] each ticker's share of the portfolio's simple return
    loss = -pnl.sum(axis=1)  # [S]
    order = np.argsort(-loss, kind="stable")[: k.max()]  # worst paths first
    var = loss[order[k - 1]]  # [A]
    component = np.stack([-pnl[order[:kk]].mean(axis=0) for kk in k], axis=1)  # [N, A]
    es = component.sum(axis=0)  # [A]: the mean portfolio loss over the same paths
    return PortfolioRisk(tuple(float(a) for a in alphas), w, var, es, component)


# ---- ranks: quintiles of the cross-section, as in the M6 competition ----


def centered(draws) -> np.ndarray:
    """Draws [S, N] with each ticker's median moved to 0: its spread, tails and co-movement, no drift."""
    d = np.asarray(draws, dtype=np.float64)
    return d - np.median(d, axis=0)


def rank_probabilities(returns) -> np.ndarray:
    """Each ticker's probability of each quintile of the cross-section, from draws [S, N]: [N, 5].

    In every path the tickers are ranked 1..N from the lowest return; rank r falls in quintile
    ceil(5 r / N) (Rank1 holds the lowest returns, as in M6). Rows sum to 1; column k sums to the
    number of ranks in quintile k (N / 5 when 5 divides N).
    """
    r = np.asarray(returns, dtype=np.float64)
    s, n = r.shape
    if n < N_QUINTILES:
        raise ValueError(f"ranking into quintiles needs at least {N_QUINTILES} tickers, got {n}")
    order = np.argsort(r, axis=1)  # [S, N] tickers from lowest to highest
    quintile_of_rank = (N_QUINTILES * np.arange(1, n + 1) + n - 1) // n - 1  # [N] ceil(5 r / N) - 1
    quintile = np.empty((s, n), dtype=np.intp)
    np.put_along_axis(quintile, order, np.broadcast_to(quintile_of_rank, (s, n)), axis=1)  # [S, N]
    flat = (np.arange(n)[None, :] * N_QUINTILES + quintile).ravel()
    return np.bincount(flat, minlength=n * N_QUINTILES).reshape(n, N_QUINTILES) / s


def m6_frame(tickers, probabilities, decisions=None) -> pd.DataFrame:
    """Rank probabilities [N, 5] in the M6 template's layout: ID, Rank1..Rank5 (and Decision if given).

    Write it with `frame.to_csv(path, index=False)`.
    """
    p = np.asarray(probabilities, dtype=np.float64)
    tickers = [str(t) for t in tickers]
    if p.shape != (len(tickers), N_QUINTILES):
        raise ValueError(f"probabilities must be [N={len(tickers)}, 5], got shape {p.shape}")
    bad = [t for t, row in zip(tickers, p, strict=True) if abs(row.sum() - 1) > 1e-6 or row.min() < 0]
    if bad:
        raise ValueError(
            f"rank probabilities must be >= 0 and sum to 1 per ticker; they do not for: {bad[:10]}"
        )
    frame = pd.DataFrame(p, columns=[f"Rank{k}" for k in range(1, N_QUINTILES + 1)])
    frame.insert(0, "ID", tickers)
    if decisions is not None:
        frame["Decision"] = np.asarray(decisions, dtype=np.float64)
    return frame
