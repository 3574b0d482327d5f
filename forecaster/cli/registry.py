"""The registry: promote a challenger, list versions, open the MLflow UI."""

from __future__ import annotations

import os
import sys
from typing import Annotated

import typer

from forecaster.cli.common import SourceOpt, friendly_errors
from forecaster.cli.render import print_versions, say
from forecaster.config import Settings


@friendly_errors
def promote(
    metric: Annotated[
        str,
        typer.Option(
            help="Lower-is-better metric: pinball (default: the distribution), winkler_80, winkler_95, "
            "rmse, mae, mape, return_rmse, theil_u."
        ),
    ] = "pinball",
    source: SourceOpt = "",
) -> None:
    """Make the `challenger` the `champion` if it beats it on the same held-out windows.

    Both versions forecast the challenger's held-out block of the bars it was trained on; the
    decision and both scores are recorded as tags of the challenger's model version.

    Examples:

      forecaster promote

      forecaster promote --metric winkler_80 --source cache
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
    say(f"{settings.model_name} v{decision.challenger_version}: {verdict} ({decision.reason})")


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
        say(f"no versions of {settings.model_name!r} in {settings.tracking_uri}")
        return
    print_versions(rows, f"{settings.model_name} in {settings.tracking_uri}")


def ui(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port of the MLflow UI.")] = 5000,
) -> None:
    """Start the MLflow UI on the local store (runs, curves, plots, registry).

    Sized for one person on this machine: one worker, and none of the job-queue consumers the
    MLflow server starts for GenAI jobs.

    Example:

      forecaster ui --port 5050
    """
    settings = Settings()
    settings.home.mkdir(parents=True, exist_ok=True)
    if settings.mlflow_uri:
        say(f"tracking goes to {settings.mlflow_uri}: open its UI there")
        raise typer.Exit(0)
    from forecaster import tracking

    command = ui_command(settings.tracking_uri, host, port)
    say(f"[dim]{' '.join(command[1:])}[/]")
    say(f"MLflow UI: training runs at {tracking.ui_url(settings, f'http://{host}:{port}')}")
    sys.stdout.flush()
    for name, value in UI_ENVIRONMENT.items():
        os.environ.setdefault(name, value)
    os.execv(command[0], command)


# The UI for one person on this machine: MLflow's server defaults serve a team (4 workers, and
# 7 job-queue consumers for GenAI jobs this project never runs), and warn about its own deprecations.
UI_ENVIRONMENT = {
    "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
    # Starlette's own deprecation class is a UserWarning: matched by its message.
    "PYTHONWARNINGS": "ignore::DeprecationWarning,ignore::FutureWarning,"
    "ignore:starlette.middleware.wsgi is deprecated",
}


def ui_command(tracking_uri: str, host: str, port: int) -> list[str]:
    """`python -m mlflow ui` on the local store, one worker."""
    return [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", tracking_uri,
            "--registry-store-uri", tracking_uri, "--host", host, "--port", str(port), "--workers", "1"]  # fmt: skip
