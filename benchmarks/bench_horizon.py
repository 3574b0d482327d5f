"""What a monthly horizon costs: the same model fitted for H = 5 and H = 20 trading days.

    python benchmarks/bench_horizon.py                    # bundled sample, 6 epochs, about 5 minutes
    python benchmarks/bench_horizon.py --horizons 5 10 20 --epochs 10

For each H, fits the bundled sample (S&P 500 + NASDAQ, the quickstart's splits) and prints the
fit time, the test pinball (x1e4, cumulative log returns) over days 1-5 (where every H competes)
and over all its days, the 80% / 95% coverage over all its days, and the single-window predict
latency. A longer horizon shares the experts' capacity among more outputs: the 1-5-day columns
say whether that costs the short horizons. Timings depend on the machine's load: rerun, compare
only within one run.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from forecaster.config import ForecasterConfig
from forecaster.data import load_sample
from forecaster.features.splits import split_windows
from forecaster.features.windows import latest_windows, make_windows
from forecaster.metrics import coverage
from forecaster.model import FuzzyLSTMForecaster


def pinball(actual: np.ndarray, quantiles: np.ndarray, levels) -> float:
    """Mean pinball loss over windows, horizons and levels: [N, H], [N, H, Q] -> scalar."""
    diff = actual[..., None] - quantiles
    q = np.asarray(levels)
    return float(np.maximum(q * diff, (q - 1) * diff).mean())


def one_horizon(bars, horizon: int, epochs: int, seed: int) -> dict[str, float]:
    config = ForecasterConfig().with_(
        window={"horizon": horizon},
        train={"epochs": epochs, "fine_tune_epochs": 2, "device": "cpu", "seed": seed},
    )
    started = time.perf_counter()
    model = FuzzyLSTMForecaster(config).fit(bars, progress=False)
    fit_s = time.perf_counter() - started
    test = split_windows(make_windows(bars, config.window), config.window)["test"]
    pred = model.predict_windows(test)
    actual = np.cumsum(test.y.astype(np.float64), axis=1)  # [N, H]
    lo80, hi80 = (model.levels.index(q) for q in (0.1, 0.9))
    lo95, hi95 = (model.levels.index(q) for q in (0.025, 0.975))
    latest = latest_windows(bars, config.window).subset(np.array([True, False]))
    model.predict_windows(latest)  # first-call costs
    t = time.perf_counter()
    for _ in range(200):
        model.predict_windows(latest)
    return {
        "fit_s": fit_s,
        "pinball_1_5": 1e4 * pinball(actual[:, :5], pred.quantiles[:, :5], model.levels),
        "pinball_all": 1e4 * pinball(actual, pred.quantiles, model.levels),
        "coverage_80": 100 * coverage(actual, pred.quantiles[..., lo80], pred.quantiles[..., hi80]),
        "coverage_95": 100 * coverage(actual, pred.quantiles[..., lo95], pred.quantiles[..., hi95]),
        "predict_ms": 1e3 * (time.perf_counter() - t) / 200,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--horizons", type=int, nargs="+", default=[5, 20])
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    bars = load_sample()
    print(f"sample: {bars['ticker'].nunique()} tickers; epochs {args.epochs} + 2 fine-tune; CPU", flush=True)
    rows = []
    for horizon in args.horizons:
        print(f"fitting H = {horizon} ...", flush=True)
        figures = one_horizon(bars, horizon, args.epochs, args.seed)
        rows.append((horizon, figures))
        print("  " + ", ".join(f"{k} {v:.2f}" for k, v in figures.items()), flush=True)
    print(f"\n{'H':>3} {'fit s':>7} {'pb 1-5':>7} {'pb all':>7} {'cov80':>6} {'cov95':>6} {'pred ms':>8}")
    for horizon, f in rows:
        print(
            f"{horizon:>3} {f['fit_s']:7.1f} {f['pinball_1_5']:7.2f} {f['pinball_all']:7.2f} "
            f"{f['coverage_80']:6.1f} {f['coverage_95']:6.1f} {f['predict_ms']:8.2f}"
        )
    print(
        "pb: test pinball x1e4 of cumulative log returns over days 1-5 and over all H days; cov: "
        "interval coverage over all H days, %; pred ms: one window's forecast, in process."
    )


if __name__ == "__main__":
    main()
