"""Wall time and peak memory of a joint forecast: 10,000 paths of 500 tickers at H = 20.

Usage:
    python benchmarks/bench_joint.py [--tickers 500] [--paths 10000] [--horizon 20] [--days 504] [--df 6]

Synthetic inputs: 2 years of daily log returns from a one-factor model (market plus noise,
volatilities 1%..3% a day) and normal quantiles at DEFAULT_LEVELS of the 1..H-day cumulative log
return, [N, H, Q]. Stages: `estimation` (Copula.fit on the trailing window), `simulation`
(simulate_returns at horizon H), `risk` (ticker_risk, portfolio_risk with equal weights),
`ranks` (rank_probabilities and the M6 frame). Peak memory: the process's peak RSS (ru_maxrss,
with the interpreter and libraries) and tracemalloc's peak of the arrays numpy allocates.
Goal: under 10 s and under 4 GB on 2 cores.
"""

from __future__ import annotations

import argparse
import resource
import time
import tracemalloc

import numpy as np
import pandas as pd
from scipy import stats

from forecaster import joint
from forecaster.config import DEFAULT_LEVELS


def synthetic_inputs(n: int, days: int, horizon: int, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    sigma = np.linspace(0.01, 0.03, n)  # [N] daily volatility
    market = 0.008 * rng.standard_normal((days, 1))
    returns = market * rng.uniform(0.5, 1.5, n) + rng.standard_normal((days, n)) * sigma  # [T, N]
    frame = pd.DataFrame(
        returns, index=pd.bdate_range("2017-01-02", periods=days), columns=[f"T{j:03d}" for j in range(n)]
    )
    scale = sigma[:, None, None] * np.sqrt(np.arange(1, horizon + 1))[None, :, None]  # [N, H, 1]
    quantiles = scale * stats.norm.ppf(DEFAULT_LEVELS)[None, None, :]  # [N, H, Q]
    return frame, quantiles


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tickers", type=int, default=500)
    parser.add_argument("--paths", type=int, default=10_000)
    parser.add_argument("--horizon", type=int, default=20)
    parser.add_argument("--days", type=int, default=504)
    parser.add_argument("--df", type=float, default=6.0, help="t copula degrees of freedom; 0 for Gaussian")
    parser.add_argument("--shrinkage", default="ledoit_wolf", choices=joint.SHRINKAGE)
    args = parser.parse_args()

    returns, quantiles = synthetic_inputs(args.tickers, args.days, args.horizon)
    tracemalloc.start()
    times = {}
    t0 = time.perf_counter()
    copula = joint.Copula(df=args.df or None, window=args.days, shrinkage=args.shrinkage).fit(returns)
    times["estimation"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    draws = joint.simulate_returns(
        quantiles, DEFAULT_LEVELS, copula, horizon=args.horizon, n_paths=args.paths, seed=0
    )  # [S, N]
    times["simulation"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    var, es = joint.ticker_risk(draws)
    risk = joint.portfolio_risk(draws)
    times["risk"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    frame = joint.m6_frame(copula.tickers_, joint.rank_probabilities(draws))
    times["ranks"] = time.perf_counter() - t0
    _, traced_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()

    print(
        f"{args.paths} paths x {args.tickers} tickers, horizon {args.horizon}, {args.days} days, "
        f"df={args.df or 'gaussian'}, {args.shrinkage}"
    )
    for stage, seconds in times.items():
        print(f"  {stage:<11} {seconds:6.2f} s")
    print(f"  {'total':<11} {sum(times.values()):6.2f} s")
    print(
        f"  peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB, numpy peak {traced_peak / 2**20:.0f} MB"
    )
    print(
        f"  portfolio VaR/ES at 1%: {risk.var[0]:.4f} / {risk.es[0]:.4f}; median ticker ES at 1%: "
        f"{np.median(es[:, 0]):.4f}; Rank1 of the calmest / wildest ticker: "
        f"{frame.Rank1.iloc[0]:.3f} / {frame.Rank1.iloc[-1]:.3f}"
    )


if __name__ == "__main__":
    main()
