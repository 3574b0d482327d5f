"""The walk-forward backtest: every competitor refitted on the past, scored on the same origins.

`walk_forward` rolls an origin over a date range and refits every competitor every
`refit_every` trading days on the bars up to and including the refit date only, then forecasts
every horizon 1..H from every origin until the next refit. All competitors see the same origins
and the same targets, so their errors can be compared row by row (`scoring.score`,
`scoring.dm_tests`) and written out with plots (`report.write_report`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial

import numpy as np
import pandas as pd

from forecaster.calibration.aci import run_aci
from forecaster.calibration.cqr import interval_levels
from forecaster.config import ForecasterConfig
from forecaster.evaluation.baselines import BASELINES, Baseline
from forecaster.evaluation.gate import gate_figures
from forecaster.features.windows import WindowSet
from forecaster.metrics import naive_scale
from forecaster.model import FuzzyLSTMForecaster
from forecaster.runtime.engine import map_tasks
from forecaster.walkforward import Fold, WalkForward, check_refit, walk_forward_folds

log = logging.getLogger(__name__)

# The LSTM competitors: the fuzzy model, its equal-weight twin (the same fit weighted 1/K), the
# fuzzy model's forecasts through adaptive conformal inference (ACI with one step size, or DtACI,
# which tunes it), and variants of the same machinery with one setting changed (config sections to
# change).
LSTM_VARIANTS = {
    "single_lstm": {"cluster": {"gate": "single"}},  # one LSTM with the parameters of all K experts
    "hard_cluster": {"cluster": {"gate": "hard"}},  # each expert on its own cluster, argmax forecast
    "fuzzy_mse": {"expert": {"head": "mse"}},  # the patent's literal point forecast, residual quantiles
    "fuzzy_no_finetune": {"train": {"fine_tune_epochs": 0}},  # experts only: the fused output never trained
    # Opt-in (name them in `models`): a gate that learns end to end, experts that compete for windows.
    "fuzzy_learned": {"cluster": {"clusterer": "learned"}},
    "fuzzy_competitive": {"train": {"objective": "competitive"}},
    "fuzzy_learned_competitive": {"cluster": {"clusterer": "learned"}, "train": {"objective": "competitive"}},
    "fuzzy_cqr_regime": {"train": {"calibrator": "cqr_regime"}},  # CQR per dominant regime, shrunk to pooled
}
LSTM_COMPETITORS = (
    "single_lstm", "equal_weight", "hard_cluster", "fuzzy_mse", "fuzzy_no_finetune", "fuzzy", "fuzzy_aci",
    "fuzzy_dtaci",
)  # fmt: skip
SHARED_FIT = ("fuzzy", "equal_weight")  # one fit serves both
OPT_IN = ("fuzzy_learned", "fuzzy_competitive", "fuzzy_learned_competitive", "fuzzy_cqr_regime")
# The fuzzy model's forecasts served through an ACI rule (`calibration.aci`): not fitted, replayed.
ADAPTED = {"fuzzy_aci": "aci", "fuzzy_dtaci": "dtaci"}


def competitors() -> tuple[str, ...]:
    """Every competitor `walk_forward` knows: the registered baselines, then the LSTM ones."""
    clash = set(BASELINES) & set(LSTM_COMPETITORS)
    if clash:
        raise ValueError(f"baseline(s) {sorted(clash)} registered under the name of an LSTM competitor")
    return (*BASELINES, *LSTM_COMPETITORS, *OPT_IN)


COMPETITORS = tuple(m for m in competitors() if m not in OPT_IN)  # the default of `walk_forward`


@dataclass
class BacktestResult:
    """What `walk_forward` produced, as long frames (one row per model, ticker, origin, horizon)."""

    forecasts: pd.DataFrame  # model, fold, ticker, origin, horizon, target_date, last_price, actual,
    # forecast, lower_XX / upper_XX per coverage level, mase_scale (the fold's in-sample naive MAE),
    # actual_log_return (cumulative from the origin), q_<level> (cumulative log-return quantiles,
    # e.g. q_0.025; NaN for a model without them), realized_vol (std of the window's daily log
    # returns), year (of the origin), regime (dominant fuzzy regime of the origin, 0 = calmest;
    # only when fuzzy or equal_weight ran: the same value on every model's row)
    memberships: pd.DataFrame  # fold, ticker, origin, u_0..u_{c-1}: clusters ordered calm -> turbulent
    folds: pd.DataFrame  # fold, refit_date, first_origin, last_origin, train_bars, <model>_seconds


def walk_forward(
    bars: pd.DataFrame,
    config: ForecasterConfig | None = None,
    *,
    start=None,
    end=None,
    refit_every: int = 250,
    train_days: int | None = None,
    models: Sequence[str] = COMPETITORS,
    progress: bool | None = False,
    engine: str = "local",
    refit: str = "cold",
) -> BacktestResult:
    """Rolling-origin backtest of every competitor on the same origins and targets.

    Origins are the trading days in [start, end] whose next H days are in `bars`. Every
    `refit_every` origins (on the calendar of all tickers) each competitor is refitted on the
    bars dated up to and including that refit date: all of them (`train_days=None`, an
    expanding window) or the last `train_days` per ticker (a fixed-length window); the folds are
    `forecaster.walkforward.walk_forward_folds`, the loop under the model's historical forecasts
    too. The forecaster gets `test_fraction=0`, so its scaler, cluster centers, early-stopping
    split and conformal residuals all come from those bars; a forecast made at an origin reads
    only the window ending there. The volatility baselines (garch, ewma, historical) get the full
    `bars` and filter their state through the returns dated up to each origin. Nothing after an
    origin reaches the forecast made at it. `models` are names of `competitors()`: the baselines
    registered in `forecaster.evaluation.baselines`, then the LSTM competitors.

    `refit="warm"` starts every LSTM competitor's fit of fold k+1 from its fit of fold k
    (`FuzzyLSTMForecaster.fit(init=...)`, `train.warm_epochs` epochs a stage; the first fold is
    cold), so its folds run in order, as one task; the baselines refit as they do cold.

    `engine="ray"` runs every fold's competitors (a warm competitor's chain of folds) as Ray tasks
    (`forecaster.runtime.engine`); the result is the same as with the local engine, row for row.
    """
    config = (config or ForecasterConfig()).with_(window={"test_fraction": 0.0})
    _check_models(models)
    check_refit(refit)
    plan = walk_forward_folds(
        bars, config.window, start=start, end=end, refit_every=refit_every, train_days=train_days
    )
    tasks = _tasks(plan, models, refit)
    shared = {
        "plan": plan,
        "config": config,
        "baselines": {m: BASELINES[m] for m in models if m in BASELINES},
        "progress": progress,
    }
    outputs = map_tasks(run_fold_task, tasks, engine, shared=shared, desc="backtest fits")
    by_fold = [
        (f, out) for t, outs in zip(tasks, outputs, strict=True) for f, out in zip(t.folds, outs, strict=True)
    ]
    forecasts, members, folds = _gather(plan, by_fold, models)
    for name, method in ADAPTED.items():
        if name in models:
            forecasts = pd.concat([forecasts, _aci_rows(forecasts, config, name, method)], ignore_index=True)
    if len(members):
        forecasts = _with_regime(forecasts, members)
    forecasts["model"] = pd.Categorical(forecasts["model"], categories=list(models), ordered=True)
    return BacktestResult(forecasts=forecasts, memberships=members, folds=folds)


def _check_models(models: Sequence[str]) -> None:
    known = competitors()
    unknown = [m for m in models if m not in known]
    if unknown or not models:
        raise ValueError(f"unknown model(s) {unknown}; choose from {', '.join(known)}")
    for name in ADAPTED:
        if name in models and "fuzzy" not in models:
            raise ValueError(f"{name} adapts the fuzzy model's quantiles: add fuzzy to the models")


def _gather(plan: WalkForward, outputs, models) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """The tasks' (fold, output) pairs fold by fold: forecast rows (in `models` order), memberships, fold rows."""
    parts, members, folds = [], [], []
    for fold in plan.folds:
        done = [out for of, out in outputs if of == fold]
        frames = {name: frame for out in done for name, frame in out.frames.items()}
        parts.extend(frames[name] for name in models if name not in ADAPTED)
        members.extend(out.memberships for out in done if out.memberships is not None)
        seconds = {name: s for out in done for name, s in out.seconds.items()}
        row = {k: v for out in done for k, v in out.fold_row.items()}  # each task adds its own figures
        folds.append({**row, **{f"{name}_seconds": s for name, s in seconds.items()}})
        log.info(
            "fold %d/%d: refit on %s, %d origins, fit %s",
            fold.index + 1,
            len(plan.folds),
            fold.refit,
            done[0].n_origins,
            ", ".join(f"{k} {v:.0f}s" for k, v in seconds.items()),
        )
    members = pd.concat(members, ignore_index=True) if members else pd.DataFrame()
    return pd.concat(parts, ignore_index=True), members, pd.DataFrame(folds)


