"""The model registry: champion / challenger aliases, promotion, listing and loading versions."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from forecaster.config import Settings
from forecaster.features.splits import split_windows
from forecaster.features.windows import make_windows
from forecaster.model import FuzzyLSTMForecaster
from forecaster.tracking.promotion import PROMOTION_METRICS, PromotionDecision, decide
from forecaster.tracking.pyfunc import load_model
from forecaster.tracking.setup import configure

log = logging.getLogger(__name__)

CHAMPION, CHALLENGER = "champion", "challenger"


def mark_challenger(name: str, version: str, metrics: dict, regimes: str = "") -> None:
    """Point the `challenger` alias at a new version and tag it with its key metrics and regimes."""
    client = MlflowClient()
    client.set_registered_model_alias(name, CHALLENGER, version)
    if regimes:
        client.set_model_version_tag(name, version, "regimes", regimes)
    for key in ("val_pinball", "test_pinball", "test_coverage_80", "val_rmse", "test_rmse", "n_clusters"):
        if key in metrics:
            client.set_model_version_tag(name, version, key, f"{metrics[key]:.6g}")
    log.info("registered %s version %s as %s", name, version, CHALLENGER)


def evaluation_windows(bars: pd.DataFrame, model: FuzzyLSTMForecaster):
    """The model's held-out block on `bars`: test when it kept one, else validation."""
    splits = split_windows(make_windows(bars, model.config.window), model.config.window)
    return splits["test"] if len(splits["test"]) else splits["val"]


def _scores(model: FuzzyLSTMForecaster, bars: pd.DataFrame, start, end) -> dict[str, float]:
    windows = make_windows(bars, model.config.window)
    in_window = (windows.origin >= start) & (windows.origin <= end)
    return model.evaluate(windows.subset(in_window))


def promote(settings: Settings, bars: pd.DataFrame, metric: str = "pinball") -> PromotionDecision:
    """Move `champion` to the `challenger` only when it scores better on the same windows.

    Both models forecast the same labelled windows of `bars`: the challenger's held-out block
    (its test block, or validation when it kept none), so the champion is judged on data the
    challenger did not fit on. `promotion.decide` makes the call; the decision and both scores
    become tags of the challenger's version.
    """
    if metric not in PROMOTION_METRICS:
        raise ValueError(f"promotion metric must be one of {', '.join(PROMOTION_METRICS)}, got {metric!r}")
    configure(settings)
    client = MlflowClient()
    name = settings.model_name
    new_version, old_version = _challenger_and_champion(client, name)
    if old_version is None or old_version == new_version:
        decision = decide(metric, new_version, old_version)
        if old_version == new_version:
            return decision  # nothing decided; keep the tags of the decision that made it champion
    else:
        decision = _compare(name, metric, new_version, old_version, bars)
    if decision.promoted:
        client.set_registered_model_alias(name, CHAMPION, new_version)
    for key, value in _decision_tags(decision, metric).items():
        client.set_model_version_tag(name, new_version, key, value)
    log.info("promotion of %s v%s: %s", name, new_version, decision.reason)
    return decision


def _challenger_and_champion(client: MlflowClient, name: str) -> tuple[str, str | None]:
    """The versions the aliases point at; the champion's is None when there is none yet."""
    try:
        challenger = client.get_model_version_by_alias(name, CHALLENGER)
    except MlflowException:
        raise ValueError(f"registered model {name!r} has no {CHALLENGER!r} version to promote") from None
    try:
        champion = client.get_model_version_by_alias(name, CHAMPION)
    except MlflowException:
        return str(challenger.version), None
    return str(challenger.version), str(champion.version)


def _compare(
    name: str, metric: str, new_version: str, old_version: str, bars: pd.DataFrame
) -> PromotionDecision:
    """Score both versions on the challenger's held-out windows of `bars` and decide."""
    new = load_model(f"models:/{name}/{new_version}")
    old = load_model(f"models:/{name}/{old_version}")
    if new.config.window.horizon != old.config.window.horizon:
        raise ValueError(
            f"cannot compare horizon {new.config.window.horizon} (v{new_version}) with "
            f"horizon {old.config.window.horizon} (v{old_version}) on the same targets"
        )
    held_out = evaluation_windows(bars, new)
    start, end = held_out.origin.min(), held_out.origin.max()
    window = f"{np.datetime_as_string(start)}..{np.datetime_as_string(end)}"
    return decide(
        metric,
        new_version,
        old_version,
        _scores(new, bars, start, end),
        _scores(old, bars, start, end),
        window,
    )


def _decision_tags(decision: PromotionDecision, metric: str) -> dict[str, str]:
    """The challenger version's tags that record the decision (and both scores, when compared)."""
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
    return tags


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
                    for k in (
                        "test_pinball",
                        "test_coverage_80",
                        "test_rmse",
                        "regimes",
                        "promotion.decision",
                    )
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
