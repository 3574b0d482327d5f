"""Scale-out verbs: the hyperparameter search on Ray Tune."""

from __future__ import annotations

from typing import Annotated

import typer

from forecaster.cli.common import exec_job, friendly_errors


@friendly_errors
def tune(
    trials: Annotated[int, typer.Option(help="Configurations to try.")] = 8,
    time_budget: Annotated[
        float | None, typer.Option(help="Seconds for the whole search; unfinished trials stop.")
    ] = None,
    cpus_per_trial: Annotated[float, typer.Option(help="CPUs each trial reserves.")] = 1,
    gpus_per_trial: Annotated[float, typer.Option(help="GPUs each trial reserves.")] = 0,
    epochs: Annotated[int, typer.Option(help="Maximum epochs per trial.")] = 30,
    name: Annotated[
        str | None, typer.Option(help="Model directory name under FORECASTER_HOME/models.")
    ] = None,
) -> None:
    """Search clusters, fuzzifier m, hidden size, learning rate, window and head on Ray Tune (ASHA).

    Every trial is an MLflow run nested under one parent run, with its per-epoch curves; the
    best finished configuration is retrained on the universe's bars, registered as
    `challenger` and sent through the promotion gate. Runs on the Ray cluster at RAY_ADDRESS,
    else on a Ray started on this machine. Runs `python -m pipelines.tune`.

    Examples:

      forecaster tune --trials 16 --time-budget 3600

      RAY_ADDRESS=ray-head:6379 forecaster tune --trials 64 --cpus-per-trial 2 --gpus-per-trial 0.5
    """
    args = ["--trials", str(trials), "--cpus-per-trial", str(cpus_per_trial)]
    args += ["--gpus-per-trial", str(gpus_per_trial), "--epochs", str(epochs)]
    args += ["--time-budget", str(time_budget)] if time_budget is not None else []
    args += ["--name", name] if name else []
    exec_job("pipelines.tune", *args)
