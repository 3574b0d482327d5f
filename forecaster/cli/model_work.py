"""Model work: train, forecast, backtest, and the quickstart main job."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from forecaster.cli.common import (
    EndOpt,
    EngineOpt,
    PlotTickersOpt,
    Refit,
    SourceOpt,
    StartOpt,
    StrictOpt,
    TickersOpt,
    build_config,
    check_device,
    engine_settings,
    exec_job,
    friendly_errors,
    load,
    parse_clusters,
    sample_tickers,
    split_tickers,
    with_market_ticker,
)
from forecaster.cli.render import print_backtest, print_forecast, print_metrics, say
from forecaster.config import ForecasterConfig, Settings, WindowConfig

# Options as Annotated aliases, as in `cli.common`, so a verb's signature reads one option a line.
# Model options of train and backtest (each verb keeps its own defaults, and help where they differ).
WindowOpt = Annotated[int, typer.Option(help="Trading days of history per window (L).")]
HorizonOpt = Annotated[int, typer.Option(help="Trading days to forecast (H).")]
HiddenOpt = Annotated[int, typer.Option(help="LSTM hidden size of each expert.")]
BatchSizeOpt = Annotated[int, typer.Option(help="Windows per mini-batch.")]
LrOpt = Annotated[float, typer.Option(help="Adam learning rate.")]
DeviceOpt = Annotated[str, typer.Option(help="auto, cpu, cuda, cuda:N or mps.")]
SeedOpt = Annotated[int, typer.Option(help="Seed for clustering and training.")]

# train's own options.
ModelDirOpt = Annotated[Path, typer.Option("--output", "-o", help="Model directory to write.")]
ConfigFileOpt = Annotated[
    Path | None,
    typer.Option(
        help="Model settings from a TOML, YAML or JSON file with the keys of a saved config.json "
        "(a saved config.json works as is); options given on the command line override it."
    ),
]
FeaturesOpt = Annotated[str, typer.Option(help="Comma-separated daily features.")]
TrainClustersOpt = Annotated[
    str, typer.Option(help="Number of clusters (experts), or 'auto' (Xie-Beni, 2..6).")
]
FuzzifierOpt = Annotated[float, typer.Option(help="Fuzzy c-means fuzzifier m (> 1).")]
LayersOpt = Annotated[int, typer.Option(help="LSTM layers per expert.")]
TrainEpochsOpt = Annotated[int, typer.Option(help="Maximum training epochs (early stopping may end sooner).")]
TrainPatienceOpt = Annotated[int, typer.Option(help="Epochs without validation improvement before stopping.")]
FineTuneOpt = Annotated[int, typer.Option(help="Joint fine-tune epochs of the fused output (0 = off).")]
PlotsOpt = Annotated[
    bool, typer.Option(help="Write the run's plots (fan chart, regimes, errors) to OUTPUT/plots.")
]

# forecast's own options.
CsvOpt = Annotated[Path | None, typer.Option(help="Bars from this CSV/Parquet file instead of --source.")]
ShownHorizonOpt = Annotated[
    int | None, typer.Option(help="Trading days to show, 1 up to the model's horizon (default all).")
]
CsvOutputOpt = Annotated[Path | None, typer.Option("--output", "-o", help="Also write the table as CSV.")]

# backtest's own options.
ReportDirOpt = Annotated[Path, typer.Option("--output", "-o", help="Folder for the report.")]
SampleOpt = Annotated[
    int | None, typer.Option(help="Backtest a random sample of this many tickers of the source (seeded).")
]
FirstOriginOpt = Annotated[str | None, typer.Option(help="First forecast origin (YYYY-MM-DD).")]
LastOriginOpt = Annotated[str | None, typer.Option(help="Last forecast origin (YYYY-MM-DD).")]
RefitEveryOpt = Annotated[int, typer.Option(help="Trading days between refits.")]
TrainDaysOpt = Annotated[
    int | None, typer.Option(help="Fixed training window in trading days per ticker; default expanding.")
]
ModelsOpt = Annotated[str, typer.Option(help="Comma-separated competitors (default all).")]
BacktestClustersOpt = Annotated[str, typer.Option(help="Number of clusters (experts), or 'auto'.")]
BacktestEpochsOpt = Annotated[int, typer.Option(help="Maximum training epochs per refit.")]
BacktestPatienceOpt = Annotated[int, typer.Option(help="Early-stopping patience in epochs.")]
TrackOpt = Annotated[bool, typer.Option(help="Log the run, its metrics and the report to MLflow.")]
RefitOpt = Annotated[
    Refit,
    typer.Option(
        help="cold: every refit trains the LSTMs from scratch; warm: from the previous fold's fit, "
        "for --warm-epochs (the baselines refit as usual)."
    ),
]
WarmEpochsOpt = Annotated[int, typer.Option(help="Epochs of each training stage of a warm refit.")]

MarketOpt = Annotated[
    str | None,
    typer.Option(
        help="Market context for the gate: 'universe' (equal-weight average of the tickers) or an "
        "index of the same source (^GSPC), loaded with them."
    ),
]
ContextInputsOpt = Annotated[
    bool, typer.Option("--context-inputs", help="The experts read the market context too (needs --market).")
]

FEATURES = ",".join(WindowConfig.features)
COMPETITORS = "naive,drift,arima,garch,ewma,historical,single_lstm,equal_weight,hard_cluster,fuzzy_mse,fuzzy"


@friendly_errors
def train(
    ctx: typer.Context,
    output: ModelDirOpt = Path("model"),
    config: ConfigFileOpt = None,
    source: SourceOpt = "sample",
    ticker: TickersOpt = None,
    strict: StrictOpt = False,
    start: StartOpt = None,
    end: EndOpt = None,
    window: WindowOpt = 30,
    horizon: HorizonOpt = 5,
    features: FeaturesOpt = FEATURES,
    clusters: TrainClustersOpt = "3",
    fuzzifier: FuzzifierOpt = 2.0,
    hidden: HiddenOpt = 64,
    layers: LayersOpt = 1,
    epochs: TrainEpochsOpt = 30,
    patience: TrainPatienceOpt = 5,
    batch_size: BatchSizeOpt = 256,
    lr: LrOpt = 1e-3,
    fine_tune_epochs: FineTuneOpt = 0,
    device: DeviceOpt = "auto",
    seed: SeedOpt = 0,
    market: MarketOpt = None,
    context_inputs: ContextInputsOpt = False,
    plots: PlotsOpt = True,
    plot_tickers: PlotTickersOpt = None,
) -> None:
    """Train a forecaster and write its model directory (and its plots in OUTPUT/plots).

    Examples:

      forecaster train -o models/spx --ticker ^GSPC --epochs 20

      forecaster train --config model.toml --epochs 5 -o models/quick

      forecaster train --config models/spx/config.json --source prices/ -o models/again

      forecaster train --source data/prices/ --clusters auto --device cuda -o models/universe

      forecaster train -t AAPL -t MSFT -t XOM --market ^GSPC --context-inputs -o models/ctx
    """
    settings = Settings()
    model_config = _checked_config(
        config, ctx, window=window, horizon=horizon, features=features, clusters=clusters, fuzzifier=fuzzifier,
        hidden=hidden, layers=layers, epochs=epochs, patience=patience, batch_size=batch_size, lr=lr,
        fine_tune_epochs=fine_tune_epochs, device=device, seed=seed, market=market,
        context_inputs=context_inputs,
    )  # fmt: skip
    from forecaster.persistence import ensure_room, estimated_size

    ensure_room(output, estimated_size(model_config.to_dict()))  # a full disk fails now, not after the fit
    tickers = with_market_ticker(ticker, model_config.window.market)
    bars = load(source, tickers, start, end, settings, strict=strict)
    model = _fit_and_save(model_config, bars, output)
    if plots:
        from forecaster.evaluation.run_plots import write_run_plots

        written = write_run_plots(model, bars, output / "plots", split_tickers(plot_tickers))
        say(f"{len(written)} plots in {output / 'plots'}")


def _checked_config(
    config_file: Path | None = None, ctx: typer.Context | None = None, **options
) -> ForecasterConfig:
    """The model configuration (see `build_config`), its device checked before any data is read."""
    model_config = build_config(config_file, ctx, **options)
    check_device(model_config.train.device)
    return model_config


def _fit_and_save(model_config: ForecasterConfig, bars, output: Path):
    """Fit a forecaster on `bars`, write it to `output` and print its metrics and how long it took."""
    from forecaster.model import FuzzyLSTMForecaster

    started = time.perf_counter()
    model = FuzzyLSTMForecaster(model_config).fit(bars)
    model.save(output)
    print_metrics(model.metrics_)
    say(
        f"trained on {model.device_} in {time.perf_counter() - started:.1f} s; model written to [bold]{output}[/]"
    )
    return model


@friendly_errors
def forecast(
    model_dir: Annotated[Path, typer.Argument(help="A model directory written by `forecaster train`.")],
    source: SourceOpt = "cache",
    ticker: TickersOpt = None,
    strict: StrictOpt = False,
    csv: CsvOpt = None,
    horizon: ShownHorizonOpt = None,
    output: CsvOutputOpt = None,
) -> None:
    """Forecast the next H trading days from the latest bars of each ticker.

    Examples:

      forecaster forecast .forecaster/models/quickstart --ticker ^GSPC

      forecaster forecast model/ --csv AAPL.csv --horizon 3 -o aapl_forecast.csv
    """
    from forecaster.model import FuzzyLSTMForecaster

    settings = Settings()
    model = FuzzyLSTMForecaster.load(model_dir)
    most = model.config.window.horizon
    if horizon is not None and not 1 <= horizon <= most:
        raise ValueError(f"--horizon must be between 1 and {most} (this model's horizon), got {horizon}")
    wanted = _with_context_tickers(ticker, model)
    if csv:
        bars = load(str(csv), wanted, None, None, settings, strict=strict, option="--csv")
    else:
        bars = load(source, wanted, None, None, settings, strict=strict)
    table = model.predict(bars)
    keep = table["ticker"].isin(ticker) if ticker else True
    table = table[keep & (table["horizon"] <= (horizon or most))].reset_index(drop=True)
    print_forecast(table, model.regime_labels_)
    if output:
        table.to_csv(output, index=False)
        say(f"written to {output}")


def _with_context_tickers(tickers: list[str] | None, model) -> list[str] | None:
    """The tickers to load: with market context, also those the model reads its context from."""
    from forecaster.serving import context_tickers

    return list(dict.fromkeys([*tickers, *context_tickers(model)])) if tickers else tickers


@friendly_errors
def quickstart(
    epochs: Annotated[int, typer.Option(help="Maximum training epochs.")] = 15,
    clusters: Annotated[str, typer.Option(help="Number of clusters, or 'auto'.")] = "3",
    plot_tickers: PlotTickersOpt = None,
) -> None:
    """The main job on embedded defaults: train on the bundled sample, forecast, report, plot.

    Stores the sample bars in the price cache, trains a small model on ^GSPC and ^IXIC
    (1999-2018), prints the next-5-day forecast and the validation/test metrics against the
    naive last-price forecast, writes PNG plots (a fan chart of the forecast per ticker, the
    regimes, errors by horizon), logs the run to MLflow and registers the model (champion when
    it beats the current one). Everything goes under FORECASTER_HOME (default ./.forecaster).
    Runs `python -m pipelines.quickstart`.

    Example:

      FORECASTER_HOME=/tmp/fc forecaster quickstart --epochs 5 --plot-tickers ^GSPC
    """
    parse_clusters(clusters)  # a bad option fails here, with the CLI's message
    extra = ["--plot-tickers", plot_tickers] if plot_tickers else []
    exec_job("pipelines.quickstart", "--epochs", str(epochs), "--clusters", clusters, *extra)


@friendly_errors
def backtest(
    output: ReportDirOpt = Path("backtest"),
    source: SourceOpt = "sample",
    ticker: TickersOpt = None,
    strict: StrictOpt = False,
    sample: SampleOpt = None,
    start: FirstOriginOpt = None,
    end: LastOriginOpt = None,
    refit_every: RefitEveryOpt = 250,
    train_days: TrainDaysOpt = None,
    refit: RefitOpt = Refit.cold,
    warm_epochs: WarmEpochsOpt = 3,
    models: ModelsOpt = COMPETITORS,
    window: WindowOpt = 30,
    horizon: HorizonOpt = 5,
    clusters: BacktestClustersOpt = "3",
    hidden: HiddenOpt = 32,
    epochs: BacktestEpochsOpt = 6,
    patience: BacktestPatienceOpt = 2,
    batch_size: BatchSizeOpt = 512,
    lr: LrOpt = 2e-3,
    device: DeviceOpt = "auto",
    seed: SeedOpt = 0,
    market: MarketOpt = None,
    context_inputs: ContextInputsOpt = False,
    track: TrackOpt = True,
    engine: EngineOpt = None,
) -> None:
    """Walk-forward backtest of the fuzzy quantile ensemble against statistical and LSTM baselines.

    Competitors: naive, drift, ARIMA, GARCH(1,1)-t, EWMA, historical quantiles; one LSTM with the experts'
    parameters, the equal-weight and hard-gated twins, the fuzzy model with the MSE head (the patent's)
    or without the joint fine-tune, and the fuzzy quantile ensemble. Scores: pinball, Winkler 80/95,
    coverage (per volatility tercile, regime and year too), point errors, Diebold-Mariano tests.

    Every --refit-every trading days from --start to --end, every competitor is refitted on the bars up
    to that day only (--refit warm: the LSTMs from their previous fit), then forecasts 1..H days ahead
    from every origin until the next refit. Writes tables, plots and a report to --output. The defaults
    (hidden 32, at most 6 epochs, batches of 512) run the sample's 2010-2018 in 15 minutes on 2 cores.

    Examples:

      forecaster backtest --start 2010-01-01 --end 2018-12-31 -o reports/backtest

      forecaster backtest -t ^GSPC --start 2016-01-01 --refit-every 60 --models naive,arima,fuzzy

      forecaster backtest --source us-stocks.parquet --sample 30 --start 2012-01-01 --market universe -o bt/

      RAY_ADDRESS=ray-head:6379 forecaster backtest --source cache --engine ray   # folds as Ray tasks
    """
    settings, engine = _settings_and_engine(engine)  # an unreachable cluster fails now, before any work
    config = _checked_config(window=window, horizon=horizon, clusters=clusters, hidden=hidden, epochs=epochs,
                             patience=patience, batch_size=batch_size, lr=lr, device=device, seed=seed,
                             market=market, context_inputs=context_inputs, warm_epochs=warm_epochs)  # fmt: skip
    bars = _backtest_bars(source, ticker, strict, sample, seed, settings, config.window.market)
    origins = dict(start=start, end=end, refit_every=refit_every, train_days=train_days, refit=refit.value)
    summary = _walk_forward_and_report(bars, config, output, engine, models=models, **origins)
    if track:
        run = {"source": source, **origins, "models": models}
        _log_backtest(summary, output, run | config.flat(), bars, settings)


def _settings_and_engine(engine: str | None) -> tuple[Settings, str]:
    """Settings with --engine over FORECASTER_ENGINE, and that engine, started."""
    from forecaster.runtime.engine import use_engine

    settings = engine_settings(engine)
    return settings, use_engine(settings)


def _backtest_bars(
    source: str, ticker, strict: bool, sample: int | None, seed: int, settings: Settings, market
):
    """Every bar of the source (or of a seeded `sample` of its tickers, and the market index's)."""
    # All bars are loaded: targets of the last origins lie after --end, and training before --start.
    bars = load(source, with_market_ticker(ticker, market), None, None, settings, strict=strict)
    if sample:
        index = bars[bars["ticker"] == market]
        bars = sample_tickers(bars[bars["ticker"] != market], sample, seed)
        import pandas as pd

        bars = pd.concat([bars, index], ignore_index=True) if len(index) else bars
    return bars


def _walk_forward_and_report(
    bars, config, output: Path, engine: str, *, models: str, start, end, refit_every, train_days, refit
):
    """Run the walk-forward backtest, write its report to `output` and print its summary table."""
    from forecaster.evaluation.backtest import walk_forward
    from forecaster.evaluation.report import summary_table, write_report

    started = time.perf_counter()
    result = walk_forward(
        bars,
        config,
        start=start,
        end=end,
        refit_every=refit_every,
        train_days=train_days,
        refit=refit,
        models=[m.strip() for m in models.split(",") if m.strip()],
        progress=None,
        engine=engine,
    )
    paths = write_report(result, output)
    summary = summary_table(result)
    print_backtest(summary)
    say(
        f"{len(result.folds)} folds in {time.perf_counter() - started:.0f} s; "
        f"report: [bold]{paths['report']}[/], plots and CSV tables in {output}"
    )
    return summary


def _log_backtest(summary, output: Path, params: dict, bars, settings: Settings) -> None:
    """Log the backtest run to MLflow, the tickers of its bars among its params, and say where."""
    from forecaster import tracking

    params = {"source": params["source"], "tickers": ",".join(sorted(bars["ticker"].unique())), **params}
    run_id = tracking.log_backtest_run(summary, Path(output), params, bars, settings)
    say(f"mlflow: backtest run {run_id} in {settings.tracking_uri}")
