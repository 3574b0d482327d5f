"""The docker-compose topology: the file validated by docker-compose, and the same services run as
local processes end to end (PostgreSQL, mlflow server, training job, API, batch forecast job)."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import requests
import yaml
from servers import free_port, fresh_postgres_database, mlflow_command, process, stop

from forecaster.data import PriceStore, load_sample
from forecaster.runtime.placeholders import SECRETS, placeholder_problem

ROOT = Path(__file__).parents[1]


def compose_config(tmp_path: Path) -> dict:
    if shutil.which("docker-compose") is None:
        pytest.skip("docker-compose is not installed (Debian package docker-compose; .ci/run installs it)")
    shutil.copy(ROOT / "docker-compose.yml", tmp_path / "docker-compose.yml")
    shutil.copy(ROOT / ".env.example", tmp_path / ".env")
    shutil.copytree(ROOT / "docker", tmp_path / "docker")
    result = subprocess.run(
        ["docker-compose", "config"], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)


def test_compose_file_declares_the_topology(tmp_path):
    config = compose_config(tmp_path)
    services = config["services"]
    assert set(services) == {
        "postgres",
        "mlflow",
        "api",
        "scheduler",
        "train",
        "train-gpu",
        "ray-head",
        "ray-worker",
    }
    ports = {name: {p["published"] for p in s.get("ports", [])} for name, s in services.items()}
    assert ports["mlflow"] == {5000} and ports["api"] == {8000}
    for name in ("postgres", "mlflow"):
        assert services[name]["healthcheck"]["test"], name
    assert services["mlflow"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    for name in ("api", "scheduler", "train"):
        assert services[name]["depends_on"]["mlflow"]["condition"] == "service_healthy"
        assert services[name]["environment"]["MLFLOW_TRACKING_URI"] == "http://mlflow:5000"
    assert services["api"]["environment"]["FORECASTER_MODEL_URI"] == "models:/fcm-lstm@champion"
    assert services["scheduler"]["environment"]["FORECASTER_FORECAST_STORE_URL"].startswith("postgresql://")
    assert (
        "--serve-artifacts" in services["mlflow"]["command"]
        and "postgresql://" in services["mlflow"]["command"]
    )
    assert services["train"]["profiles"] == ["train"]
    # The Ray cluster (profile ray); the scheduler and the train job attach to it through RAY_ADDRESS.
    assert services["ray-head"]["profiles"] == services["ray-worker"]["profiles"] == ["ray"]
    assert (
        "ray start --head" in services["ray-head"]["command"]
        and "--port 6379" in services["ray-head"]["command"]
    )
    assert services["ray-worker"]["command"].startswith("ray start --address ray-head:6379")
    assert services["ray-worker"]["depends_on"]["ray-head"]["condition"] == "service_healthy"
    for name in ("scheduler", "train"):
        assert services[name]["environment"]["RAY_ADDRESS"] == "ray-head:6379", name
    for name in ("ray-head", "ray-worker", "scheduler", "train"):
        assert services[name]["environment"]["RAY_AUTH_MODE"] == "token", name
    (device,) = services["train-gpu"]["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia" and device["capabilities"] == ["gpu"]
    dockerfile = (ROOT / "docker" / "Dockerfile").read_text()
    assert "HEALTHCHECK" in dockerfile and "USER app" in dockerfile and "ARG TORCH=cpu" in dockerfile
    assert (
        ".venv" in (ROOT / ".dockerignore").read_text()
        and ".forecaster" in (ROOT / ".dockerignore").read_text()
    )


def test_an_env_file_copied_unchanged_is_refused_at_start_naming_the_variable(tmp_path):
    example = dict(
        line.split("=", 1) for line in (ROOT / ".env.example").read_text().splitlines() if "=" in line
    )
    secrets = [name for name in SECRETS if "CHANGE-ME" in example.get(name, "")]
    assert secrets and set(secrets) == {name for name, value in example.items() if "CHANGE-ME" in value}
    # What docker-compose hands the containers: .env (env_file) and the URL built from the password.
    password = example["POSTGRES_PASSWORD"]
    env = {**os.environ, **example, "FORECASTER_FORECAST_STORE_URL": f"postgresql://u:{password}@db/x"}
    env |= {"FORECASTER_HOME": str(tmp_path / "home")}
    jobs = [["forecaster.cli", "runs"], ["pipelines.train", "--no-register"], ["service", "--port", "1"]]
    jobs += [[f"pipelines.{job}"] for job in ("batch_forecast", "ingest", "scheduler", "tune")]
    for job in jobs:
        result = subprocess.run(
            [sys.executable, "-m", *job], env=env, capture_output=True, text=True, timeout=120
        )
        assert result.returncode == 2, result.stderr
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and "POSTGRES_PASSWORD is still the placeholder CHANGE-ME" in lines[0], lines
    # Each secret is named once the ones before it are set; with all of them set, the verb runs.
    for i, name in enumerate(secrets):
        assert placeholder_problem({**example, **dict.fromkeys(secrets[:i], "set")}).startswith(name)
        env[name] = "a-real-secret"
    env["FORECASTER_FORECAST_STORE_URL"] = f"sqlite:///{tmp_path / 'forecasts.db'}"
    result = subprocess.run(
        [sys.executable, "-m", "forecaster.cli", "runs"], env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0 and "no job runs recorded yet" in result.stdout, result.stderr


def run_job(args: list[str], env: dict, log: Path) -> None:
    with open(log, "a") as out:
        result = subprocess.run(
            [sys.executable, "-m", *args], env=env, stdout=out, stderr=subprocess.STDOUT, timeout=600
        )
    assert result.returncode == 0, log.read_text()[-3000:]


def wait_for(check, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


def test_topology_end_to_end_as_local_processes(tmp_path):
    home, logs = tmp_path / "home", tmp_path / "logs"
    logs.mkdir()
    PriceStore(home / "prices").write(load_sample(["^GSPC"]))  # what an ingest run would have left
    mlflow_port, api_port = free_port(), free_port()
    mlflow_url, api = f"http://127.0.0.1:{mlflow_port}", f"http://127.0.0.1:{api_port}"
    with contextlib.ExitStack() as stack:  # everything started here is stopped, also on failure
        mlflow_db = stack.enter_context(fresh_postgres_database())
        forecasts_db = stack.enter_context(fresh_postgres_database())
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "FORECASTER_"))},
            "FORECASTER_HOME": str(home),
            "FORECASTER_SOURCE": "cache",
            "FORECASTER_UNIVERSE": '["^GSPC"]',
            "FORECASTER_FORECAST_STORE_URL": forecasts_db,
            "MLFLOW_TRACKING_URI": mlflow_url,
            "FORECASTER_RELOAD_INTERVAL_S": "1",
            "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
            "MLFLOW_HTTP_REQUEST_TIMEOUT": "3",
        }
        mlflow_cmd = mlflow_command(mlflow_db, tmp_path / "mlartifacts", mlflow_port)
        mlflow = stack.enter_context(
            process(mlflow_cmd, logs / "mlflow.log", ready_url=f"{mlflow_url}/health")
        )

        run_job(
            ["pipelines.train", "--epochs", "1", "--no-ingest", "--name", "first"], env, logs / "train.log"
        )
        uvicorn = [
            sys.executable,
            "-m",
            "uvicorn",
            "--factory",
            "service.main:create_app",
            "--port",
            str(api_port),
        ]
        stack.enter_context(process(uvicorn, logs / "api.log", env=env, ready_url=f"{api}/readyz"))
        run_job(["pipelines.batch_forecast"], env, logs / "batch.log")

        forecast = requests.post(f"{api}/v1/forecast", json={"ticker": "^GSPC", "horizon": 5}, timeout=30)
        assert forecast.status_code == 200, forecast.text
        assert forecast.json()["model"]["version"] == "1" and len(forecast.json()["steps"]) == 5
        stored = requests.get(f"{api}/v1/forecasts/^GSPC", timeout=30)
        assert stored.status_code == 200 and [r["horizon"] for r in stored.json()] == [1, 2, 3, 4, 5]
        assert stored.json()[0]["as_of"] == "2018-12-31" and stored.json()[0]["model_version"] == "1"
        model = requests.get(
            f"{mlflow_url}/api/2.0/mlflow/registered-models/get", params={"name": "fcm-lstm"}
        )
        assert {a["alias"] for a in model.json()["registered_model"]["aliases"]} == {"champion", "challenger"}
        experiment = requests.get(
            f"{mlflow_url}/api/2.0/mlflow/experiments/get-by-name", params={"experiment_name": "fcm-lstm"}
        ).json()["experiment"]
        runs = requests.post(
            f"{mlflow_url}/api/2.0/mlflow/runs/search", json={"experiment_ids": [experiment["experiment_id"]]}
        )
        assert len(runs.json()["runs"]) == 1

        # MLflow goes down: the API keeps serving the model it has and says the registry is unreachable.
        stop(mlflow)
        wait_for(lambda: requests.get(f"{api}/v1/model", timeout=10).json()["registry"].startswith("unreachable"),
                 60, "/v1/model to report the registry unreachable")  # fmt: skip
        assert requests.post(f"{api}/v1/forecast", json={"ticker": "^GSPC"}, timeout=30).status_code == 200

        # MLflow comes back; a new version is trained and made champion: the API picks it up.
        stack.enter_context(process(mlflow_cmd, logs / "mlflow.log", ready_url=f"{mlflow_url}/health"))
        run_job(
            ["pipelines.train", "--epochs", "1", "--no-ingest", "--name", "second"], env, logs / "train.log"
        )
        subprocess.run(
            [sys.executable, "-c", "from mlflow import MlflowClient; "
             "MlflowClient().set_registered_model_alias('fcm-lstm', 'champion', '2')"],
            env=env, check=True, timeout=120,
        )  # fmt: skip
        info = wait_for(
            lambda: (m := requests.get(f"{api}/v1/model", timeout=10).json())["version"] == "2" and m,
            90,
            "the API to load version 2",
        )
        assert info["registry"] == "ok"
        forecast = requests.post(f"{api}/v1/forecast", json={"ticker": "^GSPC"}, timeout=30)
        assert forecast.json()["model"]["version"] == "2"


def test_jobs_attach_to_a_ray_head_started_as_a_process(tmp_path):
    """`ray start --head` as docker-compose's ray-head runs it; the train and batch forecast jobs
    attach through RAY_ADDRESS with the cluster's token, train with DDP and forecast on it."""
    home, logs = tmp_path / "home", tmp_path / "logs"
    logs.mkdir()
    PriceStore(home / "prices").write(load_sample(["^GSPC"]))
    port = free_port()
    token = os.urandom(16).hex()
    ray_env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "FORECASTER_", "RAY_"))},
        "PYTHONPATH": str(ROOT),  # the head's workers import this checkout, as the image's would
        "RAY_AUTH_MODE": "token",
        "RAY_AUTH_TOKEN": token,
        "RAY_USAGE_STATS_ENABLED": "0",
    }
    head = [
        str(Path(sys.executable).with_name("ray")), "start", "--head", "--block", "--port", str(port),
        "--num-cpus", "2", "--disable-usage-stats", "--include-dashboard=false",
    ]  # fmt: skip
    env = ray_env | {
        "RAY_ADDRESS": f"127.0.0.1:{port}",
        "FORECASTER_HOME": str(home),
        "FORECASTER_SOURCE": "cache",
        "FORECASTER_UNIVERSE": '["^GSPC"]',
        "FORECASTER_ENGINE": "ray",
    }
    # Ray's socket paths must stay under 108 bytes: a short temporary folder, not tmp_path.
    with (
        tempfile.TemporaryDirectory(prefix="ray-", dir="/tmp") as ray_dir,
        process([*head, "--temp-dir", ray_dir], logs / "ray-head.log", env=ray_env),
    ):
        wait_for(lambda: subprocess.run(
            [head[0], "health-check", "--address", f"127.0.0.1:{port}"], env=ray_env, capture_output=True
        ).returncode == 0, 120, "the Ray head")  # fmt: skip
        run_job(["pipelines.train", "--epochs", "1", "--no-ingest", "--workers", "2", "--name", "ddp"],
                env, logs / "train.log")  # fmt: skip
        run_job(["pipelines.batch_forecast"], env, logs / "batch.log")

    assert (home / "models" / "ddp" / "weights.pt").is_file()
    train_log = (logs / "train.log").read_text()
    assert "trained on 2 CPU workers (DDP)" in train_log and "attached to 127.0.0.1" in train_log
    assert "1 tickers forecast, 0 skipped; 5 new rows" in (logs / "batch.log").read_text()
