"""Size and power of the risk backtests and the HAC Diebold-Mariano test on simulations.

Usage:
    python benchmarks/validate_risk_tests.py [--sims 5000] [--lengths 250 500 1000] [--seed 0]

Rejection rates at the 5% level, one row per test, scenario and alpha, one column per length T:
- size: outcomes sigma_t * N(0, 1) with a known lognormal sigma_t and the true quantile as VaR;
- narrow: the same outcomes, VaR 30% too narrow (0.7 x the true quantile);
- clustered: Markov hits with P(hit | hit) = 0.3 at the nominal unconditional rate (hits only,
  so the DQ test's VaR regressor is the true quantile);
- Z2 (alpha 2.5%): N(0, 1) forecast, outcomes from it (size) or from a t(3) with the same 2.5%
  quantile (fat tail: the VaR is right, the ES 33% too small), critical value simulated;
- DM (AR(1) loss differentials, phi 0.5, mean 0): the HAC version and the lag-(h-1) one at h = 1.
The Basel zone thresholds for 250 days at 99% are printed with the binomial probabilities.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd
from scipy import stats

from forecaster.evaluation import comparison as cp
from forecaster.evaluation import risk_backtests as rb
from forecaster.metrics import diebold_mariano


def var_rates(rng, sims: int, n: int, alpha: float, shrink: float) -> dict[str, float]:
    sigma = np.exp(0.3 * rng.standard_normal((sims, n)))
    y = sigma * rng.standard_normal((sims, n))
    var = shrink * sigma * stats.norm.ppf(alpha)
    return _rates(rb.violations(y, var), var, alpha)


def clustered_rates(rng, sims: int, n: int, alpha: float, p11: float = 0.3) -> dict[str, float]:
    p01 = alpha * (1 - p11) / (1 - alpha)
    u = rng.uniform(size=(sims, n))
    hits = np.zeros((sims, n), dtype=bool)
    hits[:, 0] = u[:, 0] < alpha
    for t in range(1, n):
        hits[:, t] = u[:, t] < np.where(hits[:, t - 1], p11, p01)
    var = np.exp(0.3 * rng.standard_normal((sims, n))) * stats.norm.ppf(alpha)
    return _rates(hits, var, alpha)


def _rates(hits, var, alpha) -> dict[str, float]:
    ind, cc = rb.christoffersen(hits, alpha)
    dq = np.array([rb.dynamic_quantile(h, v, alpha).p_value for h, v in zip(hits, var, strict=True)])
    return {
        "kupiec": float(np.mean(rb.kupiec_pof(hits, alpha).p_value < 0.05)),
        "christoffersen ind": float(np.mean(ind.p_value < 0.05)),
        "christoffersen cc": float(np.mean(cc.p_value < 0.05)),
        "dq": float(np.mean(dq < 0.05)),
    }


def z2_rates(rng, sims: int, n: int, alpha: float = 0.025) -> dict[str, float]:
    z = stats.norm.ppf(alpha)
    var, es = np.full(n, z), np.full(n, -stats.norm.pdf(z) / alpha)
    critical = np.quantile(rb.acerbi_szekely_z2(rng.standard_normal((10_000, n)), var, es, alpha), 0.05)
    null = rb.acerbi_szekely_z2(rng.standard_normal((sims, n)), var, es, alpha)
    fat = rb.acerbi_szekely_z2(z / stats.t.ppf(alpha, 3) * rng.standard_t(3, (sims, n)), var, es, alpha)
    return {"size": float(np.mean(null < critical)), "fat tail": float(np.mean(fat < critical))}


def dm_rates(rng, sims: int, n: int, phi: float = 0.5) -> dict[str, float]:
    e = rng.standard_normal((sims, n))
    d = np.empty_like(e)
    d[:, 0] = e[:, 0] / np.sqrt(1 - phi**2)
    for t in range(1, n):
        d[:, t] = phi * d[:, t - 1] + e[:, t]
    hac = np.array([cp.diebold_mariano_hac(x).p_value for x in d])
    truncated = np.array([diebold_mariano(x, 1)[1] for x in d])
    return {"HAC": float(np.mean(hac < 0.05)), "lag h-1": float(np.mean(truncated < 0.05))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sims", type=int, default=5000, help="simulations per cell")
    parser.add_argument("--lengths", type=int, nargs="+", default=[250, 500, 1000], help="series lengths T")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    start = time.perf_counter()
    rows = []
    for n in args.lengths:
        rng = np.random.default_rng([args.seed, n])
        for alpha in (0.01, 0.025, 0.05):
            for scenario, rates in [
                ("size", var_rates(rng, args.sims, n, alpha, 1.0)),
                ("narrow 30%", var_rates(rng, args.sims, n, alpha, 0.7)),
                ("clustered", clustered_rates(rng, args.sims, n, alpha)),
            ]:
                rows += [dict(test=t, scenario=scenario, alpha=alpha, T=n, rate=r) for t, r in rates.items()]
        rows += [
            dict(test="z2", scenario=s, alpha=0.025, T=n, rate=r)
            for s, r in z2_rates(rng, args.sims, n).items()
        ]
        rows += [
            dict(test=f"dm {k}", scenario="size AR(1) 0.5", alpha=np.nan, T=n, rate=r)
            for k, r in dm_rates(rng, args.sims, n).items()
        ]
    table = pd.DataFrame(rows).pivot_table(
        index=["test", "scenario", "alpha"], columns="T", values="rate", dropna=False
    )
    band = stats.binom.ppf([0.025, 0.975], args.sims, 0.05) / args.sims
    print(
        f"Rejection rates at 5%, {args.sims} simulations per cell (95% band around 0.05: {band[0]:.3f}-{band[1]:.3f})"
    )
    print(table.dropna(how="all").to_string(float_format=lambda v: f"{v:.3f}"))
    green, yellow = rb.basel_zone_thresholds(250, 0.01)
    cdf = stats.binom.cdf(np.arange(12), 250, 0.01)
    print(f"\nBasel 250 days at 99%: green 0-{green}, yellow {green + 1}-{yellow}, red {yellow + 1}+")
    print("P(X <= k), k = 0..11:", " ".join(f"{100 * c:.2f}" for c in cdf))
    print(f"\n{time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
