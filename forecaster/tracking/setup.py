"""Where MLflow tracks: the store and experiment every tracking module points at first.

Every MLflow HTTP call of the command line and the jobs is bounded: `configure` sets MLflow's
retry and timeout variables from `Settings.mlflow_retries` / `mlflow_timeout_s`
(FORECASTER_MLFLOW_RETRIES, FORECASTER_MLFLOW_TIMEOUT_S) unless the user set them, so a dead
server fails in seconds (MLflow's own defaults retry for minutes); `unreachable_line` says so
in one line.
"""

from __future__ import annotations

import os
import re
import sys

import mlflow

from forecaster.config import Settings
from forecaster.runtime.logs import adopt_library_loggers
from forecaster.runtime.redact import mask_credentials

# MLflow 3's UI opens an experiment by its kind: without this tag it guesses, and an experiment
# with no traces may open on the GenAI overview instead of its training runs.
EXPERIMENT_KIND = {"mlflow.experimentKind": "custom_model_development"}
# MLflow 3.17's UI takes the kind from its GenAI / Model training switch (kept in the browser,
# GenAI by default) rather than from the tag; a link with this parameter opens the runs.
UI_QUERY = "?workflowType=machine_learning"
LOCAL_UI = "http://127.0.0.1:5000"  # where `forecaster ui` serves by default


def configure(settings: Settings) -> str:
    """Point MLflow at the configured store and experiment; returns the tracking URI."""
    uri = settings.tracking_uri
    # MLflow prints "View run ... at" links that open the GenAI view; ours (`run_url`) do not.
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
    bound_http_calls(settings)
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


def ui_url(settings: Settings, base: str | None = None) -> str:
    """The MLflow UI page of the experiment's training runs, in the model-training view.

    `base`: the UI's address; default the tracking server (an http URI) or `forecaster ui`'s.
    """
    configure(settings)  # creates the experiment when it is new
    experiment = mlflow.get_experiment_by_name(settings.experiment)
    return f"{_ui_base(settings, base)}/#/experiments/{experiment.experiment_id}{UI_QUERY}"


def _ui_base(settings: Settings, base: str | None) -> str:
    uri = settings.tracking_uri
    return (base or (uri if uri.startswith(("http://", "https://")) else LOCAL_UI)).rstrip("/")


def run_url(settings: Settings, run_id: str, base: str | None = None) -> str:
    """The MLflow UI page of one run, in the model-training view (`base` as for `ui_url`)."""
    configure(settings)
    experiment_id = mlflow.get_run(run_id).info.experiment_id
    return f"{_ui_base(settings, base)}/#/experiments/{experiment_id}/runs/{run_id}{UI_QUERY}"


def bound_http_calls(settings: Settings) -> None:
    """Retries and timeout of MLflow's HTTP calls from the settings, unless set in the environment."""
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", str(settings.mlflow_retries))
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", f"{settings.mlflow_timeout_s:g}")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")  # waits of 1, 2, 4... s
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_JITTER", "0.5")


# What the text of a failed MLflow request says -> the words for a user.
_REASONS = (
    (re.compile(r"Connection refused", re.I), "connection refused"),
    (re.compile(r"timed? ?out", re.I), "no answer within {timeout} s"),
    (
        re.compile(r"Name or service not known|NameResolution|nodename nor servname|getaddrinfo"),
        "unknown host",
    ),
    (re.compile(r"too many (5\d\d )?error responses", re.I), "the server kept answering with errors"),
    (re.compile(r"Max retries exceeded|ConnectionError|RemoteDisconnected", re.I), "no connection"),
)


def unreachable_line(exc: BaseException) -> str | None:
    """One line for an MLflow call that reached no server, naming MLFLOW_TRACKING_URI (masked).

    None when `exc` is something else (an answer with an error status, a bug).
    """
    text = str(exc)
    if not (text.startswith("API request to ") or type(exc).__module__.startswith(("requests", "urllib3"))):
        return None
    reason = next((words for pattern, words in _REASONS if pattern.search(text)), None)
    if reason is None:
        return None
    retries = os.environ.get("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "?")
    reason = reason.format(timeout=os.environ.get("MLFLOW_HTTP_REQUEST_TIMEOUT", "?"))
    return mask_credentials(
        f"cannot reach MLflow at {mlflow.get_tracking_uri()} (MLFLOW_TRACKING_URI): {reason}, "
        f"after {retries} retries. Start the server or fix the URI; FORECASTER_MLFLOW_RETRIES and "
        "FORECASTER_MLFLOW_TIMEOUT_S bound the wait"
    )