@dataclass(frozen=True)
class FoldTask:
    """One unit of backtest work: fit `models` on each fold's training bars and forecast its origins.

    One fold, or (`warm`) a chain of folds in order, each fit starting from the previous one's.
    """

    folds: tuple[Fold, ...]
    models: tuple[str, ...]
    warm: bool = False


def _tasks(plan: WalkForward, models: Sequence[str], refit: str) -> list[FoldTask]:
    """One task per fold and competitor group (fuzzy and equal_weight share a fit): each is a pure
    function of its folds' bars, so the engine may run them in any order, anywhere. Warm refits
    chain an LSTM group's folds into one task (fold k+1 needs fold k's fit); baselines stay per fold."""
    groups = _task_groups(models)
    chained = [g for g in groups if refit == "warm" and g[0] not in BASELINES]
    tasks = [FoldTask((fold,), g) for fold in plan.folds for g in groups if g not in chained]
    return tasks + [FoldTask(plan.folds, g, warm=True) for g in chained]


@dataclass
class FoldOutput:
    frames: dict[str, pd.DataFrame]  # forecast rows per model
    memberships: pd.DataFrame | None  # the fuzzy fit's, when this task made it
    seconds: dict[str, float]  # fit time per model
    fold_row: dict  # fold, refit_date, first_origin, last_origin, train_bars
    n_origins: int


