"""What is served from a `Prediction`, in one place so the batch job and the API serve the same numbers.

- `serve`: each ticker's quantiles at its adaptive-conformal working levels (`forecaster.calibration.aci`), and
  the interval bounds read off those served quantiles;
- `quantiles_at`: quantiles at other levels inside the model's range (an API request's `levels`);
- `trailing_memberships` / `regime_fields`: the dominant regime, its label and the regime-shift
  flag of a ticker, from its last `TRAILING + 1` windows;
- `aci_state`: a model's ACI state, empty or from stored records, by the rule its config names;
- `aci_outcomes`: what stored forecasts teach the ACI state once their target dates have passed;
- `forecast_frame` / `ShardForecaster`: the served forecast of every ticker's latest window with its
  regime, what the batch job stores (one call here, or one Ray actor per shard of tickers).

The point forecast stays the model's (the fused median); ACI moves the quantiles and intervals only.
Quantile levels are named by `level_key` ("0.025") in response bodies and in the forecast store.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Iterable, Mapping

import numpy as np
import pandas as pd

from forecaster.calibration.aci import ACIState, interpolate_quantiles
from forecaster.calibration.cqr import interval_levels
from forecaster.features.windows import WindowSet, history_needed, latest_windows
from forecaster.prediction import Prediction
from forecaster.regimes.descriptors import regime_descriptors
from forecaster.regimes.labels import regime_shift

TRAILING = 20  # days of memberships today's regime is compared with
SHIFT_MARGIN = 0.1  # today's dominant regime must lead the usual one by this much to count as a shift

log = logging.getLogger(__name__)


def level_key(level: float) -> str:
    """The name of a quantile level in bodies and stores: the shortest decimal, '0.025'."""
    return repr(float(level))


def serve(pred: Prediction, windows: WindowSet, state: ACIState, coverage: Iterable[float]) -> Prediction:
    """`pred` as served: quantiles at each ticker's ACI working levels, intervals read off them.

    A ticker the state has not seen is served at the nominal levels. `coverage` names the
    central intervals to read off (0.8 -> levels 0.1 and 0.9); one whose levels the model
    does not forecast is left out.
    """
    served = state.adjust(windows.ticker, pred.quantiles)  # [N, H, Q] cumulative log returns
    base = windows.last_price[:, None]
    bounds = {}
    for c in coverage:
        lo, hi = interval_levels(c)
        if lo in pred.levels and hi in pred.levels:
            i, j = pred.levels.index(lo), pred.levels.index(hi)
            bounds[c] = (base * np.exp(served[:, :, i]), base * np.exp(served[:, :, j]))
    return dataclasses.replace(pred, quantiles=served, intervals=bounds)


def level_problem(level: float, levels: tuple[float, ...]) -> str | None:
    """Why `level` cannot be served from quantiles at `levels`, or None."""
    if not 0 < level < 1:
        return f"level {level:g} is outside (0, 1)"
    if not levels[0] <= level <= levels[-1]:
        return (
            f"level {level:g} is beyond this model's quantiles: it forecasts levels "
            f"{levels[0]:g} to {levels[-1]:g}"
        )
    return None


def quantiles_at(quantiles: np.ndarray, levels: tuple[float, ...], targets) -> np.ndarray:
    """Quantiles at `targets` (within the range of `levels`): [..., Q] -> [..., Q'].

    A target that is one of `levels` gets that quantile exactly; others are interpolated
    linearly in normal scores (`aci.interpolate_quantiles`), which keeps them ordered.
    """
    targets = np.asarray(targets, dtype=np.float64)
    out = interpolate_quantiles(quantiles, levels, targets)
    index = {float(q): j for j, q in enumerate(levels)}
    for k, t in enumerate(targets):
        if float(t) in index:
            out[..., k] = quantiles[..., index[float(t)]]
    return out


def trailing_memberships(model, adj_close: np.ndarray, trailing: int = TRAILING) -> np.ndarray | None:
    """Memberships of a ticker's last `trailing + 1` windows, the newest last: [trailing + 1, c].

    From its adjusted closes alone (the gate reads only the returns' descriptors), computed as
    the model does for a window (float32 returns). None when there are too few closes.
    """
    window = model.config.window.window
    if model.config.window.market is not None:
        return None  # the gate reads market context too, which one ticker's closes cannot give
    need = window + trailing + 1
    if len(adj_close) < need:
        return None
    r = np.diff(np.log(np.asarray(adj_close[-need:], dtype=np.float64))).astype(np.float32)  # [L + T]
    returns = np.lib.stride_tricks.sliding_window_view(r, window)  # [T + 1, L]
    descriptors = regime_descriptors(returns, model.config.cluster.descriptors)
    return model.clusterer_.predict(descriptors).astype(np.float32)


def regime_fields(memberships: np.ndarray, history: np.ndarray | None, labels) -> dict:
    """The dominant regime of today's `memberships` [c], its label, and whether it shifted.

    `history` [T, c] are the ticker's trailing memberships ending today (`trailing_memberships`);
    without it the shift is unknown (None).
    """
    dominant = int(np.argmax(memberships))
    shifted = None
    if history is not None:
        shifted = regime_shift(history, len(history) - 1, SHIFT_MARGIN)[1]
    return {"regime": dominant, "regime_label": str(labels[dominant]), "regime_shift": shifted}


def aci_state(model, records: Iterable[Mapping] | None = None) -> ACIState:
    """`model`'s ACI state: nominal levels, or read from stored `records` (`load_aci_state` rows).

    The rule is the model's `config.train.aci_method` ("aci" or "dtaci"), so the batch job that
    learns the state and the API that serves it use the same one.
    """
    levels, horizon = model.levels, model.config.window.horizon
    method = model.config.train.aci_method
    if records is None:
        return ACIState(levels, horizon, method=method)
    return ACIState.from_records(records, levels, horizon, method=method)


def aci_outcomes(
    rows: Iterable[Mapping], closes: Mapping[tuple[str, object], float], levels: tuple[float, ...]
) -> tuple[list[str], list[int], np.ndarray, np.ndarray]:
    """What stored forecasts teach ACI, in the order their outcomes became known.

    `rows` are stored forecasts (ticker, as_of, horizon, target_date, last_price, quantiles
    {level_key: price}); `closes` maps (ticker, date) to the adjusted close. The outcome is
    log(close on the target date / last_price) and the served quantile log(quantile / last_price).
    Rows without a close on their target date, or without every level, teach nothing.
    Returns tickers [M], horizons [M], outcomes [M] and served quantiles [M, Q].
    """
    keys = [level_key(q) for q in levels]
    found = []
    for row in rows:
        close = closes.get((row["ticker"], row["target_date"]))
        stored = row.get("quantiles") or {}
        if close is None or not all(k in stored for k in keys):
            continue
        base = row["last_price"]
        served = [math.log(stored[k] / base) for k in keys]
        found.append(
            (row["target_date"], row["as_of"], row["horizon"], row["ticker"], math.log(close / base), served)
        )
    found.sort(key=lambda f: f[:4])
    tickers = [f[3] for f in found]
    horizons = [int(f[2]) for f in found]
    outcomes = np.array([f[4] for f in found], dtype=np.float64)
    served = np.array([f[5] for f in found], dtype=np.float64).reshape(len(found), len(levels))
    return tickers, horizons, outcomes, served


REGIME_COLUMNS = ("regime", "regime_label", "regime_shift")


def context_tickers(model) -> list[str]:
    """The tickers whose bars a market-context model reads besides those it forecasts: the ones it
    was trained on (the cross-section's columns, dispersion, breadth and R^2, are then the
    training's) and its index. None for a model without market context."""
    market = model.config.window.market
    if market is None:
        return []
    index = [] if market == "universe" else [market]
    return list(dict.fromkeys([*model.fingerprint_["tickers"], *index]))


def read_context(store, model, universe: list[str]) -> pd.DataFrame | None:
    """Stored bars of the tickers a market-context model reads besides the universe (None without
    context). Tickers the store lacks are named in a warning: the context is then computed from
    fewer tickers than in training."""
    needed = context_tickers(model)
    if not needed:
        return None
    wanted = [t for t in needed if t not in universe]
    stored = set(store.tickers())
    if lacking := [t for t in wanted if t not in stored]:
        log.warning("market context without %s (not in the price store): run ingest", ", ".join(lacking))
    present = [t for t in wanted if t in stored]
    return store.read(present) if present else pd.DataFrame(columns=["ticker", "date"])


def with_context(fresh: pd.DataFrame, context: pd.DataFrame) -> pd.DataFrame:
    """The fresh bars plus the context tickers' bars up to the same day."""
    upto = context[context["date"] <= fresh["date"].max()]
    return pd.concat([fresh, upto], ignore_index=True) if len(upto) else fresh


def history_to_serve(model) -> int:
    """Bars per ticker that `forecast_frame` reads: the latest window's features and the regime history."""
    window = model.config.window
    return max(history_needed(window.features, window.window), window.window + TRAILING + 1)


def forecast_frame(model, bars: pd.DataFrame, state: ACIState) -> pd.DataFrame:
    """The served forecast of the latest window of every ticker in `bars`, one row per horizon.

    `model.to_frame` columns (quantiles at the tickers' ACI working levels in `state`, intervals
    read off them) plus the ticker's regime (`REGIME_COLUMNS`, see `regime_fields`). Each
    ticker's rows depend on its own bars only, so shards of tickers give the same rows.
    """
    windows = latest_windows(bars, model.config.window)
    pred = serve(model.predict_windows(windows), windows, state, model.config.train.coverage)
    frame = model.to_frame(windows, pred)
    closes = bars.groupby("ticker")["adj_close"]
    regimes = {
        str(t): regime_fields(
            pred.memberships[i],
            trailing_memberships(model, closes.get_group(t).to_numpy()),
            model.regime_labels_,
        )
        for i, t in enumerate(windows.ticker)
    }
    for name in REGIME_COLUMNS:
        frame[name] = [regimes[str(t)][name] for t in frame["ticker"]]
    return frame


class ShardForecaster:
    """`forecast_frame` as a callable holding the model: built once per Ray actor, called per shard."""

    def __init__(self, model, state: ACIState):
        self.model, self.state = model, state

    def __call__(self, bars: pd.DataFrame) -> pd.DataFrame:
        return forecast_frame(self.model, bars, self.state)
