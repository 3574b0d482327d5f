"""Tracked runs: a training run (params, curves, metrics, data, plots, pyfunc model) and a backtest run."""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import subprocess
import tempfile
import time
import warnings
from contextvars import ContextVar
from dataclasses import dataclass
from importlib import metadata as importlib_metadata
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import psutil
from mlflow.utils.logging_utils import MLFLOW_LOGGING_STREAM

from forecaster.config import Settings
from forecaster.experts.training import on_epoch
from forecaster.model import FuzzyLSTMForecaster
from forecaster.runtime.logs import is_verbose
from forecaster.tracking.pyfunc import CODE_FILE, pyfunc_output, record_checksum, signature
from forecaster.tracking.registry import mark_challenger
from forecaster.tracking.setup import configure

log = logging.getLogger(__name__)

# model.metrics_ keys that describe the clustering and the data split rather than score the model.
DIAGNOSTICS = ("n_clusters", "xie_beni", "cluster_", "n_windows_")


@dataclass
class LoggedModel:
    run_id: str
    model_uri: str
    version: str | None  # registry version, None when not registered


def _git_state() -> dict[str, str]:
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=True
        )
        dirty = subprocess.run(["git", "status", "--porcelain"], capture_output=True, text=True, timeout=5)
        return {"git_commit": commit.stdout.strip(), "git_dirty": str(bool(dirty.stdout.strip())).lower()}
    except (OSError, subprocess.SubprocessError):
        return {"git_commit": "unknown", "git_dirty": "unknown"}


def _requirements() -> list[str]:
    names = ("torch", "numpy", "pandas", "scikit-fuzzy", "exchange-calendars", "pyarrow", "mlflow")
    return [f"{n}=={importlib_metadata.version(n).split('+')[0]}" for n in names]


# Who runs a run: a later start tells a run whose process was killed (RUNNING forever) from a live one.
PROCESS_TAGS = ("forecaster.host", "forecaster.pid", "forecaster.pid_started")
UNKNOWN_PROCESS_AFTER_S = 2 * 86400  # a RUNNING run of another host, or untagged, is dead after this


def start_run(run_name: str | None = None):
    """`mlflow.start_run` with the host, pid and process start time as tags."""
    started = f"{psutil.Process().create_time():.2f}"
    tags = dict(zip(PROCESS_TAGS, (socket.gethostname(), str(os.getpid()), started), strict=True))
    return mlflow.start_run(run_name=run_name, tags=tags)


def end_killed_runs(settings: Settings, min_age_s: float = 60) -> list[str]:
    """Mark KILLED the experiment's runs left RUNNING by a process that is gone; their ids.

    A run started on this host whose process (pid and start time) no longer exists is dead once
    older than `min_age_s`; one of another host, or without the tags of `start_run`, once older
    than `UNKNOWN_PROCESS_AFTER_S`. Called at the start of every training run.
    """
    experiment = mlflow.get_experiment_by_name(settings.experiment)
    if experiment is None:
        return []
    client = mlflow.MlflowClient()
    running = client.search_runs(
        [experiment.experiment_id], "attributes.status = 'RUNNING'", max_results=1000
    )
    now, killed = time.time(), []
    for run in running:
        age = now - run.info.start_time / 1000
        if age >= min_age_s and _process_gone(run.data.tags, age):
            client.set_tag(
                run.info.run_id, "forecaster.ended", f"marked KILLED by pid {os.getpid()}: process gone"
            )
            client.set_terminated(run.info.run_id, status="KILLED")
            killed.append(run.info.run_id)
    if killed:
        log.warning(
            "marked %d MLflow runs KILLED (their process is gone): %s", len(killed), ", ".join(killed)
        )
    return killed


def _process_gone(tags: dict[str, str], age_s: float) -> bool:
    host, pid, started = (tags.get(name) for name in PROCESS_TAGS)
    if host != socket.gethostname() or not (pid or "").isdigit():
        return age_s > UNKNOWN_PROCESS_AFTER_S
    try:
        return f"{psutil.Process(int(pid)).create_time():.2f}" != started  # the pid was reused
    except psutil.NoSuchProcess:
        return True
    except psutil.Error:  # another user's process: alive
        return False


def _end_killed_runs(settings: Settings) -> None:
    try:
        end_killed_runs(settings)
    except mlflow.exceptions.MlflowException as exc:  # old runs stay RUNNING; this run goes on
        log.warning("could not check for killed runs: %s", exc)


@dataclass
class _OpenRun:
    run_id: str
    epochs_logged: int = 0  # epochs the live curves received (none when training ran elsewhere)


# The training run `training_run` opened in this context, which `log_training_run` completes.
_open_run: ContextVar[_OpenRun | None] = ContextVar("open_training_run", default=None)


