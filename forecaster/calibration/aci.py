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

Two rules, one state (`ACIState.method`, set from `TrainConfig.aci_method`):

- "aci": one step size gamma (`DEFAULT_GAMMA`), the rule above.
- "dtaci": dynamically-tuned ACI (Gibbs & Candes, 2022, "Conformal Inference for Online
  Prediction with Arbitrary Distribution Shifts", Algorithm 1). Each ticker, horizon and level
  keeps K candidate working levels, one per step size in `DTACI_GAMMAS`, each updated by the ACI
  rule, and a weight per candidate: exponential reweighting by the candidate's pinball loss on
  levels (learning rate eta), then mixing a share sigma back to uniform. The served working level
  is the candidates' weighted mean, in normal scores (deterministic: see `served_levels`). A
  small gamma wins on stationary data (little noise), a large one after a break (quick to move);
  the weights move from one to the other by themselves. At horizon h the steps are gamma / h
  (overlapping h-day outcomes repeat each miss h times).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import special

from forecaster.config import ACI_METHODS

DEFAULT_GAMMA = 0.005  # Gibbs & Candes's choice for daily data
# DtACI's candidate step sizes (per outcome at horizon 1; gamma / h at horizon h, see `update`):
# doublings from almost static (0.00025) to four times ACI's pace above (0.016). The paper's grid
# (0.001 .. 0.128) is for one miscoverage level of an interval; at a tail level its wide steps
# mostly add noise: 0.032 on top of this grid costs 0.1% pinball on the bundled sample's fuzzy
# backtest (0.2% on EWMA's) for under a point of coverage after a simulated volatility break.
DTACI_GAMMAS = (0.00025, 0.0005, 0.001, 0.002, 0.004, 0.008, 0.016)
# I, the local window (in outcomes) over which the paper's regret bound holds; it sets eta and
# sigma (`dtaci_rates`). 500 (~2 trading years) is the paper's default (sigma = 1/1000).
DTACI_INTERVAL = 500
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


def outcome_level(y: float, served: np.ndarray, served_levels: np.ndarray) -> float:
    """The level at which the served quantile curve reaches the outcome y: the paper's beta_t.

    `served` [Q] (non-decreasing) are the quantiles that were served at `served_levels` [Q];
    between and beyond them the curve is linear in normal scores, as `interpolate_quantiles`
    draws it, so y equal to a served quantile gives its level, and y <= served[q] exactly when
    the result is <= its level. Beyond the outermost quantile the curve goes on along the last
    stretch where it rises (no such stretch: 0 or 1).
    """
    x = np.maximum.accumulate(special.ndtri(np.clip(served_levels, *_LEVEL_BOUNDS)))  # [Q]
    if y > served[-1] or y < served[0]:
        end = -1 if y > served[-1] else 0
        rising = np.flatnonzero(served != served[end])  # the other end of the outermost stretch
        if not len(rising):
            return 1.0 if end == -1 else 0.0
        j = rising[-1] if end == -1 else rising[0]
        t = x[end] + (y - served[end]) / (served[end] - served[j]) * (x[end] - x[j])
        return float(special.ndtr(t))
    i = max(int(np.searchsorted(served, y)) - 1, 0)  # served[i] < y <= served[i + 1], or y = served[0]
    if y <= served[i]:
        return float(special.ndtr(x[i]))
    t = x[i] + (y - served[i]) / (served[i + 1] - served[i]) * (x[i + 1] - x[i])
    return float(special.ndtr(t))


def dtaci_rates(levels, k: int, interval: int = DTACI_INTERVAL) -> tuple[np.ndarray, float]:
    """eta per level [Q] and sigma of DtACI, as the paper sets them for a local window `interval`.

    sigma = 1 / (2I); eta = sqrt(3 / I) * sqrt((log(k I) + 2) / ((1 - a)^2 a^3 + a^2 (1 - a)^3))
    with a the target miscoverage. Here a is 1 - tau for the one-sided set under the tau
    quantile; the denominator is a^2 (1 - a)^2, symmetric in tau. (For a = 0.1, k = 6, I = 500,
    eta = 2.72: the authors' code default.) The pinball loss of a tail level is small (~ tau), so
    its eta is large: every level reweighs at the same pace.
    """
    tau = np.asarray(levels, dtype=np.float64)
    eta = np.sqrt(3 / interval) * np.sqrt(np.log(k * interval) + 2) / (tau * (1 - tau))
    return eta, 1 / (2 * interval)


def dtaci_step(
    candidates: np.ndarray,
    weights: np.ndarray,
    beta: float,
    nominal: np.ndarray,
    gammas: np.ndarray,
    eta: np.ndarray,
    sigma: float,
) -> np.ndarray:
    """One DtACI step for one outcome, in place: candidates and weights [Q, K] -> served levels [Q].

    `candidates` and `weights` are the current ones (at horizon 1 those in force when the
    outcome's forecast was served: the paper's alpha_t^i and w_t^i); `beta` is the outcome's
    level on the served curve (`outcome_level`). In the paper's terms, with miscoverage a = 1 - tau:
    loss_i = pinball_a(beta_t - alpha_t^i), w_i <- w_i exp(-eta loss_i), then
    w <- (1 - sigma) w / sum(w) + sigma / K, and alpha^i <- alpha^i + gamma_i (a - err_i). Written
    on levels tau^i = 1 - alpha^i, the loss is the pinball loss at tau of tau^i for "outcome"
    beta, and the step is ACI's: tau^i <- tau^i + gamma_i (tau - 1{beta <= tau^i}).
    """
    tau = nominal[:, None]  # [Q, 1]
    diff = beta - candidates  # [Q, K]
    loss = np.maximum(tau * diff, (tau - 1) * diff)
    # Subtracting each row's smallest loss leaves the normalised weights as they are and keeps
    # exp() from underflowing on a long run of large losses.
    scaled = weights * np.exp(-eta[:, None] * (loss - loss.min(axis=1, keepdims=True)))
    k = candidates.shape[1]
    weights[:] = (1 - sigma) * scaled / scaled.sum(axis=1, keepdims=True) + sigma / k
    # Unclipped, as in the paper: a candidate beyond (0, 1) asks for a bound beyond every
    # quantile; it is served at the outermost level (`interpolate_quantiles` clips) and comes back
    # by itself (beta is in [0, 1]), within gamma of the edge. Clipping it, as ACI does, would drop
    # the misses it owes and keep a tail level too low (or high) after a volatility break.
    candidates += gammas * (tau - (beta <= candidates))
    return served_levels(candidates, weights)


def served_levels(candidates: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """DtACI's served working levels [..., Q]: the candidates' [..., Q, K], averaged with the weights.

    The paper draws one candidate at random with these weights; the mean is deterministic, so a
    history gives the same served quantiles every time (the backtest, the batch job and the API
    agree to the bit). The mean is taken in normal scores, Phi(sum_i p_i Phi^-1(tau^i)), the
    scale on which levels are served (`interpolate_quantiles`): it is the weighted mean of the
    quantiles the candidates would serve. A plain mean of levels lets a few slow candidates
    left at 0.1 outweigh the rest at 0.005 after a volatility break (0.1 is 20 times 0.005, but
    only 1.3 normal scores away): in the 400 steps after a simulated doubling of volatility it
    covered about 2 points less of the 80% interval, for 0.01% less pinball on stationary data.
    Candidates that agree (a fresh state, or one read from ACI records) serve their common level
    exactly.
    """
    p = weights / weights.sum(axis=-1, keepdims=True)
    scores = special.ndtri(np.clip(candidates, *_LEVEL_BOUNDS))
    mean = special.ndtr((p * scores).sum(axis=-1))
    first = candidates[..., 0]
    return np.where((candidates == first[..., None]).all(axis=-1), first, mean)


@dataclass
class ACIState:
    """Working levels [H, Q] per ticker; `adjust` serves quantiles, `update` learns from outcomes.

    `working` holds the served working levels of every method; DtACI ("dtaci") keeps its
    candidates' levels and weights [H, Q, K] beside them (`candidates`, `weights`), and
    `working` is their weighted mean.
    """

    levels: tuple[float, ...]
    horizon: int
    gamma: float = DEFAULT_GAMMA
    working: dict[str, np.ndarray] = field(default_factory=dict)
    method: str = "aci"
    gammas: tuple[float, ...] = DTACI_GAMMAS
    interval: int = DTACI_INTERVAL
    candidates: dict[str, np.ndarray] = field(default_factory=dict)
    weights: dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.method not in ACI_METHODS:
            raise ValueError(f"ACI method must be one of {', '.join(ACI_METHODS)}, got {self.method!r}")
        self.gammas = tuple(float(g) for g in self.gammas)

    def levels_of(self, ticker: str) -> np.ndarray:
        """The ticker's served working levels [H, Q]; a ticker not seen yet starts at nominal.

        DtACI's candidates of a ticker without them (new, or given only its served levels, as
        the API does) start at its served levels, with equal weights.
        """
        if ticker not in self.working:
            self.working[ticker] = np.tile(np.asarray(self.levels, dtype=np.float64), (self.horizon, 1))
        if self.method == "dtaci" and ticker not in self.candidates:
            k = len(self.gammas)
            self.candidates[ticker] = np.repeat(self.working[ticker][:, :, None], k, axis=2)
            self.weights[ticker] = np.full((self.horizon, len(self.levels), k), 1 / k)
        return self.working[ticker]

    def adjust(self, tickers, quantiles: np.ndarray) -> np.ndarray:
        """Serve each ticker's quantiles at its working levels: [N, H, Q] -> [N, H, Q], non-crossing."""
        working = np.stack([self.levels_of(str(t)) for t in tickers]) if len(tickers) else np.zeros((0, 1, 1))
        served = interpolate_quantiles(quantiles, self.levels, working)
        return np.maximum.accumulate(served, axis=-1)

    def update(self, tickers, horizons, outcomes: np.ndarray, served: np.ndarray) -> None:
        """Learn from realised outcomes, in the order they became known.

        tickers [M], horizons [M] (1..H), outcomes [M] cumulative log returns, served [M, Q] the
        quantiles that were served for them. The one rule of each method, for the backtest
        (`run_aci`), the batch job and anything else that learns.
        """
        nominal = np.asarray(self.levels, dtype=np.float64)
        if self.method == "aci":
            for ticker, h, y, q in zip(tickers, horizons, outcomes, served, strict=True):
                row = self.levels_of(str(ticker))[int(h) - 1]
                row += self.gamma * (nominal - (y <= q))
                np.clip(row, *_LEVEL_BOUNDS, out=row)
            return
        gammas = np.asarray(self.gammas)
        eta, sigma = dtaci_rates(nominal, len(gammas), self.interval)
        for ticker, h, y, q in zip(tickers, horizons, outcomes, served, strict=True):
            t, h = str(ticker), int(h)
            row = self.levels_of(t)[h - 1]
            # The outcome's level on the curve as served: the served quantiles sit at the served
            # levels. Those are today's (the forecast was served up to h - 1 updates ago): exact
            # for h = 1, a small lag beyond, as in ACI with delayed feedback.
            beta = outcome_level(float(y), np.asarray(q, dtype=np.float64), row)
            # Steps of gamma / h: an h-day outcome shares h - 1 days with the next one and comes h
            # days late, so a miss repeats h times; gamma / h moves the level as far per piece
            # of news as at h = 1. (Full steps cost 1.5% pinball at h = 5 on the bundled sample's
            # fuzzy and EWMA backtests; gamma / h, 0.2-0.3%.)
            c, w = self.candidates[t][h - 1], self.weights[t][h - 1]
            row[:] = dtaci_step(c, w, beta, nominal, gammas / h, eta, sigma)

    def to_records(self) -> list[dict]:
        """One record per ticker, horizon and level: what a store keeps.

        `working_level` is the served level of either method; a DtACI record adds `candidates`:
        {"gammas": [K], "levels": [K], "weights": [K]}.
        """
        records = []
        for t, w in sorted(self.working.items()):
            for h in range(self.horizon):
                for q, level in enumerate(self.levels):
                    record = {
                        "ticker": t,
                        "horizon": h + 1,
                        "level": float(level),
                        "working_level": float(w[h, q]),
                    }
                    if self.method == "dtaci":
                        record["candidates"] = {
                            "gammas": list(self.gammas),
                            "levels": [float(v) for v in self.candidates[t][h, q]],
                            "weights": [float(v) for v in self.weights[t][h, q]],
                        }
                    records.append(record)
        return records

    @classmethod
    def from_records(
        cls, records, levels, horizon: int, gamma: float = DEFAULT_GAMMA, method: str = "aci", **dtaci
    ) -> ACIState:
        """The state of `records` (`to_records`, or store rows), for `method`.

        Any record serves its `working_level`. A DtACI state takes a record's candidates when
        they were learnt with its own step sizes; a record without them (an ACI one, or one of
        other step sizes) starts every candidate at its working level, with equal weights.
        """
        state = cls(tuple(levels), horizon, gamma, method=method, **dtaci)
        index = {round(float(level), 6): q for q, level in enumerate(levels)}
        for r in records:
            q = index.get(round(float(r["level"]), 6))
            if q is None or not 1 <= int(r["horizon"]) <= horizon:
                continue
            ticker, h, working = str(r["ticker"]), int(r["horizon"]) - 1, float(r["working_level"])
            state.levels_of(ticker)[h, q] = working
            if method == "dtaci":
                found = r.get("candidates") or {}
                if [float(g) for g in found.get("gammas", ())] == list(state.gammas):
                    state.candidates[ticker][h, q] = found["levels"]
                    state.weights[ticker][h, q] = found["weights"]
                else:
                    state.candidates[ticker][h, q] = working
        return state


def run_aci(
    tickers: np.ndarray,
    origins: np.ndarray,
    target_dates: np.ndarray,
    quantiles: np.ndarray,
    actual: np.ndarray,
    levels,
    gamma: float = DEFAULT_GAMMA,
    method: str = "aci",
) -> np.ndarray:
    """ACI (or DtACI, `method`) over a history of forecasts, origin by origin: the quantiles served.

    tickers [N], origins [N], target_dates [N, H], quantiles [N, H, Q] and actual [N, H]
    (cumulative log returns). At each origin, every outcome whose target date is on or before it
    updates the state first; then that origin's forecasts are served. No later outcome is read.
    """
    n, horizon, _ = quantiles.shape
    state = ACIState(tuple(levels), horizon, gamma, method=method)
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
