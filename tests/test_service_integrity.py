"""What the API serves is what the registry recorded: a cached copy is checked before it is served
and when the registry returns, and a refused version is refused once, not at every poll.

In-process apps (TestClient) where a restart is enough; a real uvicorn and a real `mlflow server`
that comes back on its port for the registry's return.
"""

# ruff: noqa: F811  (pytest fixtures imported from test_service are arguments here)
from __future__ import annotations

import contextlib
import json
import logging
import time

import mlflow
import pytest
import requests
import torch
from fastapi.testclient import TestClient
from mlflow import MlflowClient
from servers import free_port, mlflow_server
from test_service import (  # noqa: F401  (module fixtures: a registry of its own for this module)
    bars_body,
    make_settings,
    registry,
    tiny_config_module,
    two_ticker_bars_module,
)
from test_service_resilience import api_process, wait_for

from forecaster import tracking
from forecaster.config import Settings
from forecaster.tracking.pyfunc import model_checksum, record_checksum
from service.main import create_app


@pytest.fixture
def registry_env(monkeypatch):
    """The registry is the module's SQLite store; a dead one fails at once (no retries)."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    return monkeypatch


def cached_entry(home):
    return make_settings(home).serving_cache_dir / "fcm-lstm" / "1"


def recorded_checksum(home, version="1") -> str:
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        tracking.configure(Settings(home=home))
        return MlflowClient().get_model_version("fcm-lstm", version).tags[tracking.CHECKSUM_TAG]


def triple_weights(folder) -> None:
    """A valid state dict serving other numbers: every weight of the copy's weights.pt times 3."""
    (path,) = folder.rglob("weights.pt")
    weights = torch.load(path, weights_only=True)
    torch.save({k: v * 3 for k, v in weights.items()}, path)


def forecast_steps(post, bars) -> list[float]:
    r = post("/v1/forecast", json={"bars": bars, "horizon": 2})
    assert r.status_code == 200, r.text
    return [s["forecast"] for s in r.json()["steps"]]


def test_a_tampered_cached_copy_is_not_served_and_a_restart_with_the_registry_replaces_it(
    registry, registry_env, two_ticker_bars_module
):
    bars = bars_body(two_ticker_bars_module)
    with TestClient(create_app(make_settings(registry))) as c:  # serves v1 and caches it
        genuine = forecast_steps(c.post, bars)
    entry = cached_entry(registry)
    triple_weights(entry)

    # Restarted during a registry outage: the altered copy is refused, the service says why.
    registry_env.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{free_port()}")
    with TestClient(create_app(make_settings(registry))) as c:
        ready = c.get("/readyz")
        assert ready.status_code == 503, ready.text
        detail = ready.json()["detail"]
        assert "registry unreachable" in detail and "the cached copy did not load" in detail
        assert "fcm-lstm v1 (cached copy): its files changed since it was cached" in detail
        r = c.post("/v1/forecast", json={"bars": bars})
        assert r.status_code == 503 and "no model loaded" in r.json()["detail"]
        assert c.get("/v1/model").status_code == 503 and c.get("/healthz").status_code == 200

    # Restarted with the registry up: v1 from the registry, and a good copy in place of the bad one.
    registry_env.delenv("MLFLOW_TRACKING_URI")
    with TestClient(create_app(make_settings(registry))) as c:
        assert c.get("/readyz").json()["source"] == "registry"
        assert forecast_steps(c.post, bars) == genuine
    assert model_checksum(entry / "model") == recorded_checksum(registry)


def test_a_cached_copy_is_relabelled_only_when_it_is_what_the_registry_recorded(
    registry, registry_env, two_ticker_bars_module, tmp_path
):
    """The altered copy comes with a checksum rewritten to match it (whoever can write the cache can
    do that): served during the outage, then replaced, not relabelled, when the registry returns."""
    bars = bars_body(two_ticker_bars_module)
    with TestClient(create_app(make_settings(registry))) as c:
        genuine = forecast_steps(c.post, bars)
    entry = cached_entry(registry)
    triple_weights(entry)
    record = json.loads((entry / "registry.json").read_text())
    record[tracking.CHECKSUM_TAG] = model_checksum(entry / "model")
    (entry / "registry.json").write_text(json.dumps(record))

    port, log = free_port(), tmp_path / "api.log"
    with api_process(registry, log, MLFLOW_TRACKING_URI=f"http://127.0.0.1:{port}",
                     FORECASTER_REGISTRY_RETRY_S="1") as (url, proc):  # fmt: skip
        assert wait_for(f"{url}/readyz", proc, log).json()["source"] == "cache"
        post = lambda path, **kw: requests.post(f"{url}{path}", timeout=30, **kw)  # noqa: E731
        assert forecast_steps(post, bars) != genuine  # the forged copy, while nothing can tell
        backend = f"sqlite:///{registry / 'mlflow.db'}"
        with mlflow_server(backend, tmp_path / "artifacts", tmp_path / "mlflow.log", port=port):
            deadline = time.monotonic() + 120  # the retry loop sees the registry within seconds
            while (info := requests.get(f"{url}/v1/model", timeout=10).json())["source"] != "registry":
                assert time.monotonic() < deadline and proc.poll() is None, log.read_text()[-3000:]
                time.sleep(0.3)
            assert info["registry"] == "ok" and forecast_steps(post, bars) == genuine
        assert "the cached copy of fcm-lstm v1 is not what the registry recorded" in log.read_text()
    assert model_checksum(entry / "model") == recorded_checksum(registry)


@contextlib.contextmanager
def tampered_registry_weights(home):
    """Every weights.pt the registry stores changed (a valid file serving other numbers), then restored."""
    files = list((home / "mlartifacts").rglob("weights.pt"))
    saved = {f: f.read_bytes() for f in files}
    try:
        for f in files:
            triple_weights(f.parent)
        yield
    finally:
        for f, content in saved.items():
            f.write_bytes(content)


def test_a_refused_champion_is_not_downloaded_or_logged_again_at_each_poll(registry, registry_env, caplog):
    downloads = []
    real_download = mlflow.artifacts.download_artifacts

    def counted(*args, **kwargs):
        downloads.append(args[0] if args else kwargs.get("artifact_uri"))
        return real_download(*args, **kwargs)

    registry_env.setattr(mlflow.artifacts, "download_artifacts", counted)
    caplog.set_level(logging.INFO, logger="service")
    settings = make_settings(registry, registry_retry_s=3600)  # polls are called below, one by one
    with tampered_registry_weights(registry), TestClient(create_app(settings)) as c:
        state, client = c.app.state.model, MlflowClient()
        for _ in range(5):
            assert state.check_once() is False
        errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
        assert len(downloads) == 1 and len(errors) == 1, (downloads, [r.getMessage() for r in errors])
        detail = c.get("/readyz").json()["detail"]
        assert "refused the model" in detail and "changed since registration" in detail

        # The champion moves to a new version (a good one): tried at the next poll.
        v1 = client.get_model_version("fcm-lstm", "1")
        new = client.create_model_version("fcm-lstm", v1.source, v1.run_id).version
        try:
            # Its files are the registry's current (altered) ones, recorded as such at its registration.
            record_checksum("fcm-lstm", new)
            client.set_registered_model_alias("fcm-lstm", "champion", new)
            assert state.check_once() is True
            assert len(downloads) == 3  # record_checksum's and the poll's
            assert c.get("/readyz").json()["model_version"] == str(new)
        finally:
            client.set_registered_model_alias("fcm-lstm", "champion", "1")
