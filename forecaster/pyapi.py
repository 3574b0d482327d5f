"""The estimator's Python API beyond fit: what `FuzzyLSTMForecaster` methods delegate to.

- `predict`: the forecast table of the latest window of every ticker, cut to the first `horizon`
  steps, at any quantile `levels` (normal-score interpolation between the model's), served at
  adaptive-conformal working levels when given an `ACIState`, with each ticker's regime;
- `score`: the metrics of `model.evaluate` on the labelled windows of some bars;
- `regimes`: the memberships, dominant regime and its label of every window over time;
- `aci_state` / `update_aci`: an adaptive-conformal state for the model, and learning it from
  a forecast table once its target dates' closes are known (`serving.aci_outcomes`).

Model.py keeps the estimator (fit, predict_windows, persistence); these functions read only its
public state and `predict_windows`, so they are attached to the class as methods.
"""

from __future__ import annotations

import numbers

import numpy as np
import pandas as pd

from forecaster.calibration.aci import DEFAULT_GAMMA, ACIState
from forecaster.features.windows import WindowSet, latest_windows, make_windows
from forecaster.serving import aci_outcomes, level_key, quantiles_at, serve


def predict(
    model, bars: pd.DataFrame, horizon: int | None = None, levels=None, adaptive=None
) -> pd.DataFrame:
    """Forecast the next H trading days (or the first `horizon`) from each ticker's latest window.

    One row per ticker and horizon: as_of, target_date, last_price, the point forecast (median),
    `quantile_<level>` prices, interval bounds `lower_XX` / `upper_XX`, memberships `u_k`,
    per-expert forecasts `expert_k`, the dominant `regime` (0 = calmest) and its `regime_label`.

    `levels` (each in (0, 1)) picks the quantile columns: a level the model forecasts is its
    own number; another is interpolated linearly in normal scores between the neighbouring
    levels (beyond the outermost ones, extrapolated like a normal's tail). `adaptive`, an
    `ACIState` (`aci_state`), serves every ticker's quantiles and intervals at its working
    levels instead of the nominal ones.
    """
    most = model.config.window.horizon
    if horizon is not None and not (isinstance(horizon, numbers.Integral) and 1 <= horizon <= most):
        raise ValueError(f"horizon must be an integer from 1 to {most} (this model's H), got {horizon!r}")
    targets = None if levels is None else checked_levels(levels)
    windows = latest_windows(bars, model.config.window)
    pred = model.predict_windows(windows)
    if adaptive is not None:
        _check_state(model, adaptive)
        pred = serve(pred, windows, adaptive, model.config.train.coverage)
    frame = with_regimes(model.to_frame(windows, pred), model.regime_labels_)
    if targets is not None:
        frame = _with_levels(frame, quantiles_at(pred.quantiles, pred.levels, targets), targets)
    if horizon is not None:
        frame = frame[frame["horizon"] <= horizon].reset_index(drop=True)
    return frame


def checked_levels(levels) -> list[float]:
    """Quantile levels to return, increasing and distinct; a ValueError names any outside (0, 1)."""
    levels = [levels] if isinstance(levels, numbers.Real) else list(levels)
    bad = [q for q in levels if not isinstance(q, numbers.Real) or not 0 < q < 1]
    if bad or not levels:
        raise ValueError(f"quantile levels must be numbers strictly between 0 and 1, got {bad or levels!r}")
    return sorted({float(q) for q in levels})


def _with_levels(frame: pd.DataFrame, quantiles: np.ndarray, targets: list[float]) -> pd.DataFrame:
    """The frame with its quantile columns replaced by `quantiles` [N, H, Q'] (log returns) at `targets`."""
    old = [c for c in frame.columns if c.startswith("quantile_")]
    at = frame.columns.get_loc(old[0]) if old else frame.columns.get_loc("forecast") + 1
    frame = frame.drop(columns=old)
    prices = frame["last_price"].to_numpy()[:, None] * np.exp(
        quantiles.reshape(len(frame), -1)
    )  # [N * H, Q']
    for j, level in enumerate(targets):
        frame.insert(at + j, f"quantile_{level:g}", prices[:, j])
    return frame


