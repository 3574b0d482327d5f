"""Dependencies injected into routes as short Annotated aliases.

All `async def`: FastAPI runs a plain `def` dependency in a thread pool, and four thread hops per
request cost more than the model call.
"""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, HTTPException, Request, Security
from fastapi.security import APIKeyHeader

from service.model_state import LoadedModel, ModelState
from service.settings import ServiceSettings

api_key_header = APIKeyHeader(
    name="X-API-Key", auto_error=False, description="needed when keys are configured"
)


async def get_settings(request: Request) -> ServiceSettings:
    return request.app.state.settings


async def get_state(request: Request) -> ModelState:
    return request.app.state.model


async def get_model(state: Annotated[ModelState, Depends(get_state)]) -> LoadedModel:
    loaded = state.current  # read once: a hot reload swaps the attribute, not this object
    if loaded is None:
        raise HTTPException(503, f"no model loaded: {state.problem()}")
    return loaded


def key_is_valid(given: bytes | None, keys: list[bytes]) -> bool:
    """True when no keys are configured or `given` is one of them."""
    if not keys:
        return True
    given = given or b""
    # Compare against every key, always: timing does not reveal which (or whether one) matched.
    matched = False
    for expected in keys:
        matched |= hmac.compare_digest(given, expected)
    return matched


async def require_api_key(request: Request, key: Annotated[str | None, Security(api_key_header)]) -> None:
    """Declares the key in the OpenAPI document; `service.guard` has already checked it before the body."""
    if not key_is_valid(key.encode("latin-1") if key else None, request.app.state.api_keys):  # raw bytes
        raise HTTPException(401, "missing or invalid X-API-Key", headers={"WWW-Authenticate": "APIKey"})


SettingsDep = Annotated[ServiceSettings, Depends(get_settings)]
StateDep = Annotated[ModelState, Depends(get_state)]
ModelDep = Annotated[LoadedModel, Depends(get_model)]
