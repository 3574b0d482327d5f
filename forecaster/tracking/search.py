"""A hyperparameter search in MLflow: one parent run, every trial a nested run with its curves."""

from __future__ import annotations

import mlflow
from mlflow.tracking import MlflowClient

from forecaster.config import Settings
from forecaster.tracking.runs import _git_state
from forecaster.tracking.setup import configure


def log_search(result, settings: Settings, params: dict, *, run_name: str = "tune") -> str:
    """Log a `tuning.SearchResult`: the parent run's id.

    The parent holds the search's parameters, its space and the best trial's draw and metrics;
    each trial is a nested run with its draw as parameters, its per-epoch scores and losses as
    metric steps (the curves), its last metrics and whether it finished or was stopped.
    """
    configure(settings)
    with mlflow.start_run(run_name=run_name) as parent:
        mlflow.log_params({k: str(v) for k, v in params.items()})
        mlflow.log_dict(
            {k: list(v) if isinstance(v, tuple) else v for k, v in result.space.items()}, "space.json"
        )
        mlflow.set_tags({**_git_state(), "kind": "tune", "trials": str(len(result.trials))})
        for i, trial in enumerate(result.trials):
            with mlflow.start_run(run_name=f"trial-{i}", nested=True):
                mlflow.log_params({k: str(v) for k, v in trial.params.items()})
                mlflow.set_tags({"kind": "tune-trial", "status": trial.status})
                for row in trial.history:
                    step = int(row["step"])
                    metrics = {k: float(v) for k, v in row.items() if k not in ("step", "stage")}
                    mlflow.log_metrics(metrics, step=step)
                last = {k: float(v) for k, v in trial.metrics.items() if _is_metric(k, v)}
                mlflow.log_metrics({f"final.{k}": v for k, v in last.items()})
        if result.best is not None:
            mlflow.log_params({f"best.{k}": str(v) for k, v in result.best.params.items()})
            mlflow.log_metric("best.val_pinball", float(result.best.metrics["val_pinball"]))
    return parent.info.run_id


def tag_search(run_id: str, tags: dict[str, str]) -> None:
    """Tags on a finished search run (e.g. the retrained model's run and version)."""
    client = MlflowClient()
    for key, value in tags.items():
        client.set_tag(run_id, key, value)


def _is_metric(key: str, value) -> bool:
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and key not in ("step",)
        and value == value
    )
