"""Hyperparameter search on Ray Tune with ASHA: which clusters, m, hidden size, lr, window, head.

Every trial fits a `FuzzyLSTMForecaster` on the same bars with one drawn configuration and
reports after every epoch (`training.on_epoch`), so ASHA stops weak trials early. The score
it compares, `val_score`, is the validation loss in volatility units made comparable across
heads: the pinball loss of the quantile head as it is, and for the MSE head the pinball loss a
Gaussian forecast with that error would have (sqrt(MSE) * mean_q phi(Phi^-1(q))). A trial
that finishes also reports the calibrated model's validation metrics (`val_pinball`, ...); the
best trial is the finished one with the lowest `val_pinball`. MLflow logging and the retrain
of the best configuration are the job's (`pipelines/tune.py`); nothing here talks to MLflow.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from statistics import NormalDist

import pandas as pd

from forecaster.config import ForecasterConfig
from forecaster.experts.training import on_epoch
from forecaster.model import FuzzyLSTMForecaster
from forecaster.runtime.engine import NODE_LOSS_RETRIES, start_ray

log = logging.getLogger(__name__)

# What the search draws from, per parameter (the defaults of `forecaster tune`).
SPACE = {
    "n_clusters": [2, 3, 4],
    "m": (1.5, 2.5),  # uniform
    "hidden_size": [16, 32, 64],
    "lr": (3e-4, 3e-3),  # log-uniform
    "window": [20, 30, 60],
    "head": ["quantile", "mse"],
}


@dataclass
class Trial:
    """One finished or stopped trial: what it drew, its per-epoch rows and its last metrics."""

    params: dict
    history: list[dict]  # per reported epoch: step, stage, val_score, per-track losses
    metrics: dict  # the last report (val_pinball etc. when it finished)
    status: str  # "finished" or "stopped" (ASHA or the time budget)


@dataclass
class SearchResult:
    trials: list[Trial]
    best: Trial | None
    best_config: ForecasterConfig | None
    space: dict = field(default_factory=lambda: dict(SPACE))


def trial_config(base: ForecasterConfig, params: dict) -> ForecasterConfig:
    """`base` with one trial's draw applied."""
    return dataclasses.replace(
        base,
        window=dataclasses.replace(base.window, window=int(params["window"])),
        cluster=dataclasses.replace(base.cluster, n_clusters=int(params["n_clusters"]), m=float(params["m"])),
        expert=dataclasses.replace(base.expert, hidden_size=int(params["hidden_size"]), head=params["head"]),
        train=dataclasses.replace(base.train, lr=float(params["lr"])),
    )


def comparable_score(row: dict, head: str, levels) -> float:
    """Mean validation loss of the epoch's tracks, in pinball units whatever the head."""
    losses = [v for k, v in row.items() if k.endswith("/val_loss")]
    mean = sum(losses) / len(losses)
    if head == "quantile":
        return mean
    normal = NormalDist()
    return math.sqrt(mean) * sum(normal.pdf(normal.inv_cdf(q)) for q in levels) / len(levels)


def fit_trial(params: dict, *, bars: pd.DataFrame, base: ForecasterConfig) -> None:
    """Ray Tune function trainable: fit one configuration, reporting after every epoch."""
    from ray import tune

    config = trial_config(base, params)
    step = 0

    def report(stage: str, row: dict) -> None:
        nonlocal step
        step += 1
        score = comparable_score(row, config.expert.head, config.expert.levels)
        tune.report({"step": step, "stage": stage, "val_score": score, **_flat(row)})

    with on_epoch(report):
        model = FuzzyLSTMForecaster(config).fit(bars, progress=False)
    metrics = {k: float(v) for k, v in model.metrics_.items() if isinstance(v, int | float)}
    tune.report({"step": step + 1, "stage": "done", "val_score": score_of_last(model, config), **metrics})


def score_of_last(model: FuzzyLSTMForecaster, config: ForecasterConfig) -> float:
    """The last epoch's comparable score (so the final report does not stand out to ASHA)."""
    stage = "fine_tune" if "fine_tune" in model.history_ else "experts"
    return comparable_score(model.history_[stage][-1], config.expert.head, config.expert.levels)


