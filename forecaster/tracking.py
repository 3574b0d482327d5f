"""MLflow: tracked runs, the pyfunc model, the registry and its champion / challenger aliases.

The only module of `forecaster` that imports MLflow. With no configuration, tracking and the
registry live in SQLite under FORECASTER_HOME (`mlflow.db`, artifacts in `mlartifacts/`);
`MLFLOW_TRACKING_URI` (or FORECASTER_MLFLOW_URI) points everything at a server instead.
"""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
import sys
import tempfile
import warnings
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata as importlib_metadata
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.models import infer_signature
from mlflow.tracking import MlflowClient

from forecaster.config import Settings
from forecaster.model import FuzzyLSTMForecaster
from forecaster.windows import make_windows, split_windows

log = logging.getLogger(__name__)

CHAMPION, CHALLENGER = "champion", "challenger"
# Metrics a promotion may compare; all are "lower is better".
PROMOTION_METRICS = ("rmse", "mae", "mape", "return_rmse", "theil_u")


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


class ForecasterPyfunc(mlflow.pyfunc.PythonModel):
    """Pyfunc wrapper: the artifact is a saved model directory; predict takes bars, returns forecasts.

    Input: a frame of daily bars (`ticker, date, open, high, low, close, adj_close, volume`), one or
    more tickers with at least `window + 1` bars each. Output: one row per ticker and horizon with
    target date, point forecast, interval bounds, memberships `u_k` and per-expert forecasts.
    """

    def load_context(self, context) -> None:
        self.model = FuzzyLSTMForecaster.load(context.artifacts["model_dir"])

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        from forecaster.data import validate_bars

        return self.model.predict(validate_bars(pd.DataFrame(model_input)))


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

    When `register`, the model becomes a new version of `settings.model_name` with the alias
    `challenger`; `promote` decides whether it becomes `champion`.
    """
    configure(settings)
    with mlflow.start_run(run_name=run_name) as run, tempfile.TemporaryDirectory() as tmp:
        mlflow.log_params({k: str(v) for k, v in model.config.flat().items()})
        mlflow.log_params({"source": settings.source, "universe": ",".join(model.fingerprint_["tickers"])})
        for stage, rows in model.history_.items():
            for row in rows:  # per-epoch losses as metric steps, so the UI draws the curves
                mlflow.log_metrics(
                    {f"{stage}.{k.replace('/', '.')}": v for k, v in row.items() if k != "epoch"},
                    step=row["epoch"],
                )
        mlflow.log_metrics({k: float(v) for k, v in model.metrics_.items()})
        for c, index in getattr(model.clusterer_, "xie_beni_", {}).items():
            mlflow.log_metric("xie_beni_by_c", index, step=c)
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
        mlflow.log_dict(model.config.to_dict(), "config.json")
        dataset = mlflow.data.from_pandas(
            bars, name=f"bars {','.join(fingerprint['tickers'])} {fingerprint['start']}..{fingerprint['end']}"
        )
        mlflow.log_input(dataset, context="training")
        for plot in plots:
            mlflow.log_artifact(str(plot), artifact_path="plots")

        model_dir = model.save(Path(tmp) / "model")
        example = _input_example(bars, model)
        with _quiet_mlflow():
            info = mlflow.pyfunc.log_model(
                name="model",
                python_model=ForecasterPyfunc(),
                artifacts={"model_dir": str(model_dir)},
                signature=infer_signature(example, model.predict(example)),
                input_example=example,
                pip_requirements=_requirements(),
                registered_model_name=settings.model_name if register else None,
            )
    version = None
    if register:
        version = str(info.registered_model_version)
        client = MlflowClient()
        client.set_registered_model_alias(settings.model_name, CHALLENGER, version)
        for key in ("val_rmse", "val_theil_u", "test_rmse", "test_theil_u", "n_clusters"):
            if key in model.metrics_:
                client.set_model_version_tag(settings.model_name, version, key, f"{model.metrics_[key]:.6g}")
        log.info("registered %s version %s as %s", settings.model_name, version, CHALLENGER)
    return LoggedModel(run.info.run_id, info.model_uri, version)


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
    with mlflow.start_run(run_name=run_name) as run:
        mlflow.log_params({k: str(v) for k, v in params.items()})
        metrics = {}
        for row in summary.to_dict("records"):
            for key, value in row.items():
                if key != "model" and isinstance(value, int | float) and np.isfinite(value):
                    metrics[f"{row['model']}.{key}"] = float(value)
        mlflow.log_metrics(metrics)
        mlflow.set_tags(
            {**_git_state(), "kind": "backtest", "data.tickers": ",".join(sorted(bars["ticker"].unique()))}
        )
        mlflow.log_input(mlflow.data.from_pandas(bars, name="backtest bars"), context="backtest")
        mlflow.log_artifacts(str(report_dir), artifact_path="backtest")
    return run.info.run_id


@contextlib.contextmanager
def _quiet_mlflow():
    """Silence log_model's generic advice; our wrapper is a stateless class, its state is the model dir.

    (The cloudpickle warning is about pickled state: ForecasterPyfunc pickles to a class reference,
    and the artifact it loads is the npz/json/state-dict directory.)
    """
    logger = logging.getLogger("mlflow")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings(
                "ignore", message="Hint: Inferred schema contains integer", category=UserWarning
            )
            yield
    finally:
        logger.setLevel(level)


def _input_example(bars: pd.DataFrame, model: FuzzyLSTMForecaster) -> pd.DataFrame:
    """The latest `window + 1` bars of one ticker: the smallest input that yields a forecast."""
    first = bars[bars["ticker"] == bars["ticker"].iloc[0]]
    return first.tail(model.config.window.window + 1).reset_index(drop=True)


def load_model(uri: str) -> FuzzyLSTMForecaster:
    """The forecaster behind a pyfunc model URI (`models:/fcm-lstm@champion`, `runs:/...`)."""
    return mlflow.pyfunc.load_model(uri).unwrap_python_model().model


@dataclass
class PromotionDecision:
    promoted: bool
    reason: str
    metric: str
    challenger_version: str
    champion_version: str | None  # registry versions are strings here, whatever the store returns
    challenger_score: float | None = None
    champion_score: float | None = None
    window: str | None = None


def evaluation_windows(bars: pd.DataFrame, model: FuzzyLSTMForecaster):
    """The model's held-out block on `bars`: test when it kept one, else validation."""
    splits = split_windows(make_windows(bars, model.config.window), model.config.window)
    return splits["test"] if len(splits["test"]) else splits["val"]


