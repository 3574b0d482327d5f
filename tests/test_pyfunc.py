"""The registered pyfunc model holds no pickle, loads with pickle disallowed, and is served only
while its files match the checksum recorded at registration (API and batch job alike)."""

# ruff: noqa: F811  (pytest fixtures imported from test_service are arguments here)
from __future__ import annotations

import contextlib
import pickle

import cloudpickle
import mlflow
import pandas as pd
import pytest
import torch
import yaml
from fastapi.testclient import TestClient
from mlflow import MlflowClient
from test_service import (  # noqa: F401  (module fixtures: a registry of its own for this module)
    make_settings,
    registry,
    tiny_config_module,
    two_ticker_bars_module,
)

from forecaster import tracking
from forecaster.config import Settings
from forecaster.tracking.pyfunc import model_checksum
from pipelines import batch_forecast
from service.main import create_app


@pytest.fixture
def settings(registry, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "placeholder")
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    settings = Settings(home=registry, universe=["AAA", "BBB"])
    tracking.configure(settings)
    return settings


def no_pickle(monkeypatch) -> None:
    """Any pickle deserialization from here on raises (and MLflow's own switch says no)."""

    def refuse(*args, **kwargs):
        raise AssertionError("pickle deserialization attempted")

    for module in (pickle, cloudpickle):
        monkeypatch.setattr(module, "load", refuse)
        monkeypatch.setattr(module, "loads", refuse)
    monkeypatch.setattr(pickle, "Unpickler", refuse)
    monkeypatch.setenv("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", "false")


def test_the_logged_model_is_code_plus_the_model_directory_without_any_pickle(settings, tmp_path):
    local = mlflow.artifacts.download_artifacts("models:/fcm-lstm/1", dst_path=str(tmp_path))
    files = {p.relative_to(local).as_posix() for p in tmp_path.rglob("*") if p.is_file()}
    assert not [f for f in files if f.endswith((".pkl", ".pickle", ".cloudpickle"))], files
    flavor = yaml.safe_load((tmp_path / "MLmodel").read_text())["flavors"]["python_function"]
    assert flavor["loader_module"] == "mlflow.pyfunc.loaders.code_model" and "python_model" not in flavor
    assert flavor["model_code_path"].endswith("pyfunc_model.py") and "pyfunc_model.py" in files
    assert {"artifacts/model/weights.pt", "artifacts/model/config.json"} <= files
    tags = MlflowClient().get_model_version("fcm-lstm", "1").tags
    assert tags[tracking.CHECKSUM_TAG] == model_checksum(local)


def test_the_champion_loads_and_predicts_with_pickle_disallowed(
    settings, monkeypatch, two_ticker_bars_module
):
    model = tracking.load_model("models:/fcm-lstm/1")
    expected = model.predict(two_ticker_bars_module)
    no_pickle(monkeypatch)
    pyfunc = mlflow.pyfunc.load_model("models:/fcm-lstm@champion")
    served = pyfunc.predict(two_ticker_bars_module)
    # The model's forecast at the nominal levels and its regime, as the API and batch job give it, plus the shift.
    pd.testing.assert_frame_equal(served.drop(columns="regime_shift"), expected, check_exact=True)
    assert set(served["regime_label"]) <= set(model.regime_labels_)
    assert served["regime_shift"].isin([True, False]).all()  # enough history for the trailing 20 days
    assert tracking.load_model("models:/fcm-lstm@champion").predict(two_ticker_bars_module).equals(expected)
    assert tracking.load_registered(settings).version == "1"


@contextlib.contextmanager
def tampered_weights(home):
    """Every stored weights.pt of the registry changed (a valid file serving other numbers), then restored."""
    files = list((home / "mlartifacts").rglob("weights.pt"))
    assert files
    saved = {f: f.read_bytes() for f in files}
    try:
        for f in files:
            weights = torch.load(f, weights_only=True)
            next(iter(weights.values())).add_(1.0)
            torch.save(weights, f)
        yield
    finally:
        for f, content in saved.items():
            f.write_bytes(content)


def test_a_tampered_weights_file_is_refused_by_the_loader_the_api_and_the_batch_job(
    settings,
    registry,
    monkeypatch,
    capsys,
):
    with TestClient(create_app(make_settings(registry))) as c:  # serves v1, and caches a copy of it
        assert c.get("/readyz").status_code == 200
    assert (make_settings(registry).serving_cache_dir / "fcm-lstm" / "1").is_dir()
    with tampered_weights(registry):
        message = r"fcm-lstm v1: its files changed since registration \(SHA-256 "
        with pytest.raises(tracking.ModelIntegrityError, match=message):
            tracking.load_model("models:/fcm-lstm/1")
        with pytest.raises(tracking.ModelIntegrityError, match=message):
            tracking.load_registered(settings)

        # A restart serves nothing: not the tampered version, and not the cached copy either.
        with TestClient(create_app(make_settings(registry))) as c:
            ready = c.get("/readyz")
            assert ready.status_code == 503 and "refused the model" in ready.json()["detail"]
            assert "changed since registration" in ready.json()["detail"]
            assert c.post("/v1/forecast", json={"ticker": "AAA"}).status_code == 503

        monkeypatch.setenv("FORECASTER_HOME", str(registry))
        with pytest.raises(SystemExit) as exited:
            batch_forecast.main([])
        assert exited.value.code == 1
        assert "error: fcm-lstm v1: its files changed since registration" in capsys.readouterr().err
    assert tracking.load_model("models:/fcm-lstm/1") is not None  # restored: served again


def test_a_version_registered_without_a_checksum_is_refused(settings):
    client = MlflowClient()
    digest = client.get_model_version("fcm-lstm", "1").tags[tracking.CHECKSUM_TAG]
    client.delete_model_version_tag("fcm-lstm", "1", tracking.CHECKSUM_TAG)
    try:
        with pytest.raises(tracking.ModelIntegrityError, match="fcm-lstm v1 has no recorded checksum"):
            tracking.load_model("models:/fcm-lstm@champion")
    finally:
        client.set_model_version_tag("fcm-lstm", "1", tracking.CHECKSUM_TAG, digest)
