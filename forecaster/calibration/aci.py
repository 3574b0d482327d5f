"""Adaptive conformal inference (Gibbs & Candes, 2021) per ticker, horizon and quantile level.

Calibration on a past block holds on average; under drift (a volatility break, a new regime)
a ticker's intervals can stay too narrow for months. ACI keeps, for every ticker, horizon and
nominal level tau, a working level tau_w (first tau). A forecast serves the quantile at tau_w;
once its outcome y is known, tau_w <- tau_w + gamma * (tau - 1{y <= q_served}). Missing above
pushes the level up, missing below pushes it down, so the share of outcomes under each served
quantile tracks tau in the long run whatever the drift.

The state is plain arrays (`ACIState.to_records` / `from_records`), so the backtest keeps it in
memory and the batch job and the API keep it beside the stored forecasts; only outcomes dated
on or before an origin ever reach the forecast made at it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import special

DEFAULT_GAMMA = 0.005  # Gibbs & Candes's choice for daily data
_LEVEL_BOUNDS = (1e-3, 1 - 1e-3)


def interpolate_quantiles(quantiles: np.ndarray, levels, targets: np.ndarray) -> np.ndarray:
    """Quantiles at other levels, linear in normal scores between and beyond the known ones.

    quantiles [..., Q] at increasing `levels`; targets broadcast against [..., Q']. Interpolating
    in Phi^-1(level) treats the tails like a normal's beyond the outermost levels, instead of
    clamping them (a working level of 0.99 must give a wider bound than 0.975).
    """
    # ndtri is Phi^-1 itself (what stats.norm.ppf computes), without its per-call overhead of ~80 us:
    # this runs on the API's request path.
    x = special.ndtri(np.asarray(levels, dtype=np.float64))  # [Q]
    t = special.ndtri(np.clip(targets, *_LEVEL_BOUNDS))  # [..., Q']
    i = np.clip(np.searchsorted(x, t) - 1, 0, len(x) - 2)  # left neighbour; the end pairs extrapolate
    lo = np.take_along_axis(quantiles, i, axis=-1) if quantiles.ndim == t.ndim else quantiles[..., i]
    hi = np.take_along_axis(quantiles, i + 1, axis=-1) if quantiles.ndim == t.ndim else quantiles[..., i + 1]
    weight = (t - x[i]) / (x[i + 1] - x[i])
    # This form gives a known level's quantile exactly (weight 0 or 1): at the nominal levels
    # ACI serves the model's own numbers, bit for bit.
    return (1 - weight) * lo + weight * hi


@dataclass
class ACIState:
    """Working levels [H, Q] per ticker; `adjust` serves quantiles, `update` learns from outcomes."""

    levels: tuple[float, ...]
    horizon: int
    gamma: float = DEFAULT_GAMMA
    working: dict[str, np.ndarray] = field(default_factory=dict)

    def levels_of(self, ticker: str) -> np.ndarray:
        if ticker not in self.working:
            self.working[ticker] = np.tile(np.asarray(self.levels, dtype=np.float64), (self.horizon, 1))
        return self.working[ticker]

    def adjust(self, tickers, quantiles: np.ndarray) -> np.ndarray:
        """Serve each ticker's quantiles at its working levels: [N, H, Q] -> [N, H, Q], non-crossing."""
        working = np.stack([self.levels_of(str(t)) for t in tickers]) if len(tickers) else np.zeros((0, 1, 1))
        served = interpolate_quantiles(quantiles, self.levels, working)
        return np.maximum.accumulate(served, axis=-1)

    def update(self, tickers, horizons, outcomes: np.ndarray, served: np.ndarray) -> None:
        """Learn from realised outcomes, in the order they became known.

        tickers [M], horizons [M] (1..H), outcomes [M] cumulative log returns, served [M, Q] the
        quantiles that were served for them.
        """
        nominal = np.asarray(self.levels)
        for ticker, h, y, q in zip(tickers, horizons, outcomes, served, strict=True):
            row = self.levels_of(str(ticker))[int(h) - 1]
            row += self.gamma * (nominal - (y <= q))
            np.clip(row, *_LEVEL_BOUNDS, out=row)

    def to_records(self) -> list[dict]:
        """One record per ticker, horizon and level: what a store keeps."""
        return [
            {"ticker": t, "horizon": h + 1, "level": float(level), "working_level": float(w[h, q])}
            for t, w in sorted(self.working.items())
            for h in range(self.horizon)
            for q, level in enumerate(self.levels)
        ]

    @classmethod
    def from_records(cls, records, levels, horizon: int, gamma: float = DEFAULT_GAMMA) -> ACIState:
        state = cls(tuple(levels), horizon, gamma)
        index = {round(float(level), 6): q for q, level in enumerate(levels)}
        for r in records:
            q = index.get(round(float(r["level"]), 6))
            if q is not None and 1 <= int(r["horizon"]) <= horizon:
                state.levels_of(str(r["ticker"]))[int(r["horizon"]) - 1, q] = float(r["working_level"])
        return state


def run_aci(
    tickers: np.ndarray,
    origins: np.ndarray,
    target_dates: np.ndarray,
    quantiles: np.ndarray,
    actual: np.ndarray,
    levels,
    gamma: float = DEFAULT_GAMMA,
) -> np.ndarray:
    """ACI over a history of forecasts, origin by origin: the quantiles that would have been served.

    tickers [N], origins [N], target_dates [N, H], quantiles [N, H, Q] and actual [N, H]
    (cumulative log returns). At each origin, every outcome whose target date is on or before it
    updates the state first; then that origin's forecasts are served. No later outcome is read.
    """
    n, horizon, _ = quantiles.shape
    state = ACIState(tuple(levels), horizon, gamma)
    served = np.empty_like(quantiles)
    order = np.argsort(origins, kind="stable")
    # Outcomes become known on their target dates: queue (date, row, h) in date order.
    known_on = target_dates.ravel()
    pending = np.argsort(known_on, kind="stable")
    next_outcome = 0
    starts = np.flatnonzero(np.r_[True, origins[order][1:] != origins[order][:-1]])
    for s, e in zip(starts, np.r_[starts[1:], n], strict=True):
        rows = order[s:e]
        today = origins[rows[0]]
        stop = np.searchsorted(known_on[pending], today, side="right")
        if stop > next_outcome:
            flat = pending[next_outcome:stop]
            r, h = np.divmod(flat, horizon)  # forecasts made before today: already served
            state.update(tickers[r], h + 1, actual[r, h], served[r, h])
            next_outcome = stop
        served[rows] = state.adjust(tickers[rows], quantiles[rows])
    return served