@contextlib.contextmanager
def training_run(settings: Settings, run_name: str | None = None):
    """Open the training run before the work starts; `log_training_run` inside completes it.

    The run's duration is then the job's (not the seconds of logging after it), and the loss
    curves grow in the UI while the experts train: every epoch is logged as it ends. Epochs
    trained in other processes (Ray Train workers) are logged from the fit's history at the end.
    An exception ends the run as FAILED.
    """
    configure(settings)
    _end_killed_runs(settings)
    with start_run(run_name) as run, on_epoch(_log_epoch):
        token = _open_run.set(_OpenRun(run.info.run_id))
        try:
            yield run
        finally:
            _open_run.reset(token)


def _run(opened: _OpenRun | None, run_name: str | None):
    """The run to log into: the one `training_run` opened (it ends it), else a new one."""
    active = mlflow.active_run()
    if opened is not None and active is not None and active.info.run_id == opened.run_id:
        return contextlib.nullcontext(active)
    return mlflow.start_run(run_id=opened.run_id) if opened else start_run(run_name)


def _log_epoch(stage: str, row: dict[str, float]) -> None:
    """One epoch's losses into the open run, named as `_log_curves` names them."""
    opened = _open_run.get()
    if opened is None:
        return
    _log_curves({stage.replace("-", "_"): [row]}, run_id=opened.run_id)
    opened.epochs_logged += 1


def log_training_run(
    model: FuzzyLSTMForecaster,
    bars: pd.DataFrame,
    settings: Settings,
    *,
    run_name: str | None = None,
    plots: tuple[Path, ...] = (),
    register: bool = True,
) -> LoggedModel:
    """Log a fitted model's run (params, curves, metrics, data, plots) and its pyfunc model.

    Inside `training_run` it completes the run opened there; otherwise it opens one now. When
    `register`, the model becomes a new version of `settings.model_name` with the alias
    `challenger`; `promote` decides whether it becomes `champion`.
    """
    configure(settings)
    opened = _open_run.get()
    if opened is None:
        _end_killed_runs(settings)
    with _run(opened, run_name) as run, tempfile.TemporaryDirectory() as tmp:
        mlflow.log_params({k: str(v) for k, v in model.config.flat().items()})
        mlflow.log_params({"source": settings.source, "universe": ",".join(model.fingerprint_["tickers"])})
        if opened is None or not opened.epochs_logged:
            _log_curves(model.history_)
        _log_fit(model)
        _log_data(model, bars)
        _log_config_and_regimes(model)
        for plot in plots:
            mlflow.log_artifact(str(plot), artifact_path="plots")
        info = _log_pyfunc_model(model, bars, Path(tmp), settings.model_name if register else None)
    version = None
    if register:
        version = str(info.registered_model_version)
        record_checksum(settings.model_name, version)  # verified before any load of this version
        mark_challenger(settings.model_name, version, model.metrics_, regime_summary(model))
    return LoggedModel(run.info.run_id, info.model_uri, version)


def _log_curves(history: dict[str, list[dict]], run_id: str | None = None) -> None:
    """Per-epoch losses as metric steps, so the UI draws the curves."""
    for stage, rows in history.items():
        for row in rows:
            # "loss/" makes the UI put the curves in a section of their own, above the
            # section of single-value metrics.
            mlflow.log_metrics(
                {f"loss/{stage}.{k.replace('/', '.')}": v for k, v in row.items() if k != "epoch"},
                step=int(row["epoch"]),
                run_id=run_id,
            )


def _log_fit(model: FuzzyLSTMForecaster) -> None:
    """The fit's diagnostics as params and its scores as metrics."""
    # Single values that describe the fit go to params: as metrics the UI would draw each as a
    # one-bar chart above the loss curves. Scores stay metrics, so runs sort and compare by them.
    diagnostics = {k: v for k, v in model.metrics_.items() if k.startswith(DIAGNOSTICS)}
    mlflow.log_params({k: f"{v:.4g}" if isinstance(v, float) else str(v) for k, v in diagnostics.items()})
    xie_beni = getattr(model.clusterer_, "xie_beni_", {})
    if xie_beni:
        mlflow.log_param("xie_beni_by_c", ", ".join(f"{c}: {v:.4g}" for c, v in xie_beni.items()))
    mlflow.log_metrics({k: float(v) for k, v in model.metrics_.items() if k not in diagnostics})


