import time

from fastapi import APIRouter, HTTPException, Request

from service import bars as bar_source
from service.deps import ModelDep, SettingsDep
from service.forecasting import (
    Ask,
    InputError,
    bars_needed,
    bars_to_arrays,
    check_horizon,
    check_levels,
    check_sessions,
    closes_to_arrays,
    forecast_each,
    history_of,
    make_window,
)  # fmt: skip
from service.json_body import OffloadedJSONRoute
from service.metrics import INFERENCE
from service.schemas import (
    AUTH_ERRORS,
    BODY_ERRORS,
    BatchForecastPublic,
    BatchForecastRequest,
    ErrorPublic,
    ForecastPublic,
    ForecastRequest,
)

router = APIRouter(
    prefix="/v1", tags=["forecast"], route_class=OffloadedJSONRoute, responses=AUTH_ERRORS | BODY_ERRORS
)

ERRORS = {
    404: {"model": ErrorPublic, "description": "unknown ticker"},
    503: {"model": ErrorPublic, "description": "no model loaded, or no bars and the data source is down"},
}


async def _ticker_ask(loaded, http: Request, ticker: str, field: tuple, horizon: int, levels):
    """A stored ticker's window, and what its answer needs: trailing memberships, ACI state."""
    config = loaded.forecaster.config.window
    try:
        # (`arrays(..., n)` gives the last n + 1 bars)
        arrays = await http.app.state.bars.arrays(ticker, config.calendar, bars_needed(loaded) - 1)
    except bar_source.UnknownTicker as exc:
        raise HTTPException(404, str(exc)) from None
    except bar_source.SourceUnavailable as exc:
        raise HTTPException(503, str(exc)) from None
    window = make_window(loaded, ticker, arrays, field)
    working = await http.app.state.aci.working(loaded, ticker)
    return window, Ask(horizon, levels, history_of(loaded, arrays), working)


def _predict(loaded, windows: list, asks: list) -> list:
    start = time.perf_counter()
    out = forecast_each(loaded, windows, asks)
    INFERENCE.observe(time.perf_counter() - start)
    return out


@router.post("/forecast", response_model=ForecastPublic, responses=ERRORS)
async def forecast(body: ForecastRequest, request: Request, loaded: ModelDep) -> dict:
    """Forecast the next `horizon` trading days from a ticker's stored bars, or from bars you send.

    Every quantile per step (or the `levels` asked for), the 80/95% bounds, and the regime."""
    horizon = check_horizon(loaded, body.horizon)
    levels = check_levels(loaded, body.levels)
    if body.ticker is not None:
        field = ("body", "ticker")
        window, ask = await _ticker_ask(loaded, request, body.ticker.upper(), field, horizon, levels)
    else:
        if body.bars is not None:
            field = ("body", "bars")
            check_sessions(body.bars, loaded.forecaster.config.window.calendar, field)
            arrays = bars_to_arrays(body.bars, bars_needed(loaded))
        else:
            field = ("body", "closes")
            arrays = closes_to_arrays(loaded, body.closes, body.as_of)
        window = make_window(loaded, None, arrays, field)
        ask = Ask(horizon, levels, history_of(loaded, arrays))  # no ticker, no ACI state: nominal levels
    # Inference is ~1 ms of CPU: it runs on the event loop (a thread hop costs more), batched with
    # whatever other requests this worker has waiting.
    return await request.app.state.batcher.forecast(loaded, window, ask, field)


@router.post("/forecast/batch", response_model=BatchForecastPublic, responses=ERRORS)
async def forecast_batch(
    request: BatchForecastRequest, http: Request, loaded: ModelDep, settings: SettingsDep
) -> dict:
    """Forecast several stored tickers in one model call; tickers that fail are listed in `errors`."""
    if len(request.tickers) > settings.max_batch_tickers:
        raise InputError(
            ("body", "tickers"), f"{len(request.tickers)} tickers; at most {settings.max_batch_tickers}"
        )
    horizon = check_horizon(loaded, request.horizon)
    levels = check_levels(loaded, request.levels)
    windows, asks, errors = [], [], []
    for i, ticker in enumerate(dict.fromkeys(t.upper() for t in request.tickers)):
        try:
            window, ask = await _ticker_ask(loaded, http, ticker, ("body", "tickers", i), horizon, levels)
        except HTTPException as exc:
            errors.append({"ticker": ticker, "status": exc.status_code, "detail": exc.detail})
        except InputError as exc:
            errors.append({"ticker": ticker, "status": 422, "detail": str(exc)})
        else:
            windows.append(window)
            asks.append(ask)
    forecasts = []
    for window, result in zip(windows, _predict(loaded, windows, asks) if windows else [], strict=True):
        if isinstance(result, Exception):  # this ticker's forecast failed; the others stand
            status = 422 if isinstance(result, ValueError) else 500
            errors.append({"ticker": str(window.ticker[0]), "status": status, "detail": str(result)})
        else:
            forecasts.append(result)
    return {"forecasts": forecasts, "errors": errors}