def _score(model: FuzzyLSTMForecaster, bars: pd.DataFrame, start, end, metric: str) -> float:
    windows = make_windows(bars, model.config.window)
    in_window = (windows.origin >= start) & (windows.origin <= end)
    return float(model.evaluate(windows.subset(in_window))[metric])


def promote(settings: Settings, bars: pd.DataFrame, metric: str = "rmse") -> PromotionDecision:
    """Move `champion` to the `challenger` only when it scores better on the same windows.

    Both models forecast the same labelled windows of `bars`: the challenger's held-out block
    (its test block, or validation when it kept none), so the champion is judged on data the
    challenger did not fit on. The decision and both scores become tags of the challenger's version.
    """
    if metric not in PROMOTION_METRICS:
        raise ValueError(f"promotion metric must be one of {', '.join(PROMOTION_METRICS)}, got {metric!r}")
    configure(settings)
    client = MlflowClient()
    name = settings.model_name
    try:
        challenger = client.get_model_version_by_alias(name, CHALLENGER)
    except MlflowException:
        raise ValueError(f"registered model {name!r} has no {CHALLENGER!r} version to promote") from None
    try:
        champion = client.get_model_version_by_alias(name, CHAMPION)
    except MlflowException:
        champion = None

    new_version = str(challenger.version)
    old_version = None if champion is None else str(champion.version)
    if champion is None:
        decision = PromotionDecision(True, "no champion yet", metric, new_version, None)
    elif old_version == new_version:
        # Nothing to decide; keep the tags of the decision that made it champion.
        return PromotionDecision(False, "challenger is already champion", metric, new_version, old_version)
    else:
        new = load_model(f"models:/{name}/{new_version}")
        old = load_model(f"models:/{name}/{old_version}")
        if new.config.window.horizon != old.config.window.horizon:
            raise ValueError(
                f"cannot compare horizon {new.config.window.horizon} (v{new_version}) with "
                f"horizon {old.config.window.horizon} (v{old_version}) on the same targets"
            )
        held_out = evaluation_windows(bars, new)
        start, end = held_out.origin.min(), held_out.origin.max()
        new_score, old_score = _score(new, bars, start, end, metric), _score(old, bars, start, end, metric)
        better = new_score < old_score
        decision = PromotionDecision(
            better,
            f"challenger {metric} {new_score:.6g} {'<' if better else '>='} champion {old_score:.6g}",
            metric,
            new_version,
            old_version,
            new_score,
            old_score,
            f"{np.datetime_as_string(start)}..{np.datetime_as_string(end)}",
        )
    if decision.promoted:
        client.set_registered_model_alias(name, CHAMPION, new_version)
    tags = {
        "promotion.decision": "promoted" if decision.promoted else "rejected",
        "promotion.reason": decision.reason,
        "promotion.metric": metric,
        "promotion.at": datetime.now(UTC).isoformat(timespec="seconds"),
        "promotion.champion_version": decision.champion_version or "none",
    }
    if decision.window:
        tags |= {
            "promotion.window": decision.window,
            "promotion.challenger_score": f"{decision.challenger_score:.6g}",
            "promotion.champion_score": f"{decision.champion_score:.6g}",
        }
    for key, value in tags.items():
        client.set_model_version_tag(name, new_version, key, value)
    log.info("promotion of %s v%s: %s", name, new_version, decision.reason)
    return decision


