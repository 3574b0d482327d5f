"""The `forecaster` command: quickstart, train, forecast.

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
    plots = [
        plot_forecast_vs_actual(
            test, model.predict_windows(test), "^GSPC", reports / "forecast_vs_actual.png"
        ),
        plot_memberships(
            windows,
            model.predict_windows(windows, intervals=False).memberships,
            "^GSPC",
            reports / "memberships.png",
        ),
    ]
    console.print(
        f"\nmodel:  {model_dir}\nplots:  {', '.join(str(p) for p in plots)}\nprices: {settings.price_dir}"
    )
    console.print(f"done in {time.perf_counter() - started:.0f} s on {model.device_}")


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


if __name__ == "__main__":
    app()
