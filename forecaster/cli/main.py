"""The `forecaster` command: every verb, registered in the order `--help` lists them.

Every verb has `--help` with examples. Bad input ends with a one-line error naming what is
wrong and exit code 2, never a stack trace (`--verbose` shows it).
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from forecaster.cli import model_work, operations, products, registry, scale
from forecaster.cli.common import fail
from forecaster.cli.helptext import fit_typer_help, reflow
from forecaster.cli.render import console_width
from forecaster.runtime.logs import setup_logging
from forecaster.runtime.placeholders import placeholder_problem

# Help at the terminal's width, or COLUMNS (else 80) when piped: `| less` and README generators
# get what an 80-column terminal shows. TERMINAL_WIDTH, Typer's own setting, still wins.
fit_typer_help(console_width(sys.stdout))

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
    if problem := placeholder_problem():  # a .env copied unchanged: stop before any verb starts
        fail(problem)


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
    app.command(help=reflow(verb.__doc__))(verb)  # prose re-wrapped at the width, examples kept
