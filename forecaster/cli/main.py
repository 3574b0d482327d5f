"""The `forecaster` command: every verb, registered in the order `--help` lists them.

Every verb has `--help` with examples. Bad input ends with a one-line error naming what is
wrong and exit code 2, never a stack trace.
"""

from __future__ import annotations

from typing import Annotated

import typer

from forecaster.cli import model_work, operations, registry, scale
from forecaster.logs import setup_logging

app = typer.Typer(
    help="Stock price forecasting with fuzzy-clustering-weighted LSTM experts.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


@app.callback()
def main(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log debug details.")] = False,
) -> None:
    setup_logging(verbose)


for verb in (
    model_work.quickstart,
    model_work.train,
    model_work.forecast,
    model_work.backtest,
    scale.tune,
    registry.promote,
    registry.models,
    registry.ui,
    operations.serve,
    operations.ingest,
    operations.schedule,
    operations.runs,
):
    app.command()(verb)
