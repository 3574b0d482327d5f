"""`forecaster tune` on a local Ray: trials as nested MLflow runs, the best retrained as challenger."""

from __future__ import annotations

import pytest
from mlflow.tracking import MlflowClient

from forecaster.config import Settings
from forecaster.data import PriceStore
from forecaster.scale.tuning import comparable_score
from pipelines import tune as tune_job

TINY_SPACE = {  # every draw fits in seconds on tiny data
    "n_clusters": [2],
    "m": (1.5, 2.5),
    "hidden_size": [8],
    "lr": (1e-3, 3e-3),
    "window": [10, 15],
    "head": ["quantile", "mse"],
}


def test_the_mse_score_is_the_pinball_loss_of_a_gaussian_with_that_error():
    # sigma 1: the pinball loss of the exact N(0, 1) quantile at q is phi(Phi^-1(q)); at the median 0.3989.
    assert comparable_score({"fused/val_loss": 1.0}, "mse", (0.5,)) == pytest.approx(0.398942, abs=1e-6)
    assert comparable_score(
        {"expert_0/val_loss": 0.2, "expert_1/val_loss": 0.4}, "quantile", (0.5,)
    ) == pytest.approx(0.3)


def test_a_two_trial_search_leaves_two_nested_runs_and_one_new_challenger(
    ray_runtime, tiny_config, two_ticker_bars, tmp_path, monkeypatch
):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    home = tmp_path / "home"
    PriceStore(home / "prices").write(two_ticker_bars)
    settings = Settings(home=home, source="cache", universe=["AAA", "BBB"])

    result = tune_job.run(settings, tiny_config, trials=2, space=TINY_SPACE, name="tuned")

    client = MlflowClient()
    experiment = client.get_experiment_by_name(settings.experiment)
    trials = client.search_runs(
        [experiment.experiment_id], f"tags.mlflow.parentRunId = '{result.search_run_id}'"
    )
    assert len(trials) == 2 and result.trials == 2 and result.finished >= 1
    for trial in trials:
        assert {"window", "head", "m", "lr"} <= set(trial.data.params)
        curve = client.get_metric_history(trial.info.run_id, "val_score")
        assert len(curve) >= 2 and [m.step for m in curve] == sorted(m.step for m in curve)
    versions = client.search_model_versions(f"name = '{settings.model_name}'")
    assert len(versions) == 1
    challenger = client.get_model_version_by_alias(settings.model_name, "challenger")
    assert str(challenger.version) == result.retrained.version
    assert result.retrained.promoted and result.retrained.reason == "no champion yet"  # the gate ran
    parent = client.get_run(result.search_run_id)
    assert parent.data.tags["retrained.version"] == str(challenger.version)
    assert (home / "models" / "tuned" / "weights.pt").is_file()