def search(
    bars: pd.DataFrame,
    base: ForecasterConfig,
    *,
    trials: int = 8,
    time_budget_s: float | None = None,
    cpus_per_trial: float = 1,
    gpus_per_trial: float = 0,
    storage: Path | None = None,
    seed: int = 0,
    space: dict | None = None,
) -> SearchResult:
    """Run `trials` configurations drawn from `space` under ASHA; the best finished one wins."""
    start_ray()  # first, so Tune attaches to the configured cluster rather than starting its own
    space = dict(space or SPACE)
    tuner = _tuner(
        bars,
        base,
        space,
        trials=trials,
        time_budget_s=time_budget_s,
        resources={"cpu": cpus_per_trial, "gpu": gpus_per_trial},
        storage=storage,
        seed=seed,
    )
    done = _trials(tuner.fit())
    finished = [
        t for t in done if t.status == "finished" and math.isfinite(t.metrics.get("val_pinball", math.nan))
    ]
    best = min(finished, key=lambda t: t.metrics["val_pinball"], default=None)
    return SearchResult(done, best, trial_config(base, best.params) if best else None, space)


def _tuner(bars, base: ForecasterConfig, space: dict, *, trials, time_budget_s, resources, storage, seed):
    """A Tune search of `trials` draws from `space`, ASHA stopping weak trials by `val_score`."""
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler
    from ray.tune.search.basic_variant import BasicVariantGenerator

    max_epochs = base.train.epochs + base.train.fine_tune_epochs + 1  # + the final report
    return tune.Tuner(
        tune.with_resources(tune.with_parameters(fit_trial, bars=bars, base=base), resources),
        param_space=_param_space(space),
        tune_config=tune.TuneConfig(
            num_samples=trials,
            time_budget_s=time_budget_s,
            scheduler=ASHAScheduler(
                time_attr="step",
                metric="val_score",
                mode="min",
                max_t=max_epochs,
                grace_period=min(2, max_epochs),
                reduction_factor=2,
            ),
            search_alg=BasicVariantGenerator(random_state=seed),
        ),
        run_config=tune.RunConfig(
            name="forecaster-tune",
            storage_path=str(Path(storage).resolve()) if storage else None,
            verbose=0,
            # A trial whose worker or node dies starts again (the trainable keeps no checkpoint,
            # so from its first epoch; its seeded draw makes the rerun the same trial).
            failure_config=tune.FailureConfig(max_failures=NODE_LOSS_RETRIES),
        ),
    )


def _trials(grid) -> list[Trial]:
    """The trials of a finished search (failed ones logged and left out)."""
    done = []
    for result in grid:
        if result.error is not None:
            log.warning("trial %s failed: %s", result.path, result.error)
            continue
        frame = result.metrics_dataframe
        history = [] if frame is None else _history_rows(frame)
        metrics = dict(result.metrics or {})
        status = "finished" if metrics.get("stage") == "done" else "stopped"
        done.append(Trial(_params_of(result.config), history, metrics, status))
    return done


def _param_space(space: dict) -> dict:
    from ray import tune

    out = {}
    for name, values in space.items():
        if isinstance(values, list):
            out[name] = tune.choice(values)
        elif name == "lr":
            out[name] = tune.loguniform(*values)
        else:
            out[name] = tune.uniform(*values)
    return out


def _params_of(config: dict) -> dict:
    return {k: config[k] for k in SPACE if k in config}


def _flat(row: dict) -> dict:
    """History row keys as Tune metric names (`expert_0/val_loss` -> `expert_0.val_loss`)."""
    return {k.replace("/", "."): float(v) for k, v in row.items() if k != "epoch"}


def _history_rows(frame: pd.DataFrame) -> list[dict]:
    keep = ["step", "stage", "val_score"] + [c for c in frame.columns if c.endswith("_loss")]
    rows = frame[[c for c in keep if c in frame.columns]]
    return [
        {k: v for k, v in row.items() if not (isinstance(v, float) and math.isnan(v))}
        for row in rows.to_dict("records")
    ]