@dataclass
class ModelRef:
    """Which registered model version a URI points at right now."""

    name: str
    version: str
    alias: str | None
    run_id: str


def resolve_model_uri(uri: str) -> ModelRef:
    """`models:/name@alias` or `models:/name/version` -> the version it points at (asks the registry)."""
    if not uri.startswith("models:/"):
        raise ValueError(
            f"not a registry URI: {uri!r} (expected models:/<name>@<alias> or models:/<name>/<version>)"
        )
    spec = uri.removeprefix("models:/")
    client = MlflowClient()
    if "@" in spec:
        name, alias = spec.split("@", 1)
        version = client.get_model_version_by_alias(name, alias)
    else:
        name, number = spec.rsplit("/", 1)
        alias, version = None, client.get_model_version(name, number)
    return ModelRef(name, str(version.version), alias, version.run_id)


def challenger_fingerprint(settings: Settings) -> dict:
    """Tickers and date range the challenger was trained on (to load the bars `promote` needs)."""
    client = MlflowClient()
    try:
        version = client.get_model_version_by_alias(settings.model_name, CHALLENGER)
    except MlflowException:
        raise ValueError(f"registered model {settings.model_name!r} has no {CHALLENGER!r} version") from None
    tags = client.get_run(version.run_id).data.tags
    start, end = tags["data.range"].split("..")
    return {"tickers": tags["data.tickers"].split(","), "start": start, "end": end}


def list_versions(settings: Settings) -> list[dict]:
    """Every version of the registered model with its aliases and key metrics, newest first."""
    configure(settings)
    client = MlflowClient()
    try:
        versions = client.search_model_versions(f"name = '{settings.model_name}'")
    except MlflowException:
        return []
    # search results leave aliases out; the registered model has them all.
    aliases: dict[str, list[str]] = {}
    for alias, version in client.get_registered_model(settings.model_name).aliases.items():
        aliases.setdefault(str(version), []).append(alias)
    rows = []
    for v in sorted(versions, key=lambda v: int(v.version), reverse=True):
        rows.append(
            {
                "version": str(v.version),
                "aliases": ",".join(sorted(aliases.get(str(v.version), []))),
                "created": datetime.fromtimestamp(v.creation_timestamp / 1000, UTC).strftime(
                    "%Y-%m-%d %H:%M"
                ),
                "run_id": v.run_id,
                **{
                    k: v.tags.get(k, "")
                    for k in ("val_rmse", "val_theil_u", "test_rmse", "promotion.decision")
                },
            }
        )
    return rows


@dataclass
class RegisteredForecaster:
    """A registered model version and the forecaster it holds."""

    name: str
    version: str
    run_id: str
    model: FuzzyLSTMForecaster


def load_registered(settings: Settings, alias: str = CHAMPION) -> RegisteredForecaster:
    """The version behind `alias` of the registered model, with its name, version and run id.

    The version is resolved once and loaded by number, so an alias moved meanwhile cannot mix
    one version's number with another's weights.
    """
    configure(settings)
    name = settings.model_name
    try:
        version = MlflowClient().get_model_version_by_alias(name, alias)
    except MlflowException:
        raise ValueError(
            f"registered model {name!r} has no {alias!r} version in {settings.tracking_uri}; "
            "train and promote one first (forecaster quickstart, or python -m pipelines.train)"
        ) from None
    model = load_model(f"models:/{name}/{version.version}")
    return RegisteredForecaster(name, str(version.version), version.run_id, model)
