"""The FastAPI app: model loaded once in `lifespan`, hot reload in the background.

Run with `forecaster serve` (`service.main.serve`), or `uvicorn --factory service.main:create_app
--http service.protocol:HeaderDeadlineProtocol` (without `--http`, idle and half-sent request
heads are never cut off; see service.protocol).
Settings: ServiceSettings. Without the registry the app still starts (see service.model_state);
`serve` exits non-zero when the process can never serve.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import sys
from contextlib import asynccontextmanager

import torch
from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi_offline import FastAPIOffline

from forecaster import forecast_store
from forecaster.forecast_store.jobs import store_error_line
from forecaster.runtime.logs import server_logging_config
from forecaster.runtime.placeholders import exit_on_placeholders
from forecaster.runtime.redact import mask_credentials
from service.bars import BarSource
from service.deps import require_api_key
from service.forecasting import InputError, MicroBatcher
from service.guard import RequestGuard
from service.metrics import INFERENCE, MetricsMiddleware, publish_model_info
from service.model_state import ModelState, local_model_problem
from service.routes import forecast, forecasts, health, model, products
from service.settings import ServiceSettings
from service.store_reads import ACICache, RegimeCounts

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
        app.state.aci = ACICache(app.state.forecast_store, s.store_cache_s)
        app.state.regimes = RegimeCounts(app.state.forecast_store, s.store_cache_s)
        app.state.batcher = MicroBatcher(observe=INFERENCE.observe)
        app.state.bars = BarSource(s)
        # A registry outage should show in /v1/model within seconds, and a worker restarted during
        # one should fall back to its cached model in seconds, not after minutes of retries.
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
        state = app.state.model = ModelState(s)
        # Never raises for the registry; raises (the start fails) for a model directory that does not load.
        await asyncio.to_thread(state.load_initial)
        _publish_version(state)
        _freeze_heap()
        poller = asyncio.create_task(_poll(state, s)) if state.uses_registry else None
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
    app.include_router(products.router, dependencies=protected)
    app.add_exception_handler(InputError, _input_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    # The last added runs first: metrics also count what the guard refuses.
    app.add_middleware(RequestGuard, max_bytes=settings.max_body_bytes, timeout_s=settings.body_timeout_s)
    app.add_middleware(MetricsMiddleware)
    return app


def _freeze_heap() -> None:
    """Move what is loaded (torch, pandas, MLflow, the model) out of the garbage collector's sight.

    Those are millions of long-lived objects; without this, every full collection walks them all
    and stalls the event loop for 100+ ms, which was the API's p99 at 32 concurrent requests.
    After a hot reload the heap is unfrozen first, so the replaced model's reference cycles are
    collected rather than kept frozen for good.
    """
    gc.unfreeze()
    gc.collect()
    gc.freeze()


async def _poll(state: ModelState, settings: ServiceSettings) -> None:
    """Ask the registry where the URI points; load, warm and swap when it moved.

    Every `registry_retry_s` while there is no model or only the cached copy (whatever the
    reload setting: this is how the service recovers), every `reload_interval_s` after (hot reload;
    0 turns it off).
    """
    while True:
        degraded = state.current is None or state.current.source == "cache"
        if not degraded and (settings.reload_interval_s <= 0 or not state.polls_registry):
            return
        await asyncio.sleep(settings.registry_retry_s if degraded else settings.reload_interval_s)
        try:
            if await asyncio.to_thread(state.check_once):
                _publish_version(state)
                _freeze_heap()
        except Exception as exc:  # nothing may stop the service or the polling
            version = state.current and state.current.version
            log.error("registry check failed; still serving v%s: %s", version, mask_credentials(exc))


def serve(host: str = "127.0.0.1", port: int = 8000, workers: int = 1) -> None:
    """Run the API on uvicorn; exit non-zero when it cannot serve, whatever the number of workers.

    What no retry can fix (FORECASTER_MODEL_URI a local path that is no model directory) stops it
    before any worker starts, with exit code 2. A worker whose start-up fails makes uvicorn stop,
    with exit code 0 when there are several workers: that becomes 3 here (uvicorn's own code for a
    failed start). A registry outage is neither: the workers start and retry (service.model_state).
    """
    import uvicorn
    from uvicorn.config import STARTUP_FAILURE
    from uvicorn.supervisors import Multiprocess

    exit_on_placeholders()  # a .env copied unchanged from .env.example
    settings = ServiceSettings()
    if problem := local_model_problem(settings.model_uri):
        print(f"forecaster serve: cannot serve: {problem}", file=sys.stderr)
        raise SystemExit(2)
    try:  # a read-only data folder or a database down: one line here, not a worker's traceback
        forecast_store.connect(settings.forecast_store_url).dispose()
    except Exception as exc:
        line = store_error_line(exc) or mask_credentials(exc)
        print(f"forecaster serve: cannot serve: {line}", file=sys.stderr)
        raise SystemExit(2 if isinstance(exc, OSError) else STARTUP_FAILURE) from None
    config = uvicorn.Config(
        "service.main:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_config=server_logging_config(),  # FORECASTER_LOG_FORMAT=json: JSON lines, access log too
        http="service.protocol:HeaderDeadlineProtocol",  # request heads due within header_timeout_s
    )
    if workers > 1:
        supervisor = Multiprocess(config, sockets=[config.bind_socket()])
        supervisor.run()
        if any(p.exitcode == STARTUP_FAILURE for p in supervisor.processes):
            raise SystemExit(STARTUP_FAILURE)
    else:
        server = uvicorn.Server(config)
        server.run()
        if not server.started:
            raise SystemExit(STARTUP_FAILURE)


def _publish_version(state: ModelState) -> None:
    current = state.current
    publish_model_info(current and (current.name, str(current.version), str(current.alias)))


async def _input_error(request: Request, exc: InputError) -> JSONResponse:
    return JSONResponse({"detail": [{"loc": list(exc.field), "msg": str(exc), "type": "value_error"}]}, 422)


async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    # FastAPI's shape, minus `input` and `ctx`: echoing the input back can be large or sensitive.
    detail = [{"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]} for e in exc.errors()]
    return JSONResponse({"detail": detail}, 422)
