"""Cold against warm walk-forward refits: wall time and pinball loss of the same backtest.

    nice -n 10 python benchmarks/bench_refit.py --stocks 4
    python benchmarks/bench_refit.py --source ../shared/data/us-stocks-2000-2017.parquet --stocks 20 \
        --seed 0 --start 2012-01-01 --end 2017-12-31 --refit-every 252 --warm-epochs 3 --models fuzzy

Draws `--stocks` tickers of the source as `forecaster backtest --sample N --seed S` does
(`cli.common.sample_tickers`), builds the model configuration `forecaster backtest` builds (its
defaults: hidden 32, at most 6 epochs, patience 2, batches of 512, lr 2e-3, 3 clusters), and runs
`evaluation.backtest.walk_forward` on the same folds (origins from --start to --end, a refit every
--refit-every trading days, yearly by default) with `refit="cold"` (every fold trains from scratch)
and `refit="warm"` (every fold after the first starts from the previous fold's fit and trains each
stage --warm-epochs epochs), --repeats times each, alternating. Prints the wall time of each mode
(its fastest run: the machine's load changes), their ratio, the mean pinball loss x1e4 of each
(cumulative log returns, every horizon and level, as the backtest report) and the relative
difference. Goal (issue 23): warm takes <= 1/3 of cold's wall time with a pinball loss at most 0.3%
worse than cold's.
"""

from __future__ import annotations

import argparse
import time

from forecaster.cli.common import build_config, sample_tickers
from forecaster.data import load_bars
from forecaster.evaluation.backtest import walk_forward
from forecaster.evaluation.report import in_x1e4
from forecaster.evaluation.scoring import score


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--source", default="/work/shared/data/us-stocks-2000-2017.parquet")
    parser.add_argument("--stocks", type=int, default=4, help="tickers drawn from the source (seeded)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the draw and of the models")
    parser.add_argument("--start", default="2012-01-01", help="first origin")
    parser.add_argument("--end", default="2017-12-31", help="last origin (its targets must be in the data)")
    parser.add_argument("--refit-every", type=int, default=252, help="trading days between refits")
    parser.add_argument("--models", default="fuzzy", help="comma-separated competitors")
    parser.add_argument("--warm-epochs", type=int, default=3, help="epochs of each stage of a warm refit")
    parser.add_argument("--epochs", type=int, default=6, help="expert epochs of a cold fit (at most)")
    parser.add_argument("--patience", type=int, default=2)
    parser.add_argument("--hidden", type=int, default=32)
    parser.add_argument("--engine", default="local", help="local or ray")
    parser.add_argument(
        "--repeats", type=int, default=1, help="runs of each mode, alternating; min time kept"
    )
    args = parser.parse_args()

    bars = sample_tickers(load_bars(args.source), args.stocks, args.seed)
    config = build_config(
        window=30, horizon=5, clusters="3", hidden=args.hidden, epochs=args.epochs, patience=args.patience,
        batch_size=512, lr=2e-3, device="cpu", seed=args.seed, warm_epochs=args.warm_epochs,
    )  # fmt: skip
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    print(f"{len(bars):,} bars of {bars['ticker'].nunique()} tickers; models {', '.join(models)}")
    seconds, pinball = {}, {}
    for refit in ("cold", "warm") * args.repeats:  # alternating: a change of load hits both modes
        started = time.perf_counter()
        result = walk_forward(
            bars, config, start=args.start, end=args.end, refit_every=args.refit_every,
            models=models, engine=args.engine, refit=refit,
        )  # fmt: skip
        elapsed = time.perf_counter() - started
        fits = result.folds.filter(like="_seconds").sum(axis=1)
        seconds[refit] = min(elapsed, seconds.get(refit, elapsed))
        table = in_x1e4(score(result.forecasts)).set_index("model")
        pinball[refit] = table["pinball_x1e4"]
        print(f"{refit}: {len(result.folds)} folds, {elapsed:.1f} s (fits per fold {fits.round(1).tolist()})")
        for model, value in table["pinball_x1e4"].items():
            print(f"  {model}: pinball x1e4 {value:.4f}, coverage 80% {table.loc[model, 'coverage_80']:.3f}")
    ratio = seconds["warm"] / seconds["cold"]
    print(f"wall time: cold {seconds['cold']:.1f} s, warm {seconds['warm']:.1f} s, warm/cold {ratio:.3f}")
    for model in pinball["cold"].index:
        cold, warm = pinball["cold"][model], pinball["warm"][model]
        print(
            f"{model}: pinball x1e4 cold {cold:.4f}, warm {warm:.4f}, relative difference {warm / cold - 1:+.3%}"
        )
    # Accuracy parity: warm may not be worse than cold by more than 0.3% (being better is fine).
    met = ratio <= 1 / 3 and all(pinball["warm"] / pinball["cold"] - 1 <= 0.003)
    print(f"goal (warm <= 1/3 of cold's time, pinball at most 0.3% worse): {'met' if met else 'not met'}")


if __name__ == "__main__":
    main()
