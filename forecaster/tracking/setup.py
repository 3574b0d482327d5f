"""Where MLflow tracks: the store and experiment every tracking module points at first."""

from __future__ import annotations

import os
import sys

import mlflow

from forecaster.config import Settings


def configure(settings: Settings) -> str:
    """Point MLflow at the configured store and experiment; returns the tracking URI."""
    uri = settings.tracking_uri
    if not sys.stderr.isatty():
        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    if mlflow.get_experiment_by_name(settings.experiment) is None:
        # A local store keeps artifacts beside mlflow.db; a server decides for itself.
        location = None
        if uri.startswith("sqlite:") or uri.startswith("file:"):
            location = (settings.home / "mlartifacts").resolve().as_uri()
        mlflow.create_experiment(settings.experiment, artifact_location=location)
    mlflow.set_experiment(settings.experiment)
    return uri
