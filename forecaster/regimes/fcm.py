"""Fuzzy c-means as an estimator, on top of scikit-fuzzy.

`fit` standardizes the inputs (statistics of the fitting data only), runs `skfuzzy.cmeans`
and freezes the centers; `predict` gives memberships of new rows with the `cmeans_predict`
rule, u_ik = 1 / sum_j (d_ik / d_ij) ** (2 / (m - 1)), which with frozen centers is closed form.
Registered as the "fcm" `Clusterer` (`forecaster.regimes.clusterer`), the default of the forecaster.
"""

from __future__ import annotations

import logging
import warnings
from typing import Literal

import numpy as np
import skfuzzy
from skfuzzy.cluster.normalize_columns import normalize_columns, normalize_power_columns

from forecaster.config import CLUSTERERS, ClusterConfig

log = logging.getLogger(__name__)

AUTO_CANDIDATES = range(2, 7)


def xie_beni(x: np.ndarray, centers: np.ndarray, memberships: np.ndarray, m: float) -> float:
    """Xie-Beni index: compactness over separation; lower is better. x [N, D], u [N, c]."""
    dist2 = ((x[:, None, :] - centers[None, :, :]) ** 2).sum(axis=-1)  # [N, c]
    compactness = (memberships**m * dist2).sum()
    center_dist2 = ((centers[:, None, :] - centers[None, :, :]) ** 2).sum(axis=-1)
    separation = center_dist2[~np.eye(len(centers), dtype=bool)].min()
    return float(compactness / (len(x) * max(separation, 1e-12)))


def membership_diagnostics(memberships: np.ndarray) -> dict[str, float]:
    """How far memberships are from uniform: FPC, mean largest membership, normalized entropy.

    Uniform memberships give FPC = 1/c, largest = 1/c and entropy = 1; hard clusters give 1, 1, 0.
    """
    u = np.clip(memberships, 1e-12, 1.0)
    c = u.shape[1]
    return {
        "fpc": float((u**2).sum(axis=1).mean()),
        "mean_max_membership": float(u.max(axis=1).mean()),
        "membership_entropy": float((-(u * np.log(u)).sum(axis=1) / np.log(c)).mean()),
        "uniform_fpc": 1.0 / c,
    }


def _memberships(xs: np.ndarray, centers: np.ndarray, m: float) -> np.ndarray:
    """The `cmeans_predict` rule in the standardized space: rows [N, D], centers [c, D] -> u [N, c]."""
    dist = np.sqrt(((xs[None, :, :] - centers[:, None, :]) ** 2).sum(axis=-1))  # [c, N]
    dist = np.fmax(dist, np.finfo(np.float64).eps)
    return normalize_power_columns(dist, -2.0 / (m - 1)).T


