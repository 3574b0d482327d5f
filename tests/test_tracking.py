"""MLflow tracking, pyfunc and registry against real stores: SQLite, and a real `mlflow server`
process on PostgreSQL with proxied artifacts."""

import json
import os
import subprocess
import sys
import time

import mlflow
import pandas as pd
import pytest
import requests
from mlflow.tracking import MlflowClient
from servers import fresh_postgres_database, mlflow_server

from forecaster import tracking
from forecaster.config import Settings
from forecaster.evaluation.plots import plot_memberships
from forecaster.features.windows import make_windows
from forecaster.model import FuzzyLSTMForecaster


@pytest.fixture
def settings(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return Settings(home=tmp_path / "home", source="sample")


@pytest.fixture
def fitted(tiny_config, two_ticker_bars):
    return FuzzyLSTMForecaster(tiny_config).fit(two_ticker_bars, progress=False)


def sabotaged(model: FuzzyLSTMForecaster, bias: float) -> FuzzyLSTMForecaster:
    """The same model with every expert's forecast shifted: a real but worse model."""
    model.experts_.head_bias.data += bias
    return model


def test_run_has_params_epoch_curves_artifacts_dataset_and_exact_pyfunc(
    settings, fitted, two_ticker_bars, tmp_path
):
    windows = make_windows(two_ticker_bars, fitted.config.window)
    plot = plot_memberships(
        windows, fitted.predict_windows(windows).memberships, "AAA", tmp_path / "memberships.png"
    )
    logged = tracking.log_training_run(fitted, two_ticker_bars, settings, run_name="tiny", plots=(plot,))

    assert settings.tracking_uri.startswith("sqlite:///") and (settings.home / "mlflow.db").is_file()
    client = MlflowClient()
    run = client.get_run(logged.run_id)
    assert run.data.params["window.window"] == "10" and run.data.params["cluster.n_clusters"] == "2"
    assert "val_theil_u" in run.data.metrics
    history = client.get_metric_history(logged.run_id, "loss/experts.expert_0.val_loss")
    assert [m.step for m in history] == [1, 2]
    # Single values describing the fit are params, not one-point metric charts.
    assert run.data.params["n_clusters"] == "2" and run.data.params["xie_beni_by_c"].startswith("2: ")
    # The logged FPC is the fit's, and the fit found structure: uniform memberships give FPC = 1/c
    # (0.5 here), and the clusterer itself calls anything under 1/c + 0.05 nearly uniform.
    fpc = float(run.data.params["cluster_fpc"])
    assert fpc == pytest.approx(fitted.clusterer_.fpc_, abs=1e-4) and fpc > 1 / 2 + 0.05  # logged to 4 places
    assert not {"n_clusters", "cluster_fpc", "xie_beni", "xie_beni_by_c"} & set(run.data.metrics)
    experiment = client.get_experiment(run.info.experiment_id)
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
    url = tracking.ui_url(settings)
    assert url.endswith(f"/#/experiments/{experiment.experiment_id}?workflowType=machine_learning")
    assert run.data.tags["data.tickers"] == "AAA,BBB" and run.data.tags["device"] == "cpu"
    assert run.data.tags["git_commit"]
    artifacts = {a.path for a in client.list_artifacts(logged.run_id)} | {
        a.path for a in client.list_artifacts(logged.run_id, "plots")
    }
    assert {"config.json", "data_fingerprint.json", "plots/memberships.png"} <= artifacts
    (dataset_input,) = run.inputs.dataset_inputs
    assert dataset_input.tags[0].value == "training"

    assert logged.version == "1"
    assert str(client.get_model_version_by_alias(settings.model_name, "challenger").version) == "1"
    loaded = mlflow.pyfunc.load_model(f"models:/{settings.model_name}@challenger")
    served = loaded.predict(two_ticker_bars)  # the forecast and regime, exactly, plus the regime shift
    pd.testing.assert_frame_equal(
        served.drop(columns="regime_shift"), fitted.predict(two_ticker_bars), check_exact=True
    )


def test_promotion_moves_champion_only_for_a_better_challenger(settings, tiny_config, two_ticker_bars):
    fit = lambda: FuzzyLSTMForecaster(tiny_config).fit(two_ticker_bars, progress=False)  # noqa: E731
    client = MlflowClient

    tracking.log_training_run(sabotaged(fit(), 0.5), two_ticker_bars, settings)
    first = tracking.promote(settings, two_ticker_bars)
    assert first.promoted and first.reason == "no champion yet"

    tracking.log_training_run(sabotaged(fit(), 5.0), two_ticker_bars, settings)
    worse = tracking.promote(settings, two_ticker_bars)
    assert not worse.promoted and worse.challenger_score > worse.champion_score
    assert str(client().get_model_version_by_alias(settings.model_name, "champion").version) == "1"
    tags = client().get_model_version(settings.model_name, "2").tags
    assert tags["promotion.decision"] == "rejected" and tags["promotion.metric"] == "pinball"
    assert float(tags["promotion.challenger_score"]) > float(tags["promotion.champion_score"])

    tracking.log_training_run(fit(), two_ticker_bars, settings)
    better = tracking.promote(settings, two_ticker_bars)
    assert better.promoted and better.challenger_score < better.champion_score
    assert str(client().get_model_version_by_alias(settings.model_name, "champion").version) == "3"
    assert client().get_model_version(settings.model_name, "3").tags["promotion.decision"] == "promoted"
    rows = tracking.list_versions(settings)
    assert [(r["version"], r["aliases"]) for r in rows] == [
        ("3", "challenger,champion"),
        ("2", ""),
        ("1", ""),
    ]


def test_a_training_run_opens_before_training_and_its_curves_grow_live(
    settings, tiny_config, two_ticker_bars
):
    with tracking.training_run(settings, "live") as run:
        client = MlflowClient()  # after the run points MLflow at the store
        fit_started = time.time() * 1000
        model = FuzzyLSTMForecaster(tiny_config).fit(two_ticker_bars, progress=False)
        live = client.get_metric_history(run.info.run_id, "loss/experts.expert_0.val_loss")
        assert [m.step for m in live] == [1, 2]  # in the run while it trains, not after
        time.sleep(0.05)
        logged = tracking.log_training_run(model, two_ticker_bars, settings, run_name="ignored")
    assert logged.run_id == run.info.run_id
    info = client.get_run(run.info.run_id).info
    assert info.start_time <= fit_started <= live[0].timestamp  # opened before the first epoch
    assert info.status == "FINISHED" and info.end_time > live[-1].timestamp
    assert [m.step for m in client.get_metric_history(run.info.run_id, "loss/experts.expert_0.val_loss")] == [
        1,
        2,
    ]
    assert [m.step for m in client.get_metric_history(run.info.run_id, "loss/fine_tune.fused.val_loss")] == [
        1
    ]
    assert len(client.search_runs([info.experiment_id])) == 1


def test_printed_links_open_the_model_training_view(settings, fitted, two_ticker_bars):
    logged = tracking.log_training_run(fitted, two_ticker_bars, settings, register=False)
    experiment = mlflow.get_experiment_by_name(settings.experiment).experiment_id
    query = "?workflowType=machine_learning"
    assert tracking.ui_url(settings) == f"http://127.0.0.1:5000/#/experiments/{experiment}{query}"
    assert tracking.run_url(settings, logged.run_id, "http://localhost:5050/") == (
        f"http://localhost:5050/#/experiments/{experiment}/runs/{logged.run_id}{query}"
    )


def test_forecaster_ui_is_sized_for_one_user(settings, tmp_path):
    import psutil
    from servers import free_port, process

    port, log = free_port(), tmp_path / "ui.log"
    command = [sys.executable, "-m", "forecaster.cli", "ui", "--port", str(port)]
    env = {**os.environ, "FORECASTER_HOME": str(settings.home)}
    with process(command, log, env=env, ready_url=f"http://127.0.0.1:{port}/health") as ui:
        assert requests.get(f"http://127.0.0.1:{port}/", timeout=10).ok
        children = [" ".join(p.cmdline()) for p in psutil.Process(ui.pid).children(recursive=True)]
    assert not [c for c in children if "huey" in c or "job_runner" in c], children
    uvicorn = [c for c in children if "uvicorn" in c]
    assert uvicorn and all("--workers 1" in c for c in uvicorn), children
    output = log.read_text()
    assert "workflowType=machine_learning" in output
    assert "Warning" not in output, output


def test_unknown_promotion_metric_is_a_clear_error(settings):
    with pytest.raises(ValueError, match="promotion metric must be one of"):
        tracking.promote(settings, pd.DataFrame(), metric="accuracy")


LOAD_CHAMPION = """
import json, sys
import mlflow, pandas as pd
from forecaster.data import validate_bars
bars = validate_bars(pd.read_parquet(sys.argv[1]))
model = mlflow.pyfunc.load_model("models:/fcm-lstm@champion")
print(json.dumps(model.predict(bars)["forecast"].round(6).tolist()))
"""


def test_mlflow_server_on_postgres_serves_registry_artifacts_and_ui(
    tmp_path, monkeypatch, fitted, two_ticker_bars, capsys
):
    with (
        fresh_postgres_database() as db,
        mlflow_server(db, tmp_path / "artifacts", tmp_path / "mlflow.log") as url,
    ):
        monkeypatch.setenv("MLFLOW_TRACKING_URI", url)
        settings = Settings(home=tmp_path / "home")
        assert settings.tracking_uri == url
        logged = tracking.log_training_run(fitted, two_ticker_bars, settings, run_name="on-server")
        # MLflow's own "View run ... at" links open the GenAI view: ours, in the training view, only.
        assert "View run" not in capsys.readouterr().out
        link = tracking.run_url(settings, logged.run_id)
        assert link.startswith(f"{url}/#/experiments/") and link.endswith("?workflowType=machine_learning")
        assert tracking.promote(settings, two_ticker_bars).promoted
        assert any((tmp_path / "artifacts").rglob("weights.pt")), "artifacts must go through the server"

        # A second process loads the champion through the server alone.
        bars_file = tmp_path / "bars.parquet"
        two_ticker_bars.to_parquet(bars_file)
        env = {"MLFLOW_TRACKING_URI": url, "PATH": "/usr/bin:/bin"}
        result = subprocess.run(
            [sys.executable, "-c", LOAD_CHAMPION, str(bars_file)],
            capture_output=True,
            text=True,
            env=env,
            timeout=180,
        )
        assert result.returncode == 0, result.stderr[-2000:]
        expected = fitted.predict(two_ticker_bars)["forecast"].round(6).tolist()
        assert json.loads(result.stdout.strip().splitlines()[-1]) == pytest.approx(expected, rel=1e-9)

        # The UI: its page loads, and the run and model are visible through the REST API it uses.
        page = requests.get(url, timeout=10)
        assert page.ok and "<html" in page.text.lower() and "mlflow" in page.text.lower()
        runs = requests.post(
            f"{url}/api/2.0/mlflow/runs/search",
            json={"experiment_ids": [mlflow.get_experiment_by_name(settings.experiment).experiment_id]},
            timeout=10,
        ).json()["runs"]
        assert [r["info"]["run_id"] for r in runs] == [logged.run_id]
        model = requests.get(
            f"{url}/api/2.0/mlflow/registered-models/get", params={"name": "fcm-lstm"}, timeout=10
        )
        assert {a["alias"] for a in model.json()["registered_model"]["aliases"]} == {"champion", "challenger"}


def test_the_retrain_job_opens_its_run_before_it_trains(tmp_path, monkeypatch, tiny_config, two_ticker_bars):
    from forecaster.data.store import PriceStore
    from pipelines import train as train_job

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    home = tmp_path / "home"
    PriceStore(home / "prices").write(two_ticker_bars)
    settings = Settings(home=home, source="cache", universe=["AAA", "BBB"])
    result = train_job.run(settings, tiny_config, "weekly", ingest=False)
    info = MlflowClient().get_run(result.run_id).info
    saved = (result.model_dir / "weights.pt").stat().st_mtime * 1000
    assert info.start_time < saved < info.end_time  # the run spans the fit, not only the logging after it
    assert info.status == "FINISHED" and len(MlflowClient().search_runs([info.experiment_id])) == 1
