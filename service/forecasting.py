"""Request bodies -> arrays -> one batched model call -> response bodies. No pandas on this path."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime

import numpy as np

from forecaster import serving
from forecaster.data.sessions import future_sessions, last_closed_session, target_dates
from forecaster.features.daily import history_needed
from forecaster.features.windows import WindowSet, concat_windows, window_from_arrays
from forecaster.model import Prediction
from service.model_state import LoadedModel
from service.schemas import Bar

_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()


class InputError(ValueError):
    """Bad input found after schema validation; answered with 422 naming `field`."""

    def __init__(self, field: tuple, message: str):
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class Ask:
    """What one request asks of its window besides the forecast itself."""

    horizon: int
    levels: tuple[float, ...] | None = None  # quantile levels to answer; None: the model's own
    history: np.ndarray | None = None  # [TRAILING + 1, c] memberships ending today; None: too few bars
    working: np.ndarray | None = None  # [H, Q] the ticker's ACI working levels; None: nominal


def check_levels(loaded: LoadedModel, levels: list[float] | None, field: tuple = ("body", "levels")):
    """The requested quantile levels, sorted and unique (None: the model's); 422 naming a bad one."""
    if levels is None:
        return None
    model_levels = loaded.forecaster.levels
    for i, level in enumerate(levels):
        if problem := _level_problem(level, model_levels):
            raise InputError((*field, i), problem)
    return tuple(sorted(set(float(q) for q in levels)))


def _level_problem(level: float, model_levels: tuple[float, ...]) -> str | None:
    """`serving.level_problem`, naming levels as given: `:g` would call 0.9999999999999999 "1"."""
    if serving.level_problem(level, model_levels) is None:
        return None
    name = serving.level_key  # the shortest decimal that reads back as the same float
    if not 0 < level < 1:
        return f"level {name(level)} is outside (0, 1)"
    return (
        f"level {name(level)} is beyond this model's quantiles: it forecasts levels "
        f"{name(model_levels[0])} to {name(model_levels[-1])}"
    )


def check_horizon(loaded: LoadedModel, horizon: int | None) -> int:
    """The requested horizon, or the model's when none was asked for."""
    limit = loaded.forecaster.config.window.horizon
    if horizon is None:
        return limit
    if horizon > limit:
        raise InputError(
            ("body", "horizon"), f"horizon {horizon} is beyond this model's {limit} trading days"
        )
    return horizon


def bars_needed(loaded: LoadedModel) -> int:
    """Bars a forecast reads: the window's features exactly (volatility features look back
    `history_needed`), plus TRAILING days for the regime shift. Fewer still forecast (see
    `window_from_arrays`), as the batch job would not."""
    config = loaded.forecaster.config.window
    return history_needed(config.features, config.window) + serving.TRAILING


def bars_to_arrays(bars: list[Bar], keep: int) -> dict[str, np.ndarray]:
    """Arrays of the last `keep` bars (`bars_needed`: the forecast reads no more; converting all
    would cost time)."""
    bars = bars[-keep:]
    return {
        "date": (np.array([b.date.toordinal() for b in bars]) - _EPOCH_ORDINAL).astype("datetime64[D]"),
        "adj_close": np.array([b.adj_close if b.adj_close is not None else b.close for b in bars]),
        "high": np.array([b.high for b in bars]),
        "low": np.array([b.low for b in bars]),
        "volume": np.array([b.volume for b in bars]),
    }


def check_sessions(bars: list[Bar], calendar: str, field: tuple = ("body", "bars")) -> None:
    """Every bar dated on a trading session of the model's exchange; else 422 naming the first that
    is not (a Saturday, a holiday). Dates the calendar cannot reach are left to `make_window`."""
    dates = (np.array([b.date.toordinal() for b in bars]) - _EPOCH_ORDINAL).astype("datetime64[D]")
    try:
        # The first session after the day before: the day itself when it is a session.
        sessions = future_sessions(dates - np.timedelta64(1, "D"), 1, calendar)[:, 0]
    except ValueError:
        return
    off = np.flatnonzero(sessions != dates)
    if off.size:
        i, day = int(off[0]), bars[int(off[0])].date
        others = f"; {off.size - 1} more bars are not either" if off.size > 1 else ""
        raise InputError(
            (*field, i, "date"),
            f"{field[-1]}[{i}].date {day} ({day:%A}) is not a {calendar} trading session{others}",
        )


def closes_to_arrays(loaded: LoadedModel, closes: list[float], as_of) -> dict[str, np.ndarray]:
    needs = [f for f in loaded.forecaster.config.window.features if f != "log_return"]
    if needs:
        raise InputError(
            ("body", "closes"), f"this model also reads {', '.join(needs)}: send `bars` with high/low/volume"
        )
    close = np.asarray(closes, dtype=np.float64)
    # Without dates, the last close gets `as_of` (or no date at all: target dates are then null).
    last = np.datetime64(as_of, "D") if as_of else np.datetime64("NaT", "D")
    dates = last - np.arange(len(close))[::-1] if as_of else np.full(len(close), last)
    return {"date": dates, "adj_close": close, "high": close, "low": close, "volume": np.zeros(len(close))}


def make_window(
    loaded: LoadedModel, ticker: str | None, arrays: dict[str, np.ndarray], field: tuple
) -> WindowSet:
    """One request's window, checked before it joins a batch: its target dates must exist.

    A date the exchange calendar cannot reach (year 2300, 1850) is this request's 422 naming the
    date; found later, inside a batched call, it would fail every request batched with it.
    """
    config = loaded.forecaster.config.window
    try:
        window = window_from_arrays(ticker or "request", arrays, config)
        target_dates(window.origin, config.horizon, config.calendar)
    except ValueError as exc:
        raise InputError(field, str(exc)) from None
    return window


def history_of(loaded: LoadedModel, arrays: dict[str, np.ndarray]) -> np.ndarray | None:
    """The trailing memberships a regime shift is judged on, or None with too few bars."""
    if np.isnat(arrays["date"][-1]):  # closes without dates: no days to speak of
        return None
    return serving.trailing_memberships(loaded.forecaster, arrays["adj_close"])


def as_ask(ask: int | Ask) -> Ask:
    return Ask(ask) if isinstance(ask, int) else ask


def forecast_windows(
    loaded: LoadedModel, windows: WindowSet, asks: int | Ask | list[int | Ask], today=None
) -> list[dict | ValueError]:
    """One model call for all windows; one response body (ForecastPublic) per window.

    `asks` is one for all windows or one per window (the micro-batcher mixes requests); a plain
    int is a horizon. A window whose forecast is not finite (prices near the float64 limits
    overflow when the returns are turned into prices) gets a ValueError in its place: a null
    bound is no answer.
    """
    asks = [as_ask(a) for a in asks] if isinstance(asks, list) else [as_ask(asks)] * len(windows)
    model = loaded.forecaster
    config = model.config.window
    state = serving.aci_state(model)
    for ticker, ask in zip(windows.ticker, asks, strict=True):
        if ask.working is not None:
            state.working[str(ticker)] = ask.working
    # Quantiles and intervals at each ticker's working levels: what the batch job stores.
    pred: Prediction = serving.serve(
        model.predict_windows(windows), windows, state, model.config.train.coverage
    )
    targets = target_dates(windows.origin, config.horizon, config.calendar)
    fresh_after = last_closed_session(config.calendar, np.datetime64(today or datetime.now(UTC).date(), "D"))
    coverages = sorted(pred.intervals)
    ref = {"name": loaded.name, "version": loaded.version, "alias": loaded.alias}
    out: list[dict | ValueError] = []
    for i, ask in enumerate(asks):
        levels = ask.levels or model.levels
        quantiles = (
            pred.quantiles[i]
            if ask.levels is None
            else serving.quantiles_at(pred.quantiles[i], model.levels, levels)
        )
        prices = windows.last_price[i] * np.exp(quantiles)  # [H, Q']
        if problem := _not_finite(pred, prices, i, ask.horizon):
            out.append(ValueError(f"last price {windows.last_price[i]:.6g}: {problem}"))
            continue
        keys = [serving.level_key(q) for q in levels]
        steps = []
        for h in range(ask.horizon):
            step = {
                "horizon": h + 1,
                "target_date": None if np.isnat(targets[i, h]) else targets[i, h].item(),
                "forecast": float(pred.price[i, h]),
                "quantiles": dict(zip(keys, prices[h].tolist(), strict=True)),
                "experts": pred.expert_price[i, :, h].tolist(),
            }
            for coverage in coverages:
                lo, hi = pred.intervals[coverage]
                pct = round(100 * coverage)
                step[f"lower_{pct}"], step[f"upper_{pct}"] = float(lo[i, h]), float(hi[i, h])
            steps.append(step)
        origin = windows.origin[i]
        out.append(
            {
                "ticker": None if windows.ticker[i] == "request" else str(windows.ticker[i]),
                "as_of": None if np.isnat(origin) else origin.item(),
                "stale": bool(not np.isnat(origin) and origin < fresh_after),
                "last_price": float(windows.last_price[i]),
                "memberships": pred.memberships[i].astype(float).tolist(),
                **serving.regime_fields(pred.memberships[i], ask.history, model.regime_labels_),
                "steps": steps,
                "model": ref,
            }
        )
    return out


def _not_finite(pred: Prediction, prices: np.ndarray, i: int, horizon: int) -> str | None:
    """Why row `i` of a prediction cannot be answered, or None when every number is finite."""
    values = {
        "forecast": pred.price[i, :horizon],
        "quantiles": prices[:horizon],
        "experts": pred.expert_price[i, :, :horizon],
    }
    for level, (lo, hi) in pred.intervals.items():
        values[f"lower_{round(100 * level)}"], values[f"upper_{round(100 * level)}"] = (
            lo[i, :horizon],
            hi[i, :horizon],
        )
    bad = [name for name, v in values.items() if not np.isfinite(v).all()]
    if bad:
        return f"the forecast's {', '.join(bad)} would not be finite (prices too extreme to forecast)"
    return None


def forecast_each(
    loaded: LoadedModel, windows: list[WindowSet], asks: list[int | Ask]
) -> list[dict | Exception]:
    """One model call for all windows; when it fails, one call per window, so only a bad one fails.

    Returns a response body, or the exception of that window, per window.
    """
    try:
        return forecast_windows(loaded, concat_windows(windows), list(asks))
    except Exception as exc:
        if len(windows) == 1:
            return [exc]
    out: list[dict | Exception] = []
    for window, ask in zip(windows, asks, strict=True):
        try:
            out.extend(forecast_windows(loaded, window, [ask]))
        except Exception as exc:
            out.append(exc)
    return out


class MicroBatcher:
    """Coalesces the forecast requests that are waiting in one worker into one model call.

    A request enqueues its window and awaits a future; the batch runs on the next turn of the
    event loop, after every request already read has been parsed and queued. No request waits
    on a timer: under load the batch grows by itself (an LSTM call for 8 windows costs little
    more than for 1), and alone a request is forecast at once.
    """

    def __init__(self, observe=None):
        self.pending: list[tuple[LoadedModel, WindowSet, int | Ask, asyncio.Future]] = []
        self.observe = observe  # called with the seconds each model call took

    async def forecast(
        self, loaded: LoadedModel, window: WindowSet, ask: int | Ask, field: tuple = ("body",)
    ) -> dict:
        """The forecast of one window; a window whose forecast fails is a 422 naming `field`."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        if not self.pending:
            loop.call_soon(self._run)
        self.pending.append((loaded, window, ask, future))
        result = await future
        if isinstance(result, ValueError):
            raise InputError(field, str(result))
        if isinstance(result, Exception):
            raise result
        return result

    def _run(self) -> None:
        batch, self.pending = self.pending, []
        by_model: dict[int, list] = {}
        for item in batch:  # a hot reload may leave requests for two versions in one batch
            by_model.setdefault(id(item[0]), []).append(item)
        for items in by_model.values():
            start = time.perf_counter()
            # Each request gets its own body or its own error, never another's.
            results = forecast_each(items[0][0], [i[1] for i in items], [i[2] for i in items])
            if self.observe:
                self.observe(time.perf_counter() - start)
            for (*_, future), result in zip(items, results, strict=True):
                if not future.done():
                    future.set_result(result)