def _log_data(model: FuzzyLSTMForecaster, bars: pd.DataFrame) -> None:
    """What the model was trained on: code and data tags, the fingerprint, quarantined tickers, the dataset."""
    fingerprint = model.fingerprint_
    mlflow.set_tags(
        {
            **_git_state(),
            "device": model.device_,
            "data.sha256": fingerprint["sha256"],
            "data.tickers": ",".join(fingerprint["tickers"]),
            "data.range": f"{fingerprint['start']}..{fingerprint['end']}",
        }
    )
    mlflow.log_dict(fingerprint, "data_fingerprint.json")
    quarantine = bars.attrs.get("quarantine")
    if quarantine is not None and not quarantine.empty:  # tickers left out of the training data, and why
        mlflow.log_table(quarantine.to_frame().astype(str), "quarantine.json")
        mlflow.set_tag("data.quarantined", ",".join(quarantine.tickers))
    dataset = mlflow.data.from_pandas(
        bars, name=f"bars {','.join(fingerprint['tickers'])} {fingerprint['start']}..{fingerprint['end']}"
    )
    mlflow.log_input(dataset, context="training")


def _log_config_and_regimes(model: FuzzyLSTMForecaster) -> None:
    """The config and the regimes the clustering found (labels, shares, centers in raw units)."""
    mlflow.log_dict(model.config.to_dict(), "config.json")
    clusterer = model.clusterer_
    mlflow.log_dict(
        {
            "labels": model.regime_labels_,
            "shares_of_training_windows": [round(float(s), 4) for s in model.regime_shares_],
            "descriptors": list(model.config.cluster.descriptors),
            "centers_raw": (clusterer.centers_ * clusterer.scale_ + clusterer.mean_).tolist(),
        },
        "regimes.json",
    )
    mlflow.set_tag("regimes", regime_summary(model))


def _log_pyfunc_model(model: FuzzyLSTMForecaster, bars: pd.DataFrame, tmp: Path, registered_name: str | None):
    """Log the model as a pyfunc model (registered as a new version of `registered_name`, when given)."""
    model_dir = model.save(tmp / "model")
    example = _input_example(bars, model)
    with _quiet_mlflow():
        return mlflow.pyfunc.log_model(
            name="model",
            python_model=str(CODE_FILE),  # models-from-code: the logged model holds no pickle
            artifacts={"model_dir": str(model_dir)},
            signature=signature(example, pyfunc_output(model, example)),
            input_example=example,
            pip_requirements=_requirements(),
            registered_model_name=registered_name,
        )


def log_backtest_run(
    summary: pd.DataFrame,
    report_dir: Path,
    params: dict,
    bars: pd.DataFrame,
    settings: Settings,
    *,
    run_name: str = "backtest",
) -> str:
    """Log a walk-forward backtest: its parameters, every model's aggregated metrics, the report folder.

    Metrics are named `<model>.<metric>` (e.g. `fuzzy.theil_u`, `single_lstm.dm_p_vs_naive`), so runs
    compare side by side in the UI; the tables and plots are the run's artifacts under `backtest/`.
    """
    configure(settings)
    with start_run(run_name) as run:
        mlflow.log_params({k: str(v) for k, v in params.items()})
        metrics = {}
        for row in summary.to_dict("records"):
            for key, value in row.items():
                if key != "model" and isinstance(value, int | float) and np.isfinite(value):
                    # MLflow names take no "+": `garch+cqr` logs as `garch-cqr.<metric>`.
                    metrics[f"{str(row['model']).replace('+', '-')}.{key}"] = float(value)
        mlflow.log_metrics(metrics)
        mlflow.set_tags(
            {**_git_state(), "kind": "backtest", "data.tickers": ",".join(sorted(bars["ticker"].unique()))}
        )
        mlflow.log_input(mlflow.data.from_pandas(bars, name="backtest bars"), context="backtest")
        mlflow.log_artifacts(str(report_dir), artifact_path="backtest")
    return run.info.run_id


@contextlib.contextmanager
def _quiet_mlflow():
    """Silence log_model's generic advice (the model is logged from code; its state is the model dir)."""
    logger = logging.getLogger("mlflow")
    level = logger.level
    logger.setLevel(logging.ERROR)
    # "Successfully registered model ..." is printed, not logged; registry.py logs the version.
    stream = MLFLOW_LOGGING_STREAM.enabled
    MLFLOW_LOGGING_STREAM.enabled = is_verbose()
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings(
                "ignore", message="Hint: Inferred schema contains integer", category=UserWarning
            )
            yield
    finally:
        logger.setLevel(level)
        MLFLOW_LOGGING_STREAM.enabled = stream


def regime_summary(model: FuzzyLSTMForecaster) -> str:
    """The regimes in one line: `calm, rising 37% | turbulent, falling 26%`."""
    return " | ".join(
        f"{label} {share:.0%}"
        for label, share in zip(model.regime_labels_, model.regime_shares_, strict=True)
    )


def _input_example(bars: pd.DataFrame, model: FuzzyLSTMForecaster) -> pd.DataFrame:
    """The latest `window + 1` bars of one ticker: the smallest input that yields a forecast."""
    first = bars[bars["ticker"] == bars["ticker"].iloc[0]]
    return first.tail(model.config.window.window + 1).reset_index(drop=True)