def with_regimes(frame: pd.DataFrame, labels) -> pd.DataFrame:
    """`regime`, the dominant membership (0 = calmest), and its `regime_label`, per row."""
    u = frame[[c for c in frame.columns if c.startswith("u_")]].to_numpy()  # [rows, c]
    dominant = u.argmax(axis=1)
    return frame.assign(regime=dominant, regime_label=np.asarray(labels, dtype=object)[dominant])


def score(model, data) -> pd.Series:
    """The metrics of `model.evaluate` (the model's and the naive forecast's) on labelled windows.

    `data`: validated bars (cut into every window whose next H days are known) or a `WindowSet`.
    """
    windows = data if isinstance(data, WindowSet) else make_windows(data, model.config.window)
    return pd.Series(model.evaluate(windows), dtype=np.float64, name="score")


def regimes(model, bars: pd.DataFrame) -> pd.DataFrame:
    """Every window's memberships over time: ticker, as_of, last_price, u_k, regime, regime_label.

    What `forecaster.plot_memberships` draws; the latest windows, whose outcomes are unknown, too.
    """
    windows = make_windows(bars, model.config.window, labelled=False)
    u = model._memberships(windows)  # [N, c]
    frame = pd.DataFrame(
        {
            "ticker": windows.ticker.astype(str),
            "as_of": pd.to_datetime(windows.origin),
            "last_price": windows.last_price,
        }
    )
    for j in range(u.shape[1]):
        frame[f"u_{j}"] = u[:, j]
    return with_regimes(frame, model.regime_labels_)


def aci_state(model, gamma: float = DEFAULT_GAMMA) -> ACIState:
    """A fresh adaptive-conformal state for the model's levels and horizon (every ticker nominal).

    Its rule is the model's `config.train.aci_method`, as in the batch job and the API ("dtaci"
    tunes its own step sizes; `gamma` is ACI's).
    """
    return ACIState(model.levels, model.config.window.horizon, gamma, method=model.config.train.aci_method)


def update_aci(model, state: ACIState, forecasts: pd.DataFrame, bars: pd.DataFrame) -> int:
    """Learn `state` from a forecast table whose target dates' closes are in `bars`; returns rows learnt.

    `forecasts`: rows of `predict(bars, adaptive=state)` (all the model's quantile columns, as
    served). A row whose target date has no close in `bars` teaches nothing; pass each row
    once, after its outcome is known (a row passed twice counts twice).
    """
    _check_state(model, state)
    columns = {level: f"quantile_{level:g}" for level in state.levels}
    missing = [c for c in columns.values() if c not in forecasts.columns]
    if missing:
        raise ValueError(f"the forecasts lack {missing}: learn from a table with every level of the model")
    wanted = bars[
        bars["ticker"].isin(forecasts["ticker"].unique()) & bars["date"].isin(forecasts["target_date"])
    ]
    closes = dict(zip(zip(wanted["ticker"], wanted["date"], strict=True), wanted["adj_close"], strict=True))
    rows = [
        {**r, "quantiles": {level_key(q): r[c] for q, c in columns.items()}}
        for r in forecasts[
            ["ticker", "as_of", "horizon", "target_date", "last_price", *columns.values()]
        ].to_dict("records")
    ]
    tickers, horizons, outcomes, served = aci_outcomes(rows, closes, state.levels)
    state.update(tickers, horizons, outcomes, served)
    return len(tickers)


def _check_state(model, state: ACIState) -> None:
    horizon = model.config.window.horizon
    if tuple(state.levels) != tuple(model.levels) or state.horizon != horizon:
        raise ValueError(
            f"this ACIState has levels {tuple(state.levels)} and horizon {state.horizon}; the model "
            f"forecasts levels {tuple(model.levels)} over {horizon} days: make one with model.aci_state()"
        )
