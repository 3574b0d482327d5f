"""The walk-forward backtest: every competitor refitted on the past, scored on the same origins.

`walk_forward` rolls an origin over a date range and refits every competitor every
`refit_every` trading days on the bars up to and including the refit date only, then forecasts
every horizon 1..H from every origin until the next refit. All competitors see the same origins
and the same targets, so their errors can be compared row by row (`scoring.score`,
`scoring.dm_tests`) and written out with plots (`report.write_report`).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from forecaster.calibration.aci import run_aci
from forecaster.calibration.cqr import interval_levels
from forecaster.config import ForecasterConfig
from forecaster.evaluation.baselines import ArimaForecaster, DriftForecaster, NaiveForecaster
from forecaster.evaluation.baselines_vol import EwmaForecaster, GarchForecaster, HistoricalForecaster
from forecaster.features.windows import WindowSet, make_windows
from forecaster.metrics import naive_scale
from forecaster.model import FuzzyLSTMForecaster
from forecaster.runtime.engine import map_tasks

log = logging.getLogger(__name__)

COMPETITORS = (
    "naive", "drift", "arima", "garch", "ewma", "historical",
    "single_lstm", "equal_weight", "hard_cluster", "fuzzy_mse", "fuzzy_no_finetune", "fuzzy", "fuzzy_aci",
)  # fmt: skip
# LSTM competitors other than the fuzzy model (and its equal-weight twin, which shares its fit):
# the same machinery with one setting changed.
LSTM_VARIANTS = {
    "single_lstm": {"gate": "single"},  # one LSTM with the parameters of all K experts
    "hard_cluster": {"gate": "hard"},  # each expert on its own cluster, argmax forecast
    "fuzzy_mse": {"head": "mse"},  # the patent's literal point forecast, residual quantiles
    "fuzzy_no_finetune": {"fine_tune_epochs": 0},  # experts only: the fused output never trained
}
BASELINES = {
    "naive": NaiveForecaster,
    "drift": DriftForecaster,
    "arima": ArimaForecaster,
    "garch": GarchForecaster,
    "ewma": EwmaForecaster,
    "historical": HistoricalForecaster,
}


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
) -> BacktestResult:
    """Rolling-origin backtest of every competitor on the same origins and targets.

    Origins are the trading days in [start, end] whose next H days are in `bars`. Every
    `refit_every` origins (on the calendar of all tickers) each competitor is refitted on the
    bars dated up to and including that refit date: all of them (`train_days=None`, an
    expanding window) or the last `train_days` per ticker (a fixed-length window). The
    forecaster gets `test_fraction=0`, so its scaler, cluster centers, early-stopping split
    and conformal residuals all come from those bars; a forecast made at an origin reads only
    the window ending there. The volatility baselines (garch, ewma, historical) get the full
    `bars` and filter their state through the returns dated up to each origin. Nothing after an
    origin reaches the forecast made at it.

    `engine="ray"` runs every fold's competitors as Ray tasks (`forecaster.runtime.engine`); the
    result is the same as with the local engine, row for row.
    """
    config = config or ForecasterConfig()
    config = dataclasses.replace(config, window=dataclasses.replace(config.window, test_fraction=0.0))
    unknown = [m for m in models if m not in COMPETITORS]
    if unknown or not models:
        raise ValueError(f"unknown model(s) {unknown}; choose from {', '.join(COMPETITORS)}")
    if "fuzzy_aci" in models and "fuzzy" not in models:
        raise ValueError("fuzzy_aci adapts the fuzzy model's quantiles: add fuzzy to the models")
    if refit_every < 1:
        raise ValueError(f"refit_every must be >= 1 trading day, got {refit_every}")
    if train_days is not None and train_days <= config.window.window + 2 * config.window.horizon:
        raise ValueError(f"train_days={train_days} is too short for windows of {config.window.window} days")
    windows = make_windows(bars, config.window)  # labelled: every origin's targets are known
    lo = np.datetime64(pd.Timestamp(start).date()) if start is not None else windows.origin.min()
    hi = np.datetime64(pd.Timestamp(end).date()) if end is not None else windows.origin.max()
    in_range = (windows.origin >= lo) & (windows.origin <= hi)
    origins = np.unique(windows.origin[in_range])
    if len(origins) == 0:
        raise ValueError(
            f"no origin between {lo} and {hi} with {config.window.horizon} trading days of data after it"
        )
    refits = origins[::refit_every]
    stops = [*refits[1:], origins[-1] + 1]
    # One task per fold and competitor (fuzzy and equal_weight share a fit): each is a pure
    # function of its fold's bars, so the engine may run them in any order, anywhere.
    tasks = [
        FoldTask(fold, refit, stop, group)
        for fold, (refit, stop) in enumerate(zip(refits, stops, strict=True))
        for group in _task_groups(models)
    ]
    shared = {"bars": bars, "windows": windows, "span": (lo, hi), "config": config, "train_days": train_days}
    outputs = map_tasks(run_fold_task, tasks, engine, shared=shared | {"progress": progress})
    parts, members, folds = [], [], []
    for fold, refit in enumerate(refits):
        done = [out for task, out in zip(tasks, outputs, strict=True) if task.fold == fold]
        frames = {name: frame for out in done for name, frame in out.frames.items()}
        parts.extend(frames[name] for name in models if name != "fuzzy_aci")
        members.extend(out.memberships for out in done if out.memberships is not None)
        seconds = {name: s for out in done for name, s in out.seconds.items()}
        folds.append({**done[0].fold_row, **{f"{name}_seconds": s for name, s in seconds.items()}})
        log.info(
            "fold %d/%d: refit on %s, %d origins, fit %s",
            fold + 1,
            len(refits),
            refit,
            done[0].n_origins,
            ", ".join(f"{k} {v:.0f}s" for k, v in seconds.items()),
        )
    forecasts = pd.concat(parts, ignore_index=True)
    if "fuzzy_aci" in models:
        forecasts = pd.concat([forecasts, _aci_rows(forecasts, config)], ignore_index=True)
    if members:
        forecasts = _with_regime(forecasts, pd.concat(members, ignore_index=True))
    forecasts["model"] = pd.Categorical(forecasts["model"], categories=list(models), ordered=True)
    return BacktestResult(
        forecasts=forecasts,
        memberships=pd.concat(members, ignore_index=True) if members else pd.DataFrame(),
        folds=pd.DataFrame(folds),
    )


@dataclass(frozen=True)
class FoldTask:
    """One unit of backtest work: fit `models` on the bars up to `refit`, forecast origins in [refit, stop)."""

    fold: int
    refit: np.datetime64
    stop: np.datetime64
    models: tuple[str, ...]


@dataclass
class FoldOutput:
    frames: dict[str, pd.DataFrame]  # forecast rows per model
    memberships: pd.DataFrame | None  # the fuzzy fit's, when this task made it
    seconds: dict[str, float]  # fit time per model
    fold_row: dict  # fold, refit_date, first_origin, last_origin, train_bars
    n_origins: int


def _task_groups(models: Sequence[str]) -> list[tuple[str, ...]]:
    """Competitors fitted together: fuzzy and equal_weight share one fit; every other one alone."""
    shared = tuple(m for m in models if m in ("fuzzy", "equal_weight"))
    alone = [(m,) for m in models if m not in ("fuzzy", "equal_weight", "fuzzy_aci")]
    return ([shared] if shared else []) + alone


def run_fold_task(
    task: FoldTask, *, bars, windows: WindowSet, span, config, train_days, progress
) -> FoldOutput:
    """Fit one task's competitors on the fold's bars and forecast the fold's origins.

    A pure function of its arguments, so it runs the same in this process or as a Ray task.
    """
    lo, hi = span
    origin = windows.origin
    test = windows.subset((origin >= lo) & (origin <= hi) & (origin >= task.refit) & (origin < task.stop))
    train_bars = bars[bars["date"].to_numpy("datetime64[D]") <= task.refit]
    if train_days is not None:
        train_bars = train_bars.groupby("ticker", sort=False).tail(train_days + 1)
    scales = {
        t: naive_scale(one["adj_close"].to_numpy(), config.window.horizon)
        for t, one in train_bars.groupby("ticker")
    }
    try:
        predictors, seconds, fuzzy = _fit_competitors(task.models, train_bars, bars, config, progress)
    except ValueError as exc:
        raise ValueError(f"fold {task.fold} (refit on {task.refit}): {exc}") from exc
    frames = {
        name: _forecast_rows(name, task.fold, test, predictors[name](test), scales, config)
        for name in task.models
    }
    return FoldOutput(
        frames=frames,
        memberships=_membership_rows(fuzzy, task.fold, test) if fuzzy is not None else None,
        seconds=seconds,
        fold_row={
            "fold": task.fold,
            "refit_date": pd.Timestamp(task.refit),
            "first_origin": pd.Timestamp(test.origin.min()),
            "last_origin": pd.Timestamp(test.origin.max()),
            "train_bars": len(train_bars),
        },
        n_origins=len(np.unique(test.origin)),
    )


def _fit_competitors(models, bars, all_bars, config, progress):
    """Fit what `models` need on `bars`: {name: windows -> forecast}, fit seconds, the fuzzy model.

    The baselines forecast with `all_bars` at hand and read only the rows up to each origin.
    """

    def variant(gate: str = "fuzzy", head: str | None = None, fine_tune_epochs: int | None = None):
        return dataclasses.replace(
            config,
            cluster=dataclasses.replace(config.cluster, gate=gate),
            expert=dataclasses.replace(config.expert, head=head or config.expert.head),
            train=dataclasses.replace(
                config.train,
                fine_tune_epochs=config.train.fine_tune_epochs
                if fine_tune_epochs is None
                else fine_tune_epochs,
            ),
        )

    predictors: dict[str, Callable] = {}
    seconds: dict[str, float] = {}
    fuzzy = None
    if {"fuzzy", "equal_weight"} & set(models):
        # One fit serves both: the equal-weight ensemble is the same experts weighted 1/K.
        started = time.perf_counter()
        fuzzy = FuzzyLSTMForecaster(variant()).fit(bars, progress=progress)
        predictors["fuzzy"] = fuzzy.predict_windows
        predictors["equal_weight"] = lambda w: fuzzy.predict_windows(w, combine="equal")
        seconds["fuzzy"] = time.perf_counter() - started
    for name in models:
        if name in ("fuzzy", "equal_weight", "fuzzy_aci"):  # fuzzy_aci is derived from fuzzy's rows
            continue
        started = time.perf_counter()
        if name in BASELINES:
            baseline = BASELINES[name](config.window, config.train.coverage).fit(bars)
            predictors[name] = lambda w, b=baseline: b.predict_windows(w, bars=all_bars)
        else:
            model = FuzzyLSTMForecaster(variant(**LSTM_VARIANTS[name])).fit(bars, progress=progress)
            predictors[name] = model.predict_windows
        seconds[name] = time.perf_counter() - started
    return predictors, seconds, fuzzy


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


def _aci_rows(forecasts: pd.DataFrame, config: ForecasterConfig) -> pd.DataFrame:
    """The fuzzy model's forecasts served through adaptive conformal inference, across all folds.

    One ACI state per ticker runs through the whole backtest in date order (refits do not reset
    it), reading each outcome only once its target date has passed.
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
    ).reshape(-1, len(levels))
    out = rows.assign(model="fuzzy_aci")
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
