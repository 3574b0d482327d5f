"""The main job on embedded defaults: bundled sample -> train -> forecast, metrics, plots -> MLflow.

Usage:
    python -m pipelines.quickstart                 # what `make quickstart` / `forecaster quickstart` run
    python -m pipelines.quickstart --epochs 5 --clusters auto
    FORECASTER_HOME=/tmp/fc python -m pipelines.quickstart

Stores the bundled S&P 500 / NASDAQ Composite bars (1999-2018) in the price cache, trains a small
model, prints the next-5-day forecast and the validation/test metrics against the naive
last-price forecast, writes PNG plots, then shares the retrain job's last steps: log the run,
register the model as `challenger`, promote it to `champion` when it wins. Everything goes under
FORECASTER_HOME (default ./.forecaster).
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from rich.markup import escape

from forecaster.cli.common import parse_clusters
from forecaster.cli.render import console, err_console, print_forecast, print_metrics
from forecaster.config import ClusterConfig, ForecasterConfig, Settings, TrainConfig
from forecaster.data import DataSourceError, PriceStore, load_sample
from forecaster.logs import setup_logging
from forecaster.model import FuzzyLSTMForecaster
from forecaster.plots import plot_forecast_vs_actual, plot_memberships
from forecaster.windows import make_windows, split_windows
from pipelines.train import fit_and_save, register_and_promote

NAME = "quickstart"


@dataclass
class QuickstartResult:
    model: FuzzyLSTMForecaster
    model_dir: Path
    plots: tuple[Path, ...]
    run_id: str
    version: str | None
    promoted: bool
    reason: str


def quickstart_config(epochs: int = 15, clusters: int | str = 3) -> ForecasterConfig:
    return ForecasterConfig(
        cluster=ClusterConfig(n_clusters=clusters), train=TrainConfig(epochs=epochs, patience=3)
    )


def make_plots(model: FuzzyLSTMForecaster, bars, reports: Path, ticker: str = "^GSPC") -> tuple[Path, ...]:
    """The test-block forecast against what happened, and the regime memberships over time."""
    windows = make_windows(bars, model.config.window)
    test = split_windows(windows, model.config.window)["test"]
    return (
        plot_forecast_vs_actual(
            test, model.predict_windows(test), ticker, reports / "forecast_vs_actual.png"
        ),
        plot_memberships(
            windows,
            model.predict_windows(windows, intervals=False).memberships,
            ticker,
            reports / "memberships.png",
        ),
    )


def run(settings: Settings, config: ForecasterConfig) -> QuickstartResult:
    bars = load_sample()
    PriceStore(settings.price_dir).write(bars)
    console.print(f"[dim]stored {len(bars):,} sample bars in {settings.price_dir}[/]")
    model, model_dir = fit_and_save(bars, config, settings, NAME)
    print_forecast(model.predict(bars))
    print_metrics(model.metrics_)
    plots = make_plots(model, bars, settings.reports_dir / NAME)
    logged, decision = register_and_promote(model, bars, settings, NAME, plots)
    return QuickstartResult(
        model, model_dir, plots, logged.run_id, logged.version, decision.promoted, decision.reason
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--epochs", type=int, default=15, help="maximum training epochs (default 15)")
    parser.add_argument("--clusters", default="3", help="number of clusters, or 'auto' (default 3)")
    args = parser.parse_args(argv)
    setup_logging()
    started = time.perf_counter()
    settings = Settings()
    try:
        result = run(settings, quickstart_config(args.epochs, parse_clusters(args.clusters)))
    except (ValueError, FileNotFoundError, DataSourceError) as exc:  # expected failures: one line
        err_console.print(f"[bold red]error:[/] {escape(str(exc))}")
        sys.exit(2)
    console.print(
        f"\nmodel:  {result.model_dir}\nplots:  {', '.join(str(p) for p in result.plots)}\n"
        f"prices: {settings.price_dir}\n"
        f"mlflow: run {result.run_id}, {settings.model_name} v{result.version} "
        f"({'champion' if result.promoted else 'challenger'}: {result.reason}) in {settings.tracking_uri}\n"
        "        open the UI with `forecaster ui`, then http://127.0.0.1:5000"
    )
    console.print(f"done in {time.perf_counter() - started:.0f} s on {result.model.device_}")


if __name__ == "__main__":
    main()
