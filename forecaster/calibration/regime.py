"""Calibration per regime: conformalized quantile regression within each window's dominant regime.

One pooled CQR shift per horizon and level (`cqr.QuantileCalibrator`) covers its share on average
over the regimes: where the experts' quantiles have not caught a regime's scale, the calm regime's
intervals come out too wide and the turbulent one's too narrow. "cqr_regime" conditions the shift
on the dominant regime, the argmax of the window's memberships (Mondrian conformal prediction with
the regimes as the categories): each regime's calibration windows give their own shift by cqr's
finite-sample rank rule, so each regime covers its share, not only all of them together.

A regime with few calibration windows would get a noisy shift (below 1 / tau windows, level tau's
shift is the sample's extreme), so each regime's shift is shrunk toward the pooled one by its count:

    shift_k = (n_k * raw_k + n0 * pooled) / (n_k + n0)

with n0 = `prior_windows`: the pooled shift weighs as much as n0 windows of the regime. Its default,
100, is the count at which the default outermost levels (0.01, 0.99) get an order statistic inside
the sample instead of its extreme; there a regime's own shift and the pooled one weigh the same, and
the hundreds to thousands of windows a universe's calibration block gives a regime keep mostly their
own. A regime with no calibration window gets the pooled shift.

Why counts of dominant regimes rather than a membership-weighted conformal quantile: fuzzy c-means
memberships are seldom near one-hot, so weighting every window by u_k would mix the regimes'
residuals by the fuzzifier, not by the evidence, and would lose the rank rule; here how far a shift
moves from the pooled one depends on how many windows a regime has, and transform applies exactly
what fit measured.
"""

from __future__ import annotations

import numpy as np

from forecaster.calibration.cqr import conformal_shifts
from forecaster.config import CALIBRATORS


@CALIBRATORS.register("cqr_regime")
class RegimeQuantileCalibrator:
    """CQR per dominant regime, shrunk toward pooled CQR where a regime has few calibration windows.

    Parameters
    ----------
    levels : the quantile levels
    prior_windows : n0, the weight of the pooled shift in windows (see the module's docstring)

    Attributes
    ----------
    shifts_ : ndarray [H, Q], the pooled shift ("cqr"'s)
    regime_shifts_ : ndarray [c, H, Q], each regime's shift after shrinkage, added to its windows' quantiles
    counts_ : ndarray [c], calibration windows whose dominant regime is each cluster
    """

    def __init__(self, levels: tuple[float, ...], prior_windows: float = 100.0):
        self.levels = tuple(levels)
        self.prior_windows = float(prior_windows)

    def fit(self, actual: np.ndarray, quantiles: np.ndarray, memberships=None) -> RegimeQuantileCalibrator:
        """actual [N, H] and forecast quantiles [N, H, Q] in volatility units, memberships [N, c]."""
        n = len(actual)
        if n < 10:
            raise ValueError(f"quantile calibration needs at least 10 calibration windows, got {n}")
        regime = self._dominant(memberships, n)  # [N]
        residual = actual[:, :, None] - quantiles  # [N, H, Q]
        self.shifts_ = conformal_shifts(residual, self.levels)
        self.counts_ = np.bincount(regime, minlength=memberships.shape[1])
        self.regime_shifts_ = np.repeat(self.shifts_[None], len(self.counts_), axis=0)  # [c, H, Q]
        for k in np.flatnonzero(self.counts_):
            n_k, raw = self.counts_[k], conformal_shifts(residual[regime == k], self.levels)
            self.regime_shifts_[k] = (n_k * raw + self.prior_windows * self.shifts_) / (
                n_k + self.prior_windows
            )
        return self

    def transform(self, quantiles: np.ndarray, memberships=None) -> np.ndarray:
        """Calibrated quantiles [N, H, Q], each window shifted by its dominant regime's shift, non-crossing."""
        regime = self._dominant(memberships, len(quantiles), len(self.counts_))
        return np.maximum.accumulate(quantiles + self.regime_shifts_[regime], axis=-1)

    @staticmethod
    def _dominant(memberships, n: int, n_clusters: int | None = None) -> np.ndarray:
        """The dominant regime of each window: memberships [n, c] -> [n], checked against what was fitted."""
        if memberships is None:
            raise ValueError("calibrator 'cqr_regime' needs the windows' memberships [N, c]; got none")
        memberships = np.asarray(memberships)
        c = memberships.shape[1] if memberships.ndim == 2 else None
        if memberships.ndim != 2 or len(memberships) != n or c < 1 or n_clusters not in (None, c):
            expected = f"[{n}, {n_clusters if n_clusters is not None else 'c'}]"
            raise ValueError(f"memberships must be {expected}, got shape {list(memberships.shape)}")
        return memberships.argmax(axis=1)

    def to_arrays(self) -> dict[str, np.ndarray]:
        return {
            "levels": np.asarray(self.levels),
            "prior_windows": np.asarray(self.prior_windows),
            "shifts": self.shifts_,
            "regime_shifts": self.regime_shifts_,
            "counts": self.counts_,
        }

    @classmethod
    def from_arrays(cls, arrays) -> RegimeQuantileCalibrator:
        cal = cls(tuple(float(q) for q in arrays["levels"]), float(arrays["prior_windows"]))
        cal.shifts_ = np.asarray(arrays["shifts"])
        cal.regime_shifts_ = np.asarray(arrays["regime_shifts"])
        cal.counts_ = np.asarray(arrays["counts"])
        return cal
