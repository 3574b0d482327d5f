"""The `forecaster` command: quickstart, train, forecast, backtest.

Every verb has `--help` with examples. Bad input ends with a one-line error naming what is
wrong and exit code 2, never a stack trace.
"""

from __future__ import annotations

import functools
import logging
import sys
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.table import Table

from forecaster.config import (
    ClusterConfig,
    ExpertConfig,
    ForecasterConfig,
    Settings,
    TrainConfig,
    WindowConfig,
)

app = typer.Typer(
    help="Stock price forecasting with fuzzy-clustering-weighted LSTM experts.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
# Piped output (logs, CI) would otherwise be cut to 80 columns and truncate the tables.
console = Console(width=None if sys.stdout.isatty() else 140)
err_console = Console(stderr=True, width=None if sys.stderr.isatty() else 140)


@app.callback()
def main(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log debug details.")] = False,
) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(message)s",
        handlers=[RichHandler(console=err_console, show_path=False)],
    )
    logging.captureWarnings(True)


def friendly_errors(func):
    """Turn expected failures (bad data, bad options, missing files) into one clear line."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        from forecaster.data import DataSourceError

        try:
            return func(*args, **kwargs)
        except (ValueError, FileNotFoundError, KeyError, DataSourceError) as exc:
            message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
            err_console.print(f"[bold red]error:[/] {message}")
            raise typer.Exit(2) from None

    return wrapper


# Options shared by the verbs that read bars.
SourceOpt = Annotated[
    str,
    typer.Option(
        help="Where bars come from: 'sample' (bundled S&P 500 / NASDAQ), 'cache' (the price "
        "store), 'yahoo', or a CSV/Parquet file or folder in yfinance's layout."
    ),
]
TickersOpt = Annotated[
    list[str] | None, typer.Option("--ticker", "-t", help="Ticker to use (repeatable); default all.")
]
StartOpt = Annotated[str | None, typer.Option(help="First date (YYYY-MM-DD).")]
EndOpt = Annotated[str | None, typer.Option(help="Last date (YYYY-MM-DD).")]


def _load(source: str, tickers, start, end, settings: Settings):
    from forecaster.data import load_bars

    bars = load_bars(source, tickers or None, start, end, price_dir=settings.price_dir)
    console.print(
        f"[dim]{len(bars):,} bars of {', '.join(sorted(bars['ticker'].unique()))} "
        f"from {bars['date'].min().date()} to {bars['date'].max().date()}[/]"
    )
    return bars


def _parse_clusters(value: str) -> int | str:
    if value == "auto":
        return value
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"--clusters must be an integer >= 2 or 'auto', got {value!r}") from None


@app.command()
@friendly_errors
def train(
    output: Annotated[Path, typer.Option("--output", "-o", help="Model directory to write.")] = Path("model"),
    source: SourceOpt = "sample",
    ticker: TickersOpt = None,
    start: StartOpt = None,
    end: EndOpt = None,
    window: Annotated[int, typer.Option(help="Trading days of history per window (L).")] = 30,
    horizon: Annotated[int, typer.Option(help="Trading days to forecast (H).")] = 5,
    features: Annotated[str, typer.Option(help="Comma-separated daily features.")] = "log_return,log_range",
    clusters: Annotated[
        str, typer.Option(help="Number of clusters (experts), or 'auto' (Xie-Beni, 2..6).")
    ] = "3",
    fuzzifier: Annotated[float, typer.Option(help="Fuzzy c-means fuzzifier m (> 1).")] = 2.0,
    hidden: Annotated[int, typer.Option(help="LSTM hidden size of each expert.")] = 64,
    layers: Annotated[int, typer.Option(help="LSTM layers per expert.")] = 1,
    epochs: Annotated[
        int, typer.Option(help="Maximum training epochs (early stopping may end sooner).")
    ] = 30,
    patience: Annotated[int, typer.Option(help="Epochs without validation improvement before stopping.")] = 5,
    batch_size: Annotated[int, typer.Option(help="Windows per mini-batch.")] = 256,
    lr: Annotated[float, typer.Option(help="Adam learning rate.")] = 1e-3,
    fine_tune_epochs: Annotated[
        int, typer.Option(help="Joint fine-tune epochs of the fused output (0 = off).")
    ] = 0,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda, cuda:N or mps.")] = "auto",
    seed: Annotated[int, typer.Option(help="Seed for clustering and training.")] = 0,
) -> None:
    """Train a forecaster and write its model directory.

    Examples:

      forecaster train -o models/spx --ticker ^GSPC --epochs 20

      forecaster train --source data/prices/ --clusters auto --device cuda -o models/universe
    """
    from forecaster.model import FuzzyLSTMForecaster

    settings = Settings()
    config = ForecasterConfig(
        window=WindowConfig(window=window, horizon=horizon, features=tuple(features.split(","))),
        cluster=ClusterConfig(n_clusters=_parse_clusters(clusters), m=fuzzifier, random_state=seed),
        expert=ExpertConfig(hidden_size=hidden, num_layers=layers),
        train=TrainConfig(
            epochs=epochs,
            patience=patience,
            batch_size=batch_size,
            lr=lr,
            fine_tune_epochs=fine_tune_epochs,
            device=device,
            seed=seed,
        ),
    )
    bars = _load(source, ticker, start, end, settings)
    started = time.perf_counter()
    model = FuzzyLSTMForecaster(config).fit(bars)
    model.save(output)
    _print_metrics(model.metrics_)
    console.print(
        f"trained on {model.device_} in {time.perf_counter() - started:.1f} s; model written to [bold]{output}[/]"
    )


@app.command()
@friendly_errors
def forecast(
    model_dir: Annotated[Path, typer.Argument(help="A model directory written by `forecaster train`.")],
    source: SourceOpt = "cache",
    ticker: TickersOpt = None,
    csv: Annotated[
        Path | None, typer.Option(help="Bars from this CSV/Parquet file instead of --source.")
    ] = None,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Also write the table as CSV.")
    ] = None,
) -> None:
    """Forecast the next H trading days from the latest bars of each ticker.

    Examples:

      forecaster forecast .forecaster/models/quickstart --ticker ^GSPC

      forecaster forecast model/ --csv AAPL.csv -o aapl_forecast.csv
    """
    from forecaster.model import FuzzyLSTMForecaster

    settings = Settings()
    model = FuzzyLSTMForecaster.load(model_dir)
    bars = _load(str(csv) if csv else source, ticker, None, None, settings)
    table = model.predict(bars)
    _print_forecast(table)
    if output:
        table.to_csv(output, index=False)
        console.print(f"written to {output}")


@app.command()
@friendly_errors
def quickstart(
    epochs: Annotated[int, typer.Option(help="Maximum training epochs.")] = 15,
    clusters: Annotated[str, typer.Option(help="Number of clusters, or 'auto'.")] = "3",
) -> None:
    """The main job on embedded defaults: train on the bundled sample, forecast, report, plot.

    Stores the sample bars in the price cache, trains a small model on ^GSPC and ^IXIC
    (1999-2018), prints the next-5-day forecast and the validation/test metrics against the
    naive last-price forecast, and writes PNG plots. Everything goes under FORECASTER_HOME
    (default ./.forecaster).

    Example:

      FORECASTER_HOME=/tmp/fc forecaster quickstart --epochs 5
    """
    from forecaster import tracking
    from forecaster.data import PriceStore, load_sample
    from forecaster.model import FuzzyLSTMForecaster
    from forecaster.plots import plot_forecast_vs_actual, plot_memberships
    from forecaster.windows import make_windows, split_windows

    started = time.perf_counter()
    settings = Settings()
    bars = load_sample()
    PriceStore(settings.price_dir).write(bars)
    console.print(f"[dim]stored {len(bars):,} sample bars in {settings.price_dir}[/]")
    config = ForecasterConfig(
        cluster=ClusterConfig(n_clusters=_parse_clusters(clusters)),
        train=TrainConfig(epochs=epochs, patience=3),
    )
    model = FuzzyLSTMForecaster(config).fit(bars)
    model_dir = model.save(settings.models_dir / "quickstart")

    _print_forecast(model.predict(bars))
    _print_metrics(model.metrics_)

    windows = make_windows(bars, config.window)
    test = split_windows(windows, config.window)["test"]
    reports = settings.reports_dir / "quickstart"
    plots = (
        plot_forecast_vs_actual(
            test, model.predict_windows(test), "^GSPC", reports / "forecast_vs_actual.png"
        ),
        plot_memberships(
            windows,
            model.predict_windows(windows, intervals=False).memberships,
            "^GSPC",
            reports / "memberships.png",
        ),
    )
    logged = tracking.log_training_run(model, bars, settings, run_name="quickstart", plots=plots)
    decision = tracking.promote(settings, bars)
    console.print(
        f"\nmodel:  {model_dir}\nplots:  {', '.join(str(p) for p in plots)}\nprices: {settings.price_dir}\n"
        f"mlflow: run {logged.run_id}, {settings.model_name} v{logged.version} "
        f"({'champion' if decision.promoted else 'challenger'}: {decision.reason}) in {settings.tracking_uri}\n"
        "        open the UI with `forecaster ui`, then http://127.0.0.1:5000"
    )
    console.print(f"done in {time.perf_counter() - started:.0f} s on {model.device_}")


@app.command()
@friendly_errors
def backtest(
    output: Annotated[Path, typer.Option("--output", "-o", help="Folder for the report.")] = Path("backtest"),
    source: SourceOpt = "sample",
    ticker: TickersOpt = None,
    start: Annotated[str | None, typer.Option(help="First forecast origin (YYYY-MM-DD).")] = None,
    end: Annotated[str | None, typer.Option(help="Last forecast origin (YYYY-MM-DD).")] = None,
    refit_every: Annotated[int, typer.Option(help="Trading days between refits.")] = 250,
    train_days: Annotated[
        int | None,
        typer.Option(help="Fixed training window in trading days per ticker; default expanding."),
    ] = None,
    models: Annotated[
        str, typer.Option(help="Comma-separated competitors (default all).")
    ] = "naive,drift,arima,single_lstm,equal_weight,hard_cluster,fuzzy",
    window: Annotated[int, typer.Option(help="Trading days of history per window (L).")] = 30,
    horizon: Annotated[int, typer.Option(help="Trading days to forecast (H).")] = 5,
    clusters: Annotated[str, typer.Option(help="Number of clusters (experts), or 'auto'.")] = "3",
    hidden: Annotated[int, typer.Option(help="LSTM hidden size of each expert.")] = 32,
    epochs: Annotated[int, typer.Option(help="Maximum training epochs per refit.")] = 6,
    patience: Annotated[int, typer.Option(help="Early-stopping patience in epochs.")] = 2,
    batch_size: Annotated[int, typer.Option(help="Windows per mini-batch.")] = 512,
    lr: Annotated[float, typer.Option(help="Adam learning rate.")] = 2e-3,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda, cuda:N or mps.")] = "auto",
    seed: Annotated[int, typer.Option(help="Seed for clustering and training.")] = 0,
    track: Annotated[bool, typer.Option(help="Log the run, its metrics and the report to MLflow.")] = True,
) -> None:
    """Walk-forward backtest of the fuzzy ensemble against naive, drift, ARIMA and LSTM baselines.

    Every --refit-every trading days from --start to --end, every competitor is refitted on the
    bars up to that day only, then forecasts 1..H days ahead from every origin until the next
    refit. Writes tables (CSV, Markdown) and plots (PNG) to --output and prints the summary.
    The defaults (hidden 32, at most 6 epochs of batches of 512) keep the bundled sample with
    origins 2010-2018 under 15 minutes on 2 CPU cores.

    Examples:

      forecaster backtest --start 2010-01-01 --end 2018-12-31 -o reports/backtest

      forecaster backtest -t ^GSPC --start 2016-01-01 --refit-every 60 --models naive,arima,fuzzy

      forecaster backtest --source prices/ --train-days 1000 --epochs 20 --device cuda -o bt/
    """
    from forecaster.evaluation import summary_table, walk_forward, write_report

    settings = Settings()
    config = ForecasterConfig(
        window=WindowConfig(window=window, horizon=horizon),
        cluster=ClusterConfig(n_clusters=_parse_clusters(clusters), random_state=seed),
        expert=ExpertConfig(hidden_size=hidden),
        train=TrainConfig(
            epochs=epochs, patience=patience, batch_size=batch_size, lr=lr, device=device, seed=seed
        ),
    )
    # All bars are loaded: targets of the last origins lie after --end, and training before --start.
    bars = _load(source, ticker, None, None, settings)
    started = time.perf_counter()
    result = walk_forward(
        bars,
        config,
        start=start,
        end=end,
        refit_every=refit_every,
        train_days=train_days,
        models=[m.strip() for m in models.split(",") if m.strip()],
        progress=None,
    )
    paths = write_report(result, output)
    summary = summary_table(result)
    _print_backtest(summary)
    console.print(
        f"{len(result.folds)} folds in {time.perf_counter() - started:.0f} s; "
        f"report: [bold]{paths['report']}[/], plots and CSV tables in {output}"
    )
    if track:
        from forecaster import tracking

        params = {"source": source, "tickers": ",".join(ticker or []) or "all", "start": start, "end": end,
                  "refit_every": refit_every, "train_days": train_days, "models": models, **config.flat()}  # fmt: skip
        run_id = tracking.log_backtest_run(summary, Path(output), params, bars, settings)
        console.print(f"mlflow: backtest run {run_id} in {settings.tracking_uri}")


def _print_backtest(summary) -> None:
    n = int(summary["n"].iloc[0]) if len(summary) else 0
    out = Table(title=f"Walk-forward backtest: {n:,} forecasts per model (tickers x origins x horizons)")
    columns = {  # summary column: (header, format)
        "model": ("model", "{}"),
        "rmse": ("RMSE", "{:,.2f}"),
        "mase": ("MASE", "{:.3f}"),
        "theil_u": ("Theil U", "{:.4f}"),
        "return_theil_u": ("U (return)", "{:.4f}"),
        "direction": ("direction", "{:.1%}"),
        "coverage_80": ("80%", "{:.1%}"),
        "coverage_95": ("95%", "{:.1%}"),
        "dm_p_vs_naive": ("p vs naive", "{:.3f}"),
        "dm_p_vs_single_lstm": ("p vs single", "{:.3f}"),
    }
    columns = {k: v for k, v in columns.items() if k in summary}
    for header, _ in columns.values():
        out.add_column(header, justify="right", no_wrap=True)
    for r in summary.to_dict("records"):
        out.add_row(*("-" if r[k] != r[k] else fmt.format(r[k]) for k, (_, fmt) in columns.items()))
    console.print(out)
    console.print(
        "[dim]Theil U = RMSE / naive RMSE (price; return: on cumulative log returns); below 1 beats "
        "the naive last-price forecast. dm p: Diebold-Mariano p-value (HLN-corrected) of the "
        "squared log-return errors against that reference.[/]"
    )


def _print_forecast(table) -> None:
    levels = sorted(int(c.split("_")[1]) for c in table.columns if c.startswith("lower_"))
    members = [c for c in table.columns if c.startswith("u_")]
    as_of = ", ".join(sorted({str(d.date()) for d in table["as_of"]}))
    out = Table(title=f"Forecast of the adjusted close, as of {as_of}")
    for name in [
        "ticker",
        "h",
        "date",
        "last",
        "forecast",
        *[f"{p}% interval" for p in levels],
        "memberships",
    ]:
        out.add_column(name, justify="right", no_wrap=True)
    for r in table.to_dict("records"):
        out.add_row(
            r["ticker"],
            str(r["horizon"]),
            str(r["target_date"].date()),
            f"{r['last_price']:,.2f}",
            f"{r['forecast']:,.2f}",
            *[f"{r[f'lower_{p}']:,.0f}-{r[f'upper_{p}']:,.0f}" for p in levels],
            " ".join(f"{r[m]:.2f}" for m in members),
        )
    console.print(out)


def _print_metrics(metrics: dict) -> None:
    out = Table(title="Accuracy over all horizons, against the naive last-price forecast")
    for name in [
        "split",
        "windows",
        "RMSE",
        "naive",
        "Theil U",
        "MAPE %",
        "naive",
        "direction",
        "80%",
        "95%",
    ]:
        out.add_column(name, justify="right", no_wrap=True)
    for split in ("val", "test"):
        if f"{split}_rmse" not in metrics:
            continue
        m = {k.removeprefix(f"{split}_"): v for k, v in metrics.items() if k.startswith(f"{split}_")}
        out.add_row(
            split,
            str(metrics[f"n_windows_{split}"]),
            f"{m['rmse']:.2f}",
            f"{m['naive_rmse']:.2f}",
            f"{m['theil_u']:.3f}",
            f"{m['mape']:.3f}",
            f"{m['naive_mape']:.3f}",
            f"{m['directional_accuracy']:.1%}",
            f"{m.get('coverage_80', float('nan')):.1%}",
            f"{m.get('coverage_95', float('nan')):.1%}",
        )
    console.print(out)
    console.print(
        f"[dim]{metrics['n_clusters']} clusters; FPC {metrics['cluster_fpc']:.2f} (uniform would be "
        f"{metrics['cluster_uniform_fpc']:.2f}), mean largest membership {metrics['cluster_mean_max_membership']:.2f}. "
        "Theil U = RMSE / naive RMSE: below 1 beats the naive forecast. 80%/95%: measured "
        "coverage of the conformal intervals.[/]"
    )


@app.command()
@friendly_errors
def promote(
    metric: Annotated[
        str, typer.Option(help="Lower-is-better metric: rmse, mae, mape, return_rmse, theil_u.")
    ] = "rmse",
    source: SourceOpt = "",
) -> None:
    """Make the `challenger` the `champion` if it beats it on the same held-out windows.

    Both versions forecast the challenger's held-out block of the bars it was trained on; the
    decision and both scores are recorded as tags of the challenger's model version.

    Examples:

      forecaster promote

      forecaster promote --metric return_rmse --source cache
    """
    from forecaster import tracking
    from forecaster.data import load_bars

    settings = Settings()
    tracking.configure(settings)
    challenger = tracking.challenger_fingerprint(settings)
    bars = load_bars(
        source or settings.source,
        challenger["tickers"],
        challenger["start"],
        challenger["end"],
        price_dir=settings.price_dir,
    )
    decision = tracking.promote(settings, bars, metric)
    verdict = "[bold green]promoted[/]" if decision.promoted else "[bold yellow]not promoted[/]"
    console.print(f"{settings.model_name} v{decision.challenger_version}: {verdict} ({decision.reason})")


@app.command()
@friendly_errors
def models() -> None:
    """List the registered model's versions with their aliases and key metrics.

    Example:

      MLFLOW_TRACKING_URI=http://127.0.0.1:5000 forecaster models
    """
    from forecaster import tracking

    settings = Settings()
    rows = tracking.list_versions(settings)
    if not rows:
        console.print(f"no versions of {settings.model_name!r} in {settings.tracking_uri}")
        return
    out = Table(title=f"{settings.model_name} in {settings.tracking_uri}")
    for name in rows[0]:
        out.add_column(name, no_wrap=True)
    for row in rows:
        out.add_row(*(str(v) for v in row.values()))
    console.print(out)


@app.command()
def ui(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port of the MLflow UI.")] = 5000,
) -> None:
    """Start the MLflow UI on the local store (runs, curves, plots, registry).

    Example:

      forecaster ui --port 5050
    """
    import os

    settings = Settings()
    settings.home.mkdir(parents=True, exist_ok=True)
    if settings.mlflow_uri:
        console.print(f"tracking goes to {settings.mlflow_uri}: open its UI there")
        raise typer.Exit(0)
    command = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", settings.tracking_uri]
    command += ["--host", host, "--port", str(port)]
    console.print(f"MLflow UI on http://{host}:{port}  ({' '.join(command[1:])})")
    os.execv(command[0], command)


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port of the API.")] = 8000,
    workers: Annotated[int, typer.Option(help="Worker processes (each loads the model once).")] = 1,
) -> None:
    """Serve the prediction API (FastAPI on uvicorn); OpenAPI docs at /docs.

    The model comes from FORECASTER_MODEL_URI (default models:/fcm-lstm@champion, hot-reloaded
    when the alias moves; a local model directory works too).

    Examples:

      forecaster serve --port 8000 --workers 2

      FORECASTER_API_KEYS=secret1,secret2 forecaster serve --host 0.0.0.0
    """
    import uvicorn

    uvicorn.run(
        "service.main:create_app", factory=True, host=host, port=port, workers=workers, log_level="info"
    )


def _exec_job(module: str, *args: str) -> None:
    """Replace this process with `python -m pipelines.<job>`.

    `forecaster/` never imports `pipelines/`; exec (not a child process) also lets SIGTERM
    from a supervisor reach the job itself.
    """
    import os

    command = [sys.executable, "-m", module, *args]
    os.execv(command[0], command)


@app.command()
@friendly_errors
def ingest(
    full: Annotated[bool, typer.Option("--full", help="Re-download every ticker's whole history.")] = False,
) -> None:
    """Download the universe's daily bars from Yahoo Finance into the price store.

    Incremental: only the days after what the store holds (re-reading a few days to catch
    revisions), with retries on rate limits and network errors. A failing ticker is reported
    and the others go on; the exit code is 1 when more than FORECASTER_INGEST_MAX_FAILURE_SHARE
    of them fail. Runs `python -m pipelines.ingest`.

    Examples:

      FORECASTER_UNIVERSE='["AAPL","MSFT","^GSPC"]' forecaster ingest

      FORECASTER_UNIVERSE_FILE=universe.txt forecaster ingest --full
    """
    settings = Settings()
    console.print(f"[dim]ingesting {len(settings.universe_tickers())} tickers into {settings.price_dir}[/]")
    _exec_job("pipelines.ingest", *(["--full"] if full else []))


@app.command()
@friendly_errors
def schedule() -> None:
    """Run the scheduler: ingest + batch forecast after the US close on trading days, retrain weekly.

    Cron lines come from FORECASTER_SCHEDULE_DAILY (default "30 18 * * mon-fri") and
    FORECASTER_SCHEDULE_RETRAIN ("0 6 * * sat") in FORECASTER_SCHEDULE_TIMEZONE
    (America/New_York); exchange holidays are skipped. One instance of a job at a time, also
    across processes sharing the forecast store. SIGTERM finishes the running step and exits.
    Runs `python -m pipelines.scheduler`.

    Examples:

      forecaster schedule

      FORECASTER_FORECAST_STORE_URL=postgresql://postgres@127.0.0.1/forecasts forecaster schedule
    """
    settings = Settings()
    settings.universe_tickers()  # a bad universe fails now, not at 18:30
    _exec_job("pipelines.scheduler")


@app.command()
@friendly_errors
def runs(
    limit: Annotated[int, typer.Option(help="How many runs to show.")] = 20,
    job: Annotated[str | None, typer.Option(help="Only this job: ingest, batch_forecast or retrain.")] = None,
) -> None:
    """List recent job runs (ingest, batch forecast, retrain) from the forecast store.

    Examples:

      forecaster runs

      forecaster runs --job batch_forecast --limit 5
    """
    from forecaster import forecast_store

    settings = Settings()
    rows = forecast_store.recent_runs(forecast_store.connect(settings.forecast_store_url), limit, job)
    if not rows:
        console.print("no job runs recorded yet")
        return
    out = Table(title="Recent job runs (times UTC)")
    for name in ("id", "job", "started", "took", "status", "counts", "error"):
        out.add_column(name, no_wrap=name not in ("counts", "error"))
    colours = {"ok": "green", "partial": "yellow", "failed": "red", "running": "cyan"}
    for r in rows:
        took = f"{(r['finished_at'] - r['started_at']).total_seconds():.1f} s" if r["finished_at"] else "-"
        status = r["status"]
        out.add_row(
            str(r["id"]),
            r["job"],
            r["started_at"].strftime("%Y-%m-%d %H:%M:%S"),
            took,
            f"[{colours.get(status, 'white')}]{status}[/]",
            ", ".join(f"{k}={v}" for k, v in (r["counts"] or {}).items()),
            (r["error"] or "")[:300],
        )
    console.print(out)


if __name__ == "__main__":
    app()
