"""What the verbs share: one-line errors, the options that read bars, config from options."""

from __future__ import annotations

import functools
import os
import sys
from typing import Annotated

import typer

from forecaster.cli.render import console, err_console
from forecaster.config import (
    ClusterConfig,
    ExpertConfig,
    ForecasterConfig,
    Settings,
    TrainConfig,
    WindowConfig,
)


def friendly_errors(func):
    """Turn expected failures (bad data, bad options, missing files) into one clear line, exit code 2."""

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
EngineOpt = Annotated[
    str | None,
    typer.Option(
        help="Where the work runs: 'local' (this process) or 'ray' (the cluster at RAY_ADDRESS, "
        "else a Ray started here). Default FORECASTER_ENGINE, else local."
    ),
]


def engine_settings(engine: str | None) -> Settings:
    """Settings with --engine (when given) over FORECASTER_ENGINE."""
    return Settings(engine=engine) if engine else Settings()


def load(source: str, tickers, start, end, settings: Settings):
    """Bars from a source, with a one-line summary of what was read."""
    from forecaster.data import load_bars

    bars = load_bars(source, tickers or None, start, end, price_dir=settings.price_dir)
    console.print(
        f"[dim]{len(bars):,} bars of {', '.join(sorted(bars['ticker'].unique()))} "
        f"from {bars['date'].min().date()} to {bars['date'].max().date()}[/]"
    )
    return bars


def parse_clusters(value: str) -> int | str:
    if value == "auto":
        return value
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"--clusters must be an integer >= 2 or 'auto', got {value!r}") from None


def build_config(
    *,
    window: int,
    horizon: int,
    clusters: str,
    hidden: int,
    epochs: int,
    patience: int,
    batch_size: int,
    lr: float,
    device: str,
    seed: int,
    features: str = ",".join(WindowConfig.features),
    fuzzifier: float = ClusterConfig.m,
    layers: int = ExpertConfig.num_layers,
    fine_tune_epochs: int = TrainConfig.fine_tune_epochs,
) -> ForecasterConfig:
    """The model configuration from command-line options (the one place verbs build it)."""
    return ForecasterConfig(
        window=WindowConfig(window=window, horizon=horizon, features=tuple(features.split(","))),
        cluster=ClusterConfig(n_clusters=parse_clusters(clusters), m=fuzzifier, random_state=seed),
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


def exec_job(module: str, *args: str) -> None:
    """Replace this process with `python -m <module>` (a job in `pipelines/`).

    `forecaster/` never imports `pipelines/`; exec (not a child process) also lets SIGTERM
    from a supervisor reach the job itself.
    """
    command = [sys.executable, "-m", module, *args]
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(command[0], command)
