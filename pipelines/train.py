"""Retrain job: (ingest) -> bars of the universe -> fit -> evaluate -> register challenger -> promote.

Usage:
    python -m pipelines.train                     # embedded defaults: bundled sample, ./.forecaster
    python -m pipelines.train --epochs 5 --name nightly
    python -m pipelines.train --engine ray --workers 4   # Ray Train: DDP on 4 workers (RAY_ADDRESS)
    FORECASTER_SOURCE=yahoo python -m pipelines.train      # ingest first, then train on the price store
    FORECASTER_SOURCE=prices/ FORECASTER_UNIVERSE='["AAPL","MSFT"]' python -m pipelines.train

With source `yahoo` or `cache` the job first runs the ingest job and trains on the refreshed
price store; the bundled sample and local files are read as they are (`--no-ingest` skips it).
The fitted model is written to FORECASTER_HOME/models/<name>, logged to MLflow as a new version
of the registered model with the alias `challenger`, and promoted to `champion` only when it
beats the current champion on the same held-out windows. Every run is recorded in `job_runs`.
Settings come from FORECASTER_* variables (see forecaster.config.Settings).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
from sqlalchemy.engine import Engine

from forecaster import forecast_store, tracking
from forecaster.cli.common import describe_error, fail, split_tickers
from forecaster.config import ForecasterConfig, Settings, TrainConfig
from forecaster.data import DataSourceError, load_bars
from forecaster.data.universe import universe_tickers
from forecaster.evaluation.run_plots import write_run_plots
from forecaster.model import FuzzyLSTMForecaster
from forecaster.persistence import ensure_room, estimated_size
from forecaster.runtime.engine import ENGINES, use_engine
from forecaster.runtime.logs import setup_logging
from forecaster.runtime.placeholders import refuse_placeholders
from pipelines import ingest as ingest_job

log = logging.getLogger("pipelines.train")


@dataclass
class RetrainResult:
    model_dir: Path
    run_id: str | None = None  # MLflow run; None when not registered
    version: str | None = None
    promoted: bool = False
    reason: str = "not registered"


def load_universe(settings: Settings, source: str | None = None) -> pd.DataFrame:
    return load_bars(source or settings.source, universe_tickers(settings), price_dir=settings.price_dir)


def train(bars: pd.DataFrame, config: ForecasterConfig) -> FuzzyLSTMForecaster:
    return FuzzyLSTMForecaster(config).fit(bars)


def fit_and_save(bars: pd.DataFrame, config: ForecasterConfig, settings: Settings, name: str):
    """Fit on `bars` and write the model directory FORECASTER_HOME/models/<name>: (model, path).

    On the `ray` engine the fit is distributed: DDP on `settings.train_workers` Ray Train workers.
    """
    path = settings.models_dir / name
    ensure_room(path, estimated_size(config.to_dict()))  # a full disk fails now, not after the fit
    if settings.engine == "ray":
        from forecaster.scale.distributed import fit_distributed

        model = fit_distributed(
            bars,
            config,
            workers=settings.train_workers,
            use_gpu=settings.train_use_gpu,
            storage=settings.home / "ray_results",
        )
    else:
        model = train(bars, config)
    return model, model.save(path)


def register_and_promote(
    model: FuzzyLSTMForecaster,
    bars: pd.DataFrame,
    settings: Settings,
    name: str,
    plots: tuple[Path, ...] = (),
) -> tuple[tracking.LoggedModel, tracking.PromotionDecision]:
    """Log the run, register the model as `challenger`, and promote it if it beats the champion."""
    logged = tracking.log_training_run(model, bars, settings, run_name=name, plots=plots)
    return logged, tracking.promote(settings, bars)


def run(
    settings: Settings,
    config: ForecasterConfig,
    name: str | None = None,
    *,
    ingest: bool | None = None,
    register: bool = True,
    engine: Engine | None = None,
    plot_tickers: list[str] | None = None,
) -> RetrainResult:
    """The job; `ingest=None` ingests when the source is `yahoo` or `cache`.

    A registered run gets the plots of `forecaster.evaluation.run_plots` for `plot_tickers` (default: the
    first tickers of the universe) in FORECASTER_HOME/reports/<name>, logged with the run.
    """

    use_engine(settings)  # FORECASTER_ENGINE=ray: a cluster that cannot be reached fails now
    engine = engine or forecast_store.connect(settings.forecast_store_url)
    name = name or datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    # A registered run opens first, as the quickstart's does: its duration is the job's, its loss
    # curves grow in the UI while the experts train, and a failure ends it as FAILED.
    opened = tracking.training_run(settings, name) if register else contextlib.nullcontext()
    with forecast_store.record_run(engine, "retrain") as record, opened:
        source = settings.source
        if ingest_job.feeds_price_store(settings) if ingest is None else ingest:
            report = ingest_job.run(settings, engine=engine)
            if report.exit_code(settings.ingest_max_failure_share):
                raise DataSourceError(
                    f"ingest failed for {len(report.failed)} of {len(report.outcomes)} tickers"
                )
            source = "cache"  # train on what was just stored, not a second download
        bars = load_universe(settings, source)
        model, model_dir = fit_and_save(bars, config, settings, name)
        result = RetrainResult(model_dir)
        metrics = model.metrics_
        log.info(
            "model %s: val Theil's U %.3f, test %.3f (naive = 1)",
            result.model_dir,
            metrics["val_theil_u"],
            metrics.get("test_theil_u", float("nan")),
        )
        record.counts = {"tickers": int(bars["ticker"].nunique()), "bars": len(bars)}
        quarantine = bars.attrs.get("quarantine")
        if quarantine is not None and not quarantine.empty:  # left out, not lost: the run says which and why
            record.counts["quarantined"] = "; ".join(str(e) for e in quarantine.entries)
            log.warning("quarantined:\n%s", quarantine)
        record.counts |= {
            k: round(float(metrics[k]), 6)
            for k in ("val_pinball", "test_pinball", "val_rmse")
            if k in metrics
        }
        if register:
            plots = write_run_plots(model, bars, settings.reports_dir / name, plot_tickers)
            logged, decision = register_and_promote(model, bars, settings, name, tuple(plots))
            result.run_id, result.version = logged.run_id, logged.version
            result.promoted, result.reason = decision.promoted, decision.reason
            record.counts |= {"version": logged.version, "promoted": decision.promoted}
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--epochs", type=int, default=TrainConfig.epochs)
    parser.add_argument(
        "--name", help="model directory name under FORECASTER_HOME/models (default: UTC time)"
    )
    parser.add_argument(
        "--ingest",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="run the ingest job first (default: for sources yahoo and cache)",
    )
    parser.add_argument("--no-register", action="store_true", help="only write the model directory")
    parser.add_argument(
        "--engine", choices=ENGINES, help="local or ray (default FORECASTER_ENGINE, else local)"
    )
    parser.add_argument("--workers", type=int, help="Ray Train workers on the ray engine (default 2)")
    parser.add_argument("--plot-tickers", help="comma-separated tickers to plot (default: the first 10)")
    args = parser.parse_args(argv)
    setup_logging()
    config = ForecasterConfig(train=TrainConfig(epochs=args.epochs))
    tickers = split_tickers(args.plot_tickers)
    overrides = {"engine": args.engine, "train_workers": args.workers}
    try:
        refuse_placeholders()  # a .env copied unchanged from .env.example
        result = run(
            Settings(**{k: v for k, v in overrides.items() if v is not None}),
            config,
            args.name,
            ingest=args.ingest,
            register=not args.no_register,
            plot_tickers=tickers,
        )
    except Exception as exc:  # one line naming what is wrong, credentials masked (--verbose: traceback)
        fail(*describe_error(exc))
    print(result.model_dir)


if __name__ == "__main__":
    main()