def _task_groups(models: Sequence[str]) -> list[tuple[str, ...]]:
    """Competitors fitted together: fuzzy and equal_weight share one fit; every other one alone."""
    shared = tuple(m for m in models if m in SHARED_FIT)
    alone = [(m,) for m in models if m not in (*SHARED_FIT, *ADAPTED)]
    return ([shared] if shared else []) + alone


def run_fold_task(
    task: FoldTask, *, plan: WalkForward, config: ForecasterConfig, baselines: dict, progress
) -> list[FoldOutput]:
    """Fit one task's competitors on each of its folds' bars and forecast the fold's origins.

    A pure function of its arguments (the baseline classes travel with them), so it runs the
    same in this process or as a Ray task. A warm task's fits start from the previous fold's.
    """
    outputs, previous = [], None
    for fold in task.folds:
        output, fitted = _run_fold(fold, task.models, previous, plan, config, baselines, progress)
        outputs.append(output)
        previous = fitted if task.warm else None
    return outputs


def _run_fold(fold: Fold, models, init, plan: WalkForward, config, baselines: dict, progress):
    """One fold of one task: its FoldOutput, and the LSTM fit (None for a baseline) for a warm next fold."""
    test, train_bars = plan.test_windows(fold), plan.train_bars(fold)
    scales = {
        t: naive_scale(one["adj_close"].to_numpy(), config.window.horizon)
        for t, one in train_bars.groupby("ticker")
    }
    started = time.perf_counter()
    try:
        predictors, gated, fitted = _fit_group(
            models, train_bars, plan.bars, config, baselines, progress, init
        )
    except ValueError as exc:
        raise ValueError(f"fold {fold.index} (refit on {fold.refit}): {exc}") from exc
    fit_seconds = time.perf_counter() - started
    fuzzy = gated.get("fuzzy")  # the shared fit of fuzzy and equal_weight
    fit_name = "fuzzy" if fuzzy is not None else models[0]
    # Whether each fuzzy-gated fit's gate did anything on this fold's origins (evaluation.gate).
    gate = {
        f"{name}_gate_{k}": v for name, model in gated.items() for k, v in gate_figures(model, test).items()
    }
    frames = {
        name: _forecast_rows(name, fold.index, test, predictors[name](test), scales, config)
        for name in models
    }
    output = FoldOutput(
        frames=frames,
        memberships=_membership_rows(fuzzy, fold.index, test) if fuzzy is not None else None,
        seconds={fit_name: fit_seconds},
        fold_row={
            "fold": fold.index,
            "refit_date": pd.Timestamp(fold.refit),
            "first_origin": pd.Timestamp(test.origin.min()),
            "last_origin": pd.Timestamp(test.origin.max()),
            "train_bars": len(train_bars),
            **gate,
        },
        n_origins=len(np.unique(test.origin)),
    )
    return output, fitted


