"""The `forecaster` command: every verb, registered in the order `--help` lists them.

Every verb has `--help` with examples. Bad input ends with a one-line error naming what is
wrong and exit code 2, never a stack trace (`--verbose` shows it).
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer
import typer.rich_utils

from forecaster.cli import model_work, operations, products, registry, scale
from forecaster.runtime.logs import setup_logging

# Piped help (`forecaster train --help | less`, a README generator) would wrap at rich's 80
# columns, the option descriptions squeezed into a narrow column; TERMINAL_WIDTH still wins.
if not sys.stdout.isatty() and typer.rich_utils.MAX_WIDTH is None:
    typer.rich_utils.MAX_WIDTH = 100

app = typer.Typer(
    help="Stock price forecasting with fuzzy-clustering-weighted LSTM experts.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        from forecaster import __version__

        typer.echo(f"forecaster {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Log debug details; show the traceback of errors.")
    ] = False,
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit."),
    ] = False,
) -> None:
    setup_logging(verbose or None)  # None: FORECASTER_VERBOSE decides


for verb in (
    model_work.quickstart,
    model_work.train,
    model_work.forecast,
    model_work.backtest,
    products.risk,
    products.rank,
    scale.tune,
    registry.promote,
    registry.models,
    registry.ui,
    operations.serve,
    operations.ingest,
    operations.batch_forecast,
    operations.schedule,
    operations.runs,
):
    app.command()(verb)
