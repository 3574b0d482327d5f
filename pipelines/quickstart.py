"""The main job on embedded defaults: bundled sample -> train -> forecast, metrics, plots -> MLflow.

Usage:
    python -m pipelines.quickstart                 # what `make quickstart` / `forecaster quickstart` run
    python -m pipelines.quickstart --epochs 5 --clusters auto
    FORECASTER_HOME=/tmp/fc python -m pipelines.quickstart

Stores the bundled S&P 500 / NASDAQ Composite bars (1999-2018) in the price cache, trains a small
model, prints the next-5-day forecast and the validation/test metrics against the naive
last-price forecast, writes PNG plots, then shares the retrain job's last steps: log the run,
register the model as `challenger`, promote it to `champion` when it wins. Everything goes under
FORECASTER_HOME (default ./.forecaster). Ends with the batch forecast job once, so the forecast
store holds the champion's forecasts (`forecaster runs`, GET /v1/forecasts/^GSPC).
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from pathlib import Path

from forecaster import tracking
from forecaster.cli.common import describe_error, fail, parse_clusters, split_tickers
from forecaster.cli.render import print_forecast, print_metrics, promotion_line, say
from forecaster.config import ClusterConfig, ForecasterConfig, Settings, TrainConfig
from forecaster.data import PriceStore, load_sample
from forecaster.evaluation.run_plots import write_run_plots
from forecaster.model import FuzzyLSTMForecaster
from forecaster.runtime.logs import setup_logging
from forecaster.runtime.placeholders import refuse_placeholders
from forecaster.tracking import PromotionDecision
from pipelines import batch_forecast
from pipelines.train import fit_and_save, register_and_promote

NAME = "quickstart"


@dataclass
class QuickstartResult:
    model: FuzzyLSTMForecaster
    model_dir: Path
    plots: list[Path]
    run_id: str
    version: str | None
    decision: PromotionDecision


def quickstart_config(epochs: int = 15, clusters: int | str = 3) -> ForecasterConfig:
    return ForecasterConfig(
        cluster=ClusterConfig(n_clusters=clusters), train=TrainConfig(epochs=epochs, patience=3)
    )


def run(
    settings: Settings, config: ForecasterConfig, plot_tickers: list[str] | None = None
) -> QuickstartResult:
    # The run opens first: its duration is the job's and its loss curves grow while training.
    with tracking.training_run(settings, NAME) as opened:
        say(f"[dim]MLflow run {opened.info.run_id}: {tracking.run_url(settings, opened.info.run_id)}[/]")
        bars = load_sample()
        PriceStore(settings.price_dir).write(bars)
        say(f"[dim]stored {len(bars):,} sample bars in {settings.price_dir}[/]")
        model, model_dir = fit_and_save(bars, config, settings, NAME)
        print_forecast(model.predict(bars), model.regime_labels_)
        print_metrics(model.metrics_)
        plots = write_run_plots(model, bars, settings.reports_dir / NAME, plot_tickers)
        logged, decision = register_and_promote(model, bars, settings, NAME, tuple(plots))
    # The daily job once, with the champion: `forecaster runs` lists it and the API serves its rows.
    batch = batch_forecast.run(settings)
    say(
        f"[dim]batch job: {batch.rows_written} forecast rows of {', '.join(batch.forecast)} as of "
        f"{batch.as_of} stored ({settings.forecast_store_url.split('///')[-1]}); `forecaster runs` lists "
        "the job, `forecaster serve` answers GET /v1/forecasts/^GSPC[/]",
        highlight=False,
    )
    return QuickstartResult(model, model_dir, plots, logged.run_id, logged.version, decision)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--epochs", type=int, default=15, help="maximum training epochs (default 15)")
    parser.add_argument("--clusters", default="3", help="number of clusters, or 'auto' (default 3)")
    parser.add_argument(
        "--plot-tickers", help="comma-separated tickers to plot (default: every ticker of the run)"
    )
    args = parser.parse_args(argv)
    setup_logging()
    started = time.perf_counter()
    settings = Settings()
    tickers = split_tickers(args.plot_tickers)
    try:
        refuse_placeholders()  # a .env copied unchanged from .env.example
        result = run(settings, quickstart_config(args.epochs, parse_clusters(args.clusters)), tickers)
    except Exception as exc:  # one line naming what is wrong, credentials masked (--verbose: traceback)
        fail(*describe_error(exc))
    plots_dir = settings.reports_dir / NAME
    say(
        f"\nmodel:  {result.model_dir}\nplots:  {plots_dir} ({len(result.plots)} PNGs: "
        f"{', '.join(p.name for p in result.plots[:3])}, ...)\n"
        f"prices: {settings.price_dir}\n"
        f"mlflow: run {result.run_id}, {promotion_line(settings.model_name, result.decision)}\n"
        f"        tracking store {settings.tracking_uri}\n"
        f"        open the UI with `forecaster ui`, then {tracking.run_url(settings, result.run_id)}",
        highlight=False,
    )
    say(f"done in {time.perf_counter() - started:.0f} s on {result.model.device_}")


if __name__ == "__main__":
    main()