def _fit_group(models, bars, all_bars, config, baselines: dict[str, type[Baseline]], progress, init=None):
    """Fit one task's competitors on `bars` (an LSTM from `init`, the previous fold's fit, when
    warm): {name: windows -> forecast}, the fits with a fuzzy gate, and the LSTM fit (or None).

    The baselines forecast with `all_bars` at hand and read only the rows up to each origin.
    """
    start = {} if init is None else {"init": init}  # a cold fit's call is unchanged
    if set(models) <= set(SHARED_FIT):
        # One fit serves both: the equal-weight ensemble is the same experts weighted 1/K.
        fuzzy = FuzzyLSTMForecaster(config.with_(cluster={"gate": "fuzzy"}))
        fuzzy.fit(bars, progress=progress, **start)
        equal = partial(fuzzy.predict_windows, combine="equal")
        return {"fuzzy": fuzzy.predict_windows, "equal_weight": equal}, {"fuzzy": fuzzy}, fuzzy
    (name,) = models
    if name in baselines:
        baseline = baselines[name](config.window, config.train.coverage).fit(bars)
        return {name: partial(baseline.predict_windows, bars=all_bars)}, {}, None
    variant = config.with_(cluster={"gate": "fuzzy"}).with_(**LSTM_VARIANTS[name])
    model = FuzzyLSTMForecaster(variant).fit(bars, progress=progress, **start)
    return {name: model.predict_windows}, ({name: model} if variant.cluster.gate == "fuzzy" else {}), model


def _forecast_rows(name, fold, windows: WindowSet, pred, scales, config) -> pd.DataFrame:
    n, h = pred.price.shape
    frame = pd.DataFrame(
        {
            "model": name,
            "fold": fold,
            "ticker": np.repeat(windows.ticker.astype(str), h),
            "origin": np.repeat(pd.to_datetime(windows.origin), h),
            "horizon": np.tile(np.arange(1, h + 1), n),
            "target_date": pd.to_datetime(windows.target_dates.ravel()),
            "last_price": np.repeat(windows.last_price, h),
            "actual": windows.target_prices().ravel(),
            "forecast": pred.price.ravel(),
        }
    )
    for level in config.train.coverage:
        pct = round(100 * level)
        lo, hi = pred.intervals.get(level, (np.full((n, h), np.nan),) * 2)
        frame[f"lower_{pct}"], frame[f"upper_{pct}"] = lo.ravel(), hi.ravel()
    frame["mase_scale"] = np.stack([scales[t] for t in windows.ticker]).ravel() if n else []
    frame["actual_log_return"] = np.cumsum(windows.y.astype(np.float64), axis=1).ravel()
    quantiles = getattr(pred, "quantiles", None)  # [N, H, Q]; a point model has none
    if quantiles is not None:
        for j, level in enumerate(pred.levels):
            frame[f"q_{level:g}"] = quantiles[:, :, j].ravel()
    frame["realized_vol"] = np.repeat(windows.returns.astype(np.float64).std(axis=1), h)
    frame["year"] = frame["origin"].dt.year
    return frame


