"""Ray Train: the retrain job on the ray engine trains with DDP on 2 CPU workers and leaves the
same model directory and registry flow as the local engine."""

from __future__ import annotations

import numpy as np
from mlflow.tracking import MlflowClient

from forecaster.config import Settings
from forecaster.data import PriceStore
from forecaster.model import FuzzyLSTMForecaster
from pipelines import train as train_job


def test_two_worker_ddp_training_produces_a_loadable_registered_model(
    ray_runtime, tiny_config, two_ticker_bars, tmp_path, monkeypatch
):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    home = tmp_path / "home"
    PriceStore(home / "prices").write(two_ticker_bars)
    settings = Settings(home=home, source="cache", universe=["AAA", "BBB"], engine="ray", train_workers=2)

    result = train_job.run(settings, tiny_config, "ddp", ingest=False)

    loaded = FuzzyLSTMForecaster.load(result.model_dir)
    forecast = loaded.predict(two_ticker_bars)
    assert len(forecast) == 2 * tiny_config.window.horizon and np.isfinite(forecast["forecast"]).all()
    assert loaded.metrics_["n_clusters"] == 2 and np.isfinite(loaded.metrics_["val_pinball"])
    assert loaded.metrics_["val_coverage_95"] > 0.5  # calibrated like a model of this data
    client = MlflowClient()
    assert str(client.get_model_version_by_alias(settings.model_name, "challenger").version) == result.version
    assert result.promoted and result.reason == "no champion yet"
