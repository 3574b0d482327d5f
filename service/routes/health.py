from fastapi import APIRouter, HTTPException, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from service.deps import StateDep
from service.metrics import registry

router = APIRouter(tags=["operations"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is alive."""
    return {"status": "ok"}


@router.get("/readyz", responses={503: {"description": "no model loaded yet"}})
async def readyz(state: StateDep) -> dict[str, str]:
    """A model is loaded and warmed: the service can forecast."""
    if state.current is None:
        raise HTTPException(503, f"no model loaded ({state.registry})")
    return {"status": "ready", "model_version": str(state.current.version)}


@router.get("/metrics", response_class=Response, responses={200: {"content": {"text/plain": {}}}})
async def metrics() -> Response:
    """Prometheus metrics of this worker."""
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
