"""The FastAPI app: model loaded once in `lifespan`, hot reload in the background.

Run with `forecaster serve` or `uvicorn --factory service.main:create_app`. Settings: ServiceSettings.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from contextlib import asynccontextmanager

import torch
from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi_offline import FastAPIOffline

from forecaster import forecast_store
from service.deps import require_api_key
from service.forecasting import InputError, MicroBatcher
from service.guard import RequestGuard
from service.metrics import INFERENCE, MetricsMiddleware, publish_model_info
from service.model_state import ModelState
from service.routes import forecast, forecasts, health, model
from service.settings import ServiceSettings

log = logging.getLogger("service")


def create_app(settings: ServiceSettings | None = None) -> FastAPI:
    """Build the app; settings are read from the environment here, not at import."""
    settings = settings or ServiceSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        s = app.state.settings = settings
        torch.set_num_threads(s.torch_threads)  # one per worker: workers already use the cores
        app.state.api_keys = [k.encode() for k in s.all_api_keys()]
        app.state.forecast_store = forecast_store.connect(s.forecast_store_url)
        app.state.batcher = MicroBatcher(observe=INFERENCE.observe)
        if s.model_uri.startswith("models:/"):
            from forecaster import tracking

            # A registry outage should show in /v1/model within seconds, not after minutes of retries.
            os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
            os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
            tracking.configure(s)
        state = app.state.model = ModelState(s.model_uri, s.model_name)
        await asyncio.to_thread(state.load_initial)
        _publish_version(state)
        poller = None
        if state.polls_registry and s.reload_interval_s > 0:
            poller = asyncio.create_task(_poll(state, s.reload_interval_s))
        yield
        if poller:
            poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await poller
        app.state.forecast_store.dispose()

    # Swagger UI and ReDoc from assets bundled in the package, not a CDN: /docs works offline.
    app = FastAPIOffline(
        title="fcm-lstm forecasting API",
        version="1",
        summary="Stock price forecasts from a fuzzy-clustering-weighted LSTM ensemble",
        lifespan=lifespan,
    )
    protected = [Depends(require_api_key)]
    app.include_router(health.router)
    app.include_router(model.router, dependencies=protected)
    app.include_router(forecast.router, dependencies=protected)
    app.include_router(forecasts.router, dependencies=protected)
    app.add_exception_handler(InputError, _input_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    # The last added runs first: metrics also count what the guard refuses.
    app.add_middleware(RequestGuard, max_bytes=settings.max_body_bytes, timeout_s=settings.body_timeout_s)
    app.add_middleware(MetricsMiddleware)
    return app


async def _poll(state: ModelState, interval: float) -> None:
    """Hot reload: ask the registry where the alias points; load, warm and swap when it moved."""
    while True:
        await asyncio.sleep(interval)
        try:
            if await asyncio.to_thread(state.check_once):
                _publish_version(state)
        except Exception:  # a broken new version must not stop the service or the polling
            log.exception("hot reload failed; still serving v%s", state.current and state.current.version)


def _publish_version(state: ModelState) -> None:
    current = state.current
    publish_model_info(current and (current.name, str(current.version), str(current.alias)))


async def _input_error(request: Request, exc: InputError) -> JSONResponse:
    return JSONResponse({"detail": [{"loc": list(exc.field), "msg": str(exc), "type": "value_error"}]}, 422)


async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    # FastAPI's shape, minus `input` and `ctx`: echoing the input back can be large or sensitive.
    detail = [{"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]} for e in exc.errors()]
    return JSONResponse({"detail": detail}, 422)
