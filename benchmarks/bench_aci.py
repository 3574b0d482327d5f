"""Static quantiles, ACI and DtACI side by side: mean pinball loss and 80% / 95% coverage.

    python benchmarks/bench_aci.py              # simulated series, then the bundled sample (~1 min)
    python benchmarks/bench_aci.py --no-sample  # simulated series only
    python benchmarks/bench_aci.py --fuzzy      # also the fuzzy model's walk-forward (~6 min, 2 cores)

Simulated: 4 tickers of N(0, (0.01 s_t)^2) daily returns forecast with the quantiles of
N(0, 0.01^2) (times sqrt(h) at horizon h), so the static quantiles are right where s_t = 1:
stationary at horizon 1 and 5 (overlapping 5-day sums), and volatility doubling (or halving) after
1000 days, scored over the 500 days after the break. Bundled sample: ^GSPC and ^IXIC, origins
2010-2018, yearly refits, horizons 1-5: the walk-forward quantiles of the EWMA, GARCH(1,1)-t and
rolling historical baselines (and with --fuzzy the fuzzy model, through the backtest's own
fuzzy_aci / fuzzy_dtaci rows), served as they are (static), through ACI (gamma 0.005) and
through DtACI (`forecaster.calibration.aci`), one state per ticker across all folds.

Pinball is the mean over rows, horizons and the 11 levels 0.01 .. 0.99, in units of 1e-4 log
return; "vs static" is its change against the static quantiles.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd
from scipy import stats

from forecaster.calibration.aci import run_aci
from forecaster.config import DEFAULT_LEVELS
from forecaster.metrics import pinball_loss

LEVELS = DEFAULT_LEVELS
METHODS = ("static", "aci", "dtaci")


def scores(actual: np.ndarray, quantiles: np.ndarray) -> tuple[float, float, float]:
    """Mean pinball (x1e4), 80% and 95% coverage of actual [N, H] by quantiles [N, H, Q]."""
    covered = {}
    for c, (lo, hi) in {0.8: (0.1, 0.9), 0.95: (0.025, 0.975)}.items():
        i, j = LEVELS.index(lo), LEVELS.index(hi)
        covered[c] = float(((actual >= quantiles[..., i]) & (actual <= quantiles[..., j])).mean())
    return pinball_loss(actual, quantiles, LEVELS) * 1e4, covered[0.8], covered[0.95]


def served(tickers, origins, targets, quantiles, actual) -> dict[str, np.ndarray]:
    """The quantiles each method serves over the history (static: the forecasts themselves)."""
    out = {"static": quantiles}
    for method in ("aci", "dtaci"):
        out[method] = run_aci(tickers, origins, targets, quantiles, actual, LEVELS, method=method)
    return out


def simulated(scale: np.ndarray, horizon: int, tickers: int = 4, seed: int = 0):
    """Returns of vol 0.01 * scale; forecasts of their h-day sums at every origin, believing scale 1."""
    rng = np.random.default_rng(seed)
    n = len(scale)
    daily = rng.standard_normal((tickers, n + horizon)) * 0.01 * np.r_[scale, np.full(horizon, scale[-1])]
    cum = np.cumsum(daily, axis=1)  # [tickers, n + H]
    steps = np.arange(1, horizon + 1)
    t = np.arange(n)[:, None]
    actual = (cum[:, t + steps] - cum[:, t]).reshape(-1, horizon)  # [tickers * n, H]: days t+1 .. t+h
    q = 0.01 * stats.norm.ppf(LEVELS)[None, None, :] * np.sqrt(steps)[None, :, None]
    quantiles = np.broadcast_to(q, (len(actual), horizon, len(LEVELS))).copy()
    days = np.arange(np.datetime64("2000-01-03"), np.datetime64("2000-01-03") + n)
    origins = np.tile(days, tickers)
    names = np.repeat([f"T{k}" for k in range(tickers)], n)
    return names, origins, origins[:, None] + steps, quantiles, actual


def print_table(title: str, rows: list[tuple[str, dict[str, tuple[float, float, float]]]]) -> None:
    print(f"\n{title}")
    print(f"{'series':<38}{'method':<8}{'pinball':>9}{'vs static':>11}{'cov 80':>8}{'cov 95':>8}")
    for name, result in rows:
        base = result["static"][0]
        for method in METHODS:
            pinball, c80, c95 = result[method]
            change = "" if method == "static" else f"{100 * (pinball / base - 1):+.2f}%"
            print(f"{name:<38}{method:<8}{pinball:>9.3f}{change:>11}{100 * c80:>7.1f}%{100 * c95:>7.1f}%")
            name = ""


def bench_simulated() -> None:
    rows = []
    for name, scale, horizon in [
        ("stationary, h=1", np.ones(2500), 1),
        ("stationary, h=1..5", np.ones(2500), 5),
        ("volatility x2 after day 1000, h=1", np.r_[np.ones(1000), 2 * np.ones(500)], 1),
        ("volatility x0.5 after day 1000, h=1", np.r_[np.ones(1000), 0.5 * np.ones(500)], 1),
    ]:
        names, origins, targets, quantiles, actual = simulated(scale, horizon)
        after = np.tile(np.arange(len(scale)) >= (1000 if len(scale) == 1500 else 0), 4)
        out = served(names, origins, targets, quantiles, actual)
        rows.append((name, {m: scores(actual[after], q[after]) for m, q in out.items()}))
        if len(scale) == 1500:  # the break: also the last 250 days, once the rules have moved
            late = np.tile(np.arange(len(scale)) >= 1250, 4)
            rows.append(("  its last 250 days", {m: scores(actual[late], q[late]) for m, q in out.items()}))
    print_table("Simulated (4 tickers; a break is scored over the 500 days after it)", rows)


def replay(frame: pd.DataFrame, horizon: int):
    """One model's backtest rows as run_aci's arrays: tickers, origins, targets, quantiles, actual."""
    rows = frame.sort_values(["ticker", "origin", "horizon"])
    n = len(rows) // horizon
    quantiles = (
        rows[[f"q_{level:g}" for level in LEVELS]].to_numpy(np.float64).reshape(n, horizon, len(LEVELS))
    )
    first = rows.iloc[::horizon]
    return (
        first["ticker"].to_numpy(),
        first["origin"].to_numpy("datetime64[D]"),
        rows["target_date"].to_numpy("datetime64[D]").reshape(n, horizon),
        quantiles,
        rows["actual_log_return"].to_numpy(np.float64).reshape(n, horizon),
    )


def bench_sample(fuzzy: bool) -> None:
    from forecaster.cli.common import build_config
    from forecaster.data.sample import load_sample
    from forecaster.evaluation.backtest import walk_forward

    # The `forecaster backtest` defaults: hidden 32, at most 6 epochs of batches of 512.
    config = build_config(window=30, horizon=5, clusters="3", hidden=32, epochs=6, patience=2,
                          batch_size=512, lr=2e-3, device="cpu", seed=0)  # fmt: skip
    models = ("ewma", "garch", "historical") + (("fuzzy", "fuzzy_aci", "fuzzy_dtaci") if fuzzy else ())
    started = time.perf_counter()
    forecasts = walk_forward(
        load_sample(), config, start="2010-01-01", end="2018-12-31", models=models
    ).forecasts
    seconds = time.perf_counter() - started
    rows = []
    for model in ("ewma", "garch", "historical"):
        arrays = replay(forecasts[forecasts["model"] == model], config.window.horizon)
        out = served(*arrays)
        rows.append((model, {m: scores(arrays[4], q) for m, q in out.items()}))
    if fuzzy:  # the backtest's own rows: fuzzy, fuzzy_aci, fuzzy_dtaci
        result = {}
        for method, model in zip(METHODS, ("fuzzy", "fuzzy_aci", "fuzzy_dtaci"), strict=True):
            arrays = replay(forecasts[forecasts["model"] == model], config.window.horizon)
            result[method] = scores(arrays[4], arrays[3])
        rows.append(("fuzzy (backtest rows)", result))
    n = int((forecasts["model"] == "ewma").sum())
    print_table(
        f"Bundled sample, origins 2010-2018, {n:,} forecasts per model (walk-forward {seconds:.0f} s)", rows
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--no-sample", action="store_true", help="simulated series only")
    parser.add_argument("--fuzzy", action="store_true", help="also backtest the fuzzy model (minutes)")
    args = parser.parse_args()
    bench_simulated()
    if not args.no_sample:
        bench_sample(args.fuzzy)


if __name__ == "__main__":
    main()
