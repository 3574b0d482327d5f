"""Backtest of the joint products: M6 quintile-rank RPS and equal-weight portfolio VaR, walked forward.

    python benchmarks/backtest_products.py --stocks 20                     # 2012-2017, default training
    python benchmarks/backtest_products.py --stocks 20 --epochs 5 --out .forecaster/bt-products
    python benchmarks/backtest_products.py --stocks 10 --start 2016-01-01 --epochs 1 --paths 1000  # quick

Draws --stocks tickers from --source as `forecaster backtest --sample N --seed S` does (seeded, from
the sorted tickers that pass validation), fits the fuzzy LSTM with horizon H = 20 once per calendar
year on every bar up to the year's first origin (expanding window), and from each origin t in
[--start, --end] simulates the tickers jointly with data up to t only (`forecaster.evaluation.
products_backtest`). Prints:

- mean RPS (M6) per calendar year and over all non-overlapping 20-day periods, with the standard
  error over periods, for the model, the one-factor volatility baseline and uniform probabilities
  (0.16), and the paired model-minus-factor difference with a HAC Diebold-Mariano p;
- the equal-weight portfolio's VaR exceedances at 1% and 5%, daily (1-day VaR, next day's return)
  and per 20-day period, with Kupiec's and Christoffersen's conditional-coverage p-values.

Writes the tables (CSV) and a plot of RPS per year (PNG) to --out. The data are survivors (still
listed in late 2017): say so next to any figure.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd

from forecaster.config import ForecasterConfig
from forecaster.data import load_bars
from forecaster.evaluation.products_backtest import (
    ALPHAS,
    SOURCES,
    backtest_products,
    paired_rps,
    rps_by_year,
    var_table,
)

DEFAULT_SOURCE = "../shared/data/us-stocks-2000-2017.parquet"


def sample_bars(source: str, stocks: int, seed: int) -> pd.DataFrame:
    """The bars of `stocks` tickers drawn as `forecaster backtest --sample` draws them."""
    bars = load_bars(source)
    tickers = sorted(bars["ticker"].unique())
    if stocks < len(tickers):
        chosen = np.random.default_rng(seed).choice(tickers, stocks, replace=False)
        bars = bars[bars["ticker"].isin(chosen)]
    return bars.sort_values(["ticker", "date"], ignore_index=True)


def config_from(args) -> ForecasterConfig:
    train = {"device": "cpu", "seed": args.seed}
    if args.epochs is not None:
        train["epochs"] = args.epochs
    expert = {} if args.hidden is None else {"hidden_size": args.hidden}
    return ForecasterConfig().with_(window={"horizon": args.horizon}, train=train, expert=expert)


def print_tables(result, out: Path | None) -> None:
    by_year = rps_by_year(result.periods)
    print(f"\nRPS per calendar year (mean over {result.horizon}-day periods, +- SE over periods)")
    print(f"{'year':>5} {'n':>3} " + " ".join(f"{s:>17}" for s in SOURCES))
    for _, r in by_year.iterrows():
        cells = " ".join(f"{r[s]:.4f} +- {r[s + '_se']:.4f}" for s in SOURCES)
        print(f"{r['year']:>5} {r['periods']:>3} {cells}")
    pairs = [paired_rps(result.periods, model=m) for m in ("model", "model_centered")]
    for pair in pairs:
        print(
            f"{pair['model']} - factor: mean {pair['mean_diff']:+.4f} (SE {pair['se']:.4f}) over "
            f"{pair['periods']} periods, HAC DM stat {pair['dm_stat']:.2f}, p {pair['dm_p']:.3f}; "
            f"better in {100 * pair['model_better_share']:.0f}% of periods"
        )
    var = pd.concat(
        [var_table(result.days, label="1 day"), var_table(result.periods, label=f"{result.horizon} days")],
        ignore_index=True,
    )
    print("\nequal-weight portfolio VaR: exceedances, Kupiec and Christoffersen cc p-values")
    print(var.to_string(index=False, float_format=lambda x: f"{x:.4f}"))
    print(
        f"({result.horizon}-day rows: {len(result.periods)} non-overlapping periods only; the tests have little power)"
    )
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        for name, frame in {"periods": result.periods, "days": result.days, "ranks": result.ranks,
                            "rps_by_year": by_year, "var": var}.items():  # fmt: skip
            frame.to_csv(out / f"{name}.csv", index=False)
        pd.DataFrame(pairs).to_csv(out / "model_vs_factor.csv", index=False)
        plot_rps(by_year, out / "rps_by_year.png")
        print(f"\nwrote tables and rps_by_year.png to {out}")


def plot_rps(by_year: pd.DataFrame, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    years = by_year[by_year["year"] != "all"]
    x = np.arange(len(years))
    fig, ax = plt.subplots(figsize=(7, 3.5))
    for shift, source in zip((-0.3, -0.1, 0.1, 0.3), SOURCES, strict=True):
        ax.errorbar(x + shift, years[source], yerr=years[f"{source}_se"], fmt="o", capsize=3, label=source)
    ax.axhline(0.16, color="grey", lw=0.8, ls="--")
    ax.set_xticks(x, years["year"])
    ax.set_ylabel("mean RPS (lower is better)")
    ax.set_title("M6 RPS of 20-day quintile ranks per year (+- 1 SE)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--source", default=DEFAULT_SOURCE, help="bars file (the project's stocks data)")
    parser.add_argument("--stocks", type=int, default=20, help="tickers drawn, as backtest --sample")
    parser.add_argument("--seed", type=int, default=0, help="seed of the draw, the training and the paths")
    parser.add_argument("--start", default="2012-01-01")
    parser.add_argument("--end", default="2017-12-31")
    parser.add_argument("--horizon", type=int, default=20, help="H: ranking period and model horizon")
    parser.add_argument("--epochs", type=int, default=None, help="default: the model's (30, early stopping)")
    parser.add_argument("--hidden", type=int, default=None, help="default: the model's (64)")
    parser.add_argument("--paths", type=int, default=2000, help="joint paths per origin")
    parser.add_argument("--out", type=Path, default=Path(".forecaster/backtest-products"))
    args = parser.parse_args()
    bars = sample_bars(args.source, args.stocks, args.seed)
    config = config_from(args)
    print(
        f"{bars['ticker'].nunique()} tickers ({', '.join(sorted(bars['ticker'].unique()))}); origins "
        f"{args.start}..{args.end}; H={args.horizon}, epochs {config.train.epochs}, hidden "
        f"{config.expert.hidden_size}, {args.paths} paths; yearly refits, expanding window",
        flush=True,
    )
    started = time.perf_counter()
    result = backtest_products(
        bars, config, start=args.start, end=args.end, n_paths=args.paths, seed=args.seed, alphas=ALPHAS,
        progress=lambda line: print(f"[{time.perf_counter() - started:7.0f} s] {line}", flush=True),
    )  # fmt: skip
    print_tables(result, args.out)


if __name__ == "__main__":
    main()