def _aci_rows(
    forecasts: pd.DataFrame, config: ForecasterConfig, name: str = "fuzzy_aci", method: str = "aci"
) -> pd.DataFrame:
    """The fuzzy model's forecasts served through adaptive conformal inference, across all folds.

    One state per ticker (`method`: "aci" or "dtaci") runs through the whole backtest in date
    order (refits do not reset it), reading each outcome only once its target date has passed.
    The rows are the fuzzy ones renamed `name`.
    """
    rows = forecasts[forecasts["model"] == "fuzzy"].sort_values(["ticker", "origin", "horizon"])
    levels = config.expert.levels
    columns = [f"q_{level:g}" for level in levels]
    h = config.window.horizon
    n = len(rows) // h
    quantiles = rows[columns].to_numpy(np.float64).reshape(n, h, len(levels))
    first = rows.iloc[::h]
    served = run_aci(
        first["ticker"].to_numpy(),
        first["origin"].to_numpy("datetime64[D]"),
        rows["target_date"].to_numpy("datetime64[D]").reshape(n, h),
        quantiles,
        rows["actual_log_return"].to_numpy(np.float64).reshape(n, h),
        levels,
        method=method,
    ).reshape(-1, len(levels))
    out = rows.assign(model=name)
    out[columns] = served
    last = out["last_price"].to_numpy()
    out["forecast"] = last * np.exp(served[:, levels.index(0.5)])
    for coverage in config.train.coverage:
        lo, hi = (levels.index(q) for q in interval_levels(coverage))
        pct = round(100 * coverage)
        out[f"lower_{pct}"], out[f"upper_{pct}"] = last * np.exp(served[:, lo]), last * np.exp(served[:, hi])
    return out.sort_index()  # the fuzzy rows' own order: fold by fold, like every competitor


def _with_regime(forecasts: pd.DataFrame, memberships: pd.DataFrame) -> pd.DataFrame:
    """Add each origin's dominant regime (largest membership; clusters ordered calm -> turbulent)."""
    u = memberships[[c for c in memberships.columns if c.startswith("u_")]].to_numpy(np.float64)
    regime = memberships[["fold", "ticker", "origin"]].assign(regime=np.nanargmax(u, axis=1))
    return forecasts.merge(regime, on=["fold", "ticker", "origin"], how="left", validate="many_to_one")


def _membership_rows(model, fold, windows: WindowSet) -> pd.DataFrame:
    """Memberships of the fuzzy model, clusters sorted by the volatility of their centers.

    Cluster numbers are arbitrary and change from fit to fit; ordering them calm -> turbulent
    keeps one column meaning one kind of regime across folds.
    """
    u = model.predict_windows(windows, intervals=False).memberships
    descriptors = model.config.cluster.descriptors
    if "log_volatility" in descriptors:
        u = u[:, np.argsort(model.clusterer_.centers_[:, descriptors.index("log_volatility")])]
    frame = pd.DataFrame(
        {"fold": fold, "ticker": windows.ticker.astype(str), "origin": pd.to_datetime(windows.origin)}
    )
    for k in range(u.shape[1]):
        frame[f"u_{k}"] = u[:, k]
    return frame
