"""Where MLflow tracks: the store and experiment every tracking module points at first."""

from __future__ import annotations

import os
import sys

import mlflow

from forecaster.config import Settings
from forecaster.runtime.logs import adopt_library_loggers

# MLflow 3's UI opens an experiment by its kind: without this tag it guesses, and an experiment
# with no traces may open on the GenAI overview instead of its training runs.
EXPERIMENT_KIND = {"mlflow.experimentKind": "custom_model_development"}
# MLflow 3.17's UI takes the kind from its GenAI / Model training switch (kept in the browser,
# GenAI by default) rather than from the tag; a link with this parameter opens the runs.
UI_QUERY = "?workflowType=machine_learning"


def configure(settings: Settings) -> str:
    """Point MLflow at the configured store and experiment; returns the tracking URI."""
    uri = settings.tracking_uri
    if not sys.stderr.isatty():
        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    adopt_library_loggers()  # importing mlflow gave it a handler of its own
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    experiment = mlflow.get_experiment_by_name(settings.experiment)
    if experiment is None:
        # A local store keeps artifacts beside mlflow.db; a server decides for itself.
        location = None
        if uri.startswith("sqlite:") or uri.startswith("file:"):
            location = (settings.home / "mlartifacts").resolve().as_uri()
        mlflow.create_experiment(settings.experiment, artifact_location=location, tags=EXPERIMENT_KIND)
    mlflow.set_experiment(settings.experiment)
    if experiment is not None and not EXPERIMENT_KIND.items() <= experiment.tags.items():
        mlflow.set_experiment_tags(EXPERIMENT_KIND)  # experiments made before the tag existed
    return uri


def ui_url(settings: Settings, base: str = "http://127.0.0.1:5000") -> str:
    """The MLflow UI page of the experiment's training runs."""
    configure(settings)  # creates the experiment when it is new
    experiment = mlflow.get_experiment_by_name(settings.experiment)
    return f"{base}/#/experiments/{experiment.experiment_id}{UI_QUERY}"
