from fastapi import APIRouter, HTTPException, Request, Response

from service import metrics as prometheus
from service.deps import StateDep

router = APIRouter(tags=["operations"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is alive."""
    return {"status": "ok"}


@router.get(
    "/readyz", responses={503: {"description": "no model loaded yet; the detail says what is missing"}}
)
async def readyz(state: StateDep) -> dict[str, str]:
    """A model is loaded and warmed: the service can forecast (`source: cache` while the registry is down)."""
    loaded = state.current
    if loaded is None:
        raise HTTPException(503, f"no model loaded: {state.problem()}")
    return {
        "status": "ready",
        "model_version": str(loaded.version),
        "source": loaded.source,
        "registry": state.registry,
    }


@router.get("/metrics", response_class=Response, responses={200: {"content": {"text/plain": {}}}})
async def metrics(request: Request, state: StateDep) -> Response:
    """Prometheus metrics of the whole server: the samples of every worker, summed, and the
    tickers per regime of the latest stored forecasts."""
    name = state.current.name if state.current else None
    text, content_type = prometheus.latest(await request.app.state.regimes.counts(name))
    return Response(text, media_type=content_type)
