import time

from fastapi import APIRouter, HTTPException, Request

from service import bars as bar_source
from service.deps import ModelDep, SettingsDep
from service.forecasting import (
    InputError,
    bars_to_arrays,
    check_horizon,
    closes_to_arrays,
    forecast_each,
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


async def _ticker_window(loaded, bars: bar_source.BarSource, ticker: str, field: tuple):
    config = loaded.forecaster.config.window
    try:
        arrays = await bars.arrays(ticker, config.calendar, config.window)
    except bar_source.UnknownTicker as exc:
        raise HTTPException(404, str(exc)) from None
    except bar_source.SourceUnavailable as exc:
        raise HTTPException(503, str(exc)) from None
    return make_window(loaded, ticker, arrays, field)


def _predict(loaded, windows: list, horizon: int) -> list:
    start = time.perf_counter()
    out = forecast_each(loaded, windows, [horizon] * len(windows))
    INFERENCE.observe(time.perf_counter() - start)
    return out


@router.post("/forecast", response_model=ForecastPublic, responses=ERRORS)
async def forecast(body: ForecastRequest, request: Request, loaded: ModelDep) -> dict:
    """Forecast the next `horizon` trading days from a ticker's stored bars, or from bars you send."""
    horizon = check_horizon(loaded, body.horizon)
    if body.ticker is not None:
        field = ("body", "ticker")
        window = await _ticker_window(loaded, request.app.state.bars, body.ticker.upper(), field)
    elif body.bars is not None:
        field = ("body", "bars")
        keep = loaded.forecaster.config.window.window + 1
        window = make_window(loaded, None, bars_to_arrays(body.bars, keep), field)
    else:
        field = ("body", "closes")
        window = make_window(loaded, None, closes_to_arrays(loaded, body.closes, body.as_of), field)
    # Inference is ~1 ms of CPU: it runs on the event loop (a thread hop costs more), batched with
    # whatever other requests this worker has waiting.
    return await request.app.state.batcher.forecast(loaded, window, horizon, field)


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
    windows, errors = [], []
    for i, ticker in enumerate(dict.fromkeys(t.upper() for t in request.tickers)):
        try:
            windows.append(await _ticker_window(loaded, http.app.state.bars, ticker, ("body", "tickers", i)))
        except HTTPException as exc:
            errors.append({"ticker": ticker, "status": exc.status_code, "detail": exc.detail})
        except InputError as exc:
            errors.append({"ticker": ticker, "status": 422, "detail": str(exc)})
    forecasts = []
    for window, result in zip(windows, _predict(loaded, windows, horizon) if windows else [], strict=True):
        if isinstance(result, Exception):  # this ticker's forecast failed; the others stand
            status = 422 if isinstance(result, ValueError) else 500
            errors.append({"ticker": str(window.ticker[0]), "status": status, "detail": str(result)})
        else:
            forecasts.append(result)
    return {"forecasts": forecasts, "errors": errors}
