"""Search job: Ray Tune (ASHA) over the model's settings -> MLflow -> retrain the best -> promotion gate.

Usage:
    python -m pipelines.tune --trials 16 --time-budget 3600      # Ray at RAY_ADDRESS, else one started here
    python -m pipelines.tune --trials 8 --cpus-per-trial 2 --epochs 10
    RAY_ADDRESS=ray-head:6379 python -m pipelines.tune --gpus-per-trial 1

Draws `--trials` configurations of clusters, fuzzifier m, hidden size, learning rate, window
length and head (quantile / mse) (forecaster/scale/tuning.py), fits each on the universe's bars as a
Ray Tune trial under the ASHA scheduler (weak trials stop after a few epochs), and logs the
search to MLflow: one parent run, each trial a nested run with its curves. The best finished
trial's configuration is then fitted again on the same bars, written to
FORECASTER_HOME/models/<name>, registered as `challenger` and sent through the promotion gate,
as `python -m pipelines.train` does. The search always runs on Ray; FORECASTER_ENGINE does not
change that. Every run is recorded in `job_runs` (job `tune`).
"""

from __future__ import annotations

import argparse
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy.engine import Engine

from forecaster import forecast_store, tracking
from forecaster.cli.common import EXPECTED_ERRORS, fail
from forecaster.config import ForecasterConfig, Settings, TrainConfig
from forecaster.data import DataSourceError
from forecaster.runtime.engine import start_ray
from forecaster.runtime.logs import setup_logging
from forecaster.runtime.placeholders import exit_on_placeholders
from forecaster.scale.tuning import search
from pipelines.train import RetrainResult, fit_and_save, load_universe, register_and_promote

log = logging.getLogger("pipelines.tune")


@dataclass
class TuneResult:
    search_run_id: str
    trials: int
    finished: int
    best_params: dict = field(default_factory=dict)
    retrained: RetrainResult | None = None


def run(
    settings: Settings,
    base: ForecasterConfig,
    *,
    trials: int = 8,
    time_budget_s: float | None = None,
    cpus_per_trial: float = 1,
    gpus_per_trial: float = 0,
    name: str | None = None,
    space: dict | None = None,
    engine: Engine | None = None,
) -> TuneResult:
    """The job: search, log, retrain the best configuration, register it and run the promotion gate."""
    start_ray(settings.ray_address or "", settings.ray_num_cpus)  # unreachable cluster: fail before work
    engine = engine or forecast_store.connect(settings.forecast_store_url)
    with forecast_store.record_run(engine, "tune") as record:
        bars = load_universe(settings)
        found = search(
            bars,
            base,
            trials=trials,
            time_budget_s=time_budget_s,
            cpus_per_trial=cpus_per_trial,
            gpus_per_trial=gpus_per_trial,
            storage=settings.home / "ray_results",
            space=space,
        )
        params = {"trials": trials, "time_budget_s": time_budget_s, "cpus_per_trial": cpus_per_trial,
                  "gpus_per_trial": gpus_per_trial, **base.flat()}  # fmt: skip
        run_id = tracking.log_search(found, settings, params)
        finished = sum(t.status == "finished" for t in found.trials)
        result = TuneResult(run_id, len(found.trials), finished)
        record.counts = {"trials": len(found.trials), "finished": finished}
        if found.best is None:
            raise ValueError(f"no trial of {len(found.trials)} finished; raise --time-budget or --trials")
        result.best_params = found.best.params
        log.info("best of %d trials: %s (val pinball %.5f)", len(found.trials), found.best.params,
                 found.best.metrics["val_pinball"])  # fmt: skip
        name = name or "tuned-" + datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        model, model_dir = fit_and_save(bars, found.best_config, settings, name)
        logged, decision = register_and_promote(model, bars, settings, name)
        result.retrained = RetrainResult(
            model_dir, logged.run_id, logged.version, decision.promoted, decision.reason
        )
        tracking.tag_search(
            run_id, {"retrained.run_id": logged.run_id, "retrained.version": str(logged.version)}
        )
        record.counts |= {"version": logged.version, "promoted": decision.promoted}
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--trials", type=int, default=8, help="configurations to try (default 8)")
    parser.add_argument(
        "--time-budget", type=float, help="seconds for the whole search; unfinished trials stop"
    )
    parser.add_argument(
        "--cpus-per-trial", type=float, default=1, help="CPUs each trial reserves (default 1)"
    )
    parser.add_argument(
        "--gpus-per-trial", type=float, default=0, help="GPUs each trial reserves (default 0)"
    )
    parser.add_argument("--epochs", type=int, default=TrainConfig.epochs, help="maximum epochs per trial")
    parser.add_argument("--name", help="model directory name under FORECASTER_HOME/models")
    args = parser.parse_args(argv)
    exit_on_placeholders()  # a .env copied unchanged from .env.example
    setup_logging()
    config = ForecasterConfig(train=TrainConfig(epochs=args.epochs))
    try:
        result = run(
            Settings(),
            config,
            trials=args.trials,
            time_budget_s=args.time_budget,
            cpus_per_trial=args.cpus_per_trial,
            gpus_per_trial=args.gpus_per_trial,
            name=args.name,
        )
    except (*EXPECTED_ERRORS, DataSourceError) as exc:  # expected failures: one line, no traceback
        fail(exc)
    retrained = result.retrained
    print(f"{result.trials} trials ({result.finished} finished), best {result.best_params}")
    print(f"{retrained.model_dir}: version {retrained.version}, {retrained.reason}")


if __name__ == "__main__":
    main()