@CLUSTERERS.register("fcm")
class FuzzyCMeans:
    """Fuzzy c-means clustering with frozen centers for out-of-sample memberships.

    Parameters
    ----------
    n_clusters : int or "auto"
        Number of clusters c; "auto" tries 2..6 and keeps the lowest Xie-Beni index.
    m : float
        Fuzzifier (> 1). m = 2 is the usual choice; near 1 the partition becomes hard.
    error, maxiter : stopping rule of `skfuzzy.cluster.cmeans`.
    random_state : int
        Seed of the random initial partition (the same draw `cmeans(seed=...)` makes, without
        touching numpy's global random state).

    Attributes
    ----------
    n_clusters_ : int
    centers_ : ndarray [c, D], in the standardized space
    mean_, scale_ : ndarray [D], standardization fitted on the training rows
    fpc_ : float, fuzzy partition coefficient on the training rows
    diagnostics_ : dict, see `membership_diagnostics`
    xie_beni_ : dict {c: index} for every c tried
    """

    def __init__(
        self,
        n_clusters: int | Literal["auto"] = 3,
        m: float = 2.0,
        error: float = 1e-6,
        maxiter: int = 1000,
        random_state: int = 0,
    ):
        self.n_clusters = n_clusters
        self.m = m
        self.error = error
        self.maxiter = maxiter
        self.random_state = random_state

    @classmethod
    def from_config(cls, config: ClusterConfig) -> FuzzyCMeans:
        return cls(config.n_clusters, config.m, config.error, config.maxiter, config.random_state)

    def _standardize(self, x: np.ndarray) -> np.ndarray:
        return (np.asarray(x, dtype=np.float64) - self.mean_) / self.scale_

    def _cmeans(self, xs: np.ndarray, c: int, centers: np.ndarray | None = None):
        if centers is None:
            init = normalize_columns(np.random.RandomState(self.random_state).rand(c, len(xs)))
        else:  # a warm start: the partition those centers (standardized afresh) give these rows
            init = _memberships(xs, self._standardize(centers), self.m).T
        centers, u, *_ = skfuzzy.cluster.cmeans(
            xs.T, c, self.m, error=self.error, maxiter=self.maxiter, init=init
        )
        return centers, u.T

    def fit(self, x: np.ndarray, centers: np.ndarray | None = None) -> FuzzyCMeans:
        """Standardize `x` [N, D] and cluster it; `centers` [c, D], in descriptor units, start the
        iterations (a warm refit) instead of a seeded random partition, with c = len(centers)."""
        x = np.asarray(x, dtype=np.float64)
        if x.ndim != 2 or not np.isfinite(x).all():
            raise ValueError("FuzzyCMeans.fit needs a finite 2-D array [n_rows, n_descriptors]")
        self.mean_ = x.mean(axis=0)
        self.scale_ = np.where(x.std(axis=0) > 0, x.std(axis=0), 1.0)
        xs = self._standardize(x)
        candidates = AUTO_CANDIDATES if self.n_clusters == "auto" else [int(self.n_clusters)]
        candidates = candidates if centers is None else [len(centers)]
        if len(xs) <= max(candidates):
            raise ValueError(f"FuzzyCMeans needs more rows than clusters, got {len(xs)} rows")
        fits = {c: self._cmeans(xs, c, centers) for c in candidates}
        self.xie_beni_ = {c: xie_beni(xs, centers, u, self.m) for c, (centers, u) in fits.items()}
        self.n_clusters_ = min(self.xie_beni_, key=self.xie_beni_.get)
        self.centers_, u = fits[self.n_clusters_]
        self.diagnostics_ = membership_diagnostics(u)
        self.fpc_ = self.diagnostics_["fpc"]
        self._warn_if_degenerate()
        return self

    def _warn_if_degenerate(self) -> None:
        d = self.diagnostics_
        # Memberships this close to 1/c make the fuzzy ensemble an equal-weight average.
        if d["fpc"] < d["uniform_fpc"] + 0.05 or d["membership_entropy"] > 0.95:
            message = (
                f"fuzzy memberships are nearly uniform (FPC {d['fpc']:.3f} vs 1/c = "
                f"{d['uniform_fpc']:.3f}, entropy {d['membership_entropy']:.3f}): the clusters do "
                "not separate these windows and the ensemble degenerates to an equal-weight "
                "average. Try other descriptors, fewer clusters or a smaller fuzzifier m."
            )
            log.warning(message)
            warnings.warn(message, UserWarning, stacklevel=3)

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Memberships of new rows: [N, D] -> [N, c], non-negative, rows summing to 1."""
        return _memberships(self._standardize(np.atleast_2d(x)), self.centers_, self.m)

    def descriptor_centers(self) -> np.ndarray:
        """The centers in raw descriptor units: [c, D]."""
        return self.centers_ * self.scale_ + self.mean_

    def reorder(self, order: np.ndarray) -> FuzzyCMeans:
        """Renumber the clusters: new cluster k is old cluster `order[k]` (diagnostics do not change)."""
        order = np.asarray(order)
        if sorted(order.tolist()) != list(range(self.n_clusters_)):
            raise ValueError(
                f"reorder needs a permutation of 0..{self.n_clusters_ - 1}, got {order.tolist()}"
            )
        self.centers_ = self.centers_[order]
        return self

    def summary(self) -> dict[str, float]:
        """The Xie-Beni index of the chosen c and the membership diagnostics (`cluster_fpc`, ...)."""
        return {
            "xie_beni": self.xie_beni_[self.n_clusters_],
            **{f"cluster_{k}": v for k, v in self.diagnostics_.items()},
        }

    def to_arrays(self) -> dict[str, np.ndarray]:
        return {"centers": self.centers_, "m": np.array(self.m), "mean": self.mean_, "scale": self.scale_}

    @classmethod
    def from_arrays(cls, arrays) -> FuzzyCMeans:
        fcm = cls(n_clusters=len(arrays["centers"]), m=float(arrays["m"]))
        fcm.centers_ = np.asarray(arrays["centers"])
        fcm.mean_, fcm.scale_ = np.asarray(arrays["mean"]), np.asarray(arrays["scale"])
        fcm.n_clusters_ = len(fcm.centers_)
        return fcm
