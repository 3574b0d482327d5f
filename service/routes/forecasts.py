import asyncio
from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Request

from forecaster import forecast_store
from service.schemas import AUTH_ERRORS, TICKER_PATTERN, ErrorPublic, StoredForecastPublic

router = APIRouter(prefix="/v1", tags=["stored forecasts"], responses=AUTH_ERRORS)


@router.get(
    "/forecasts/{ticker}", response_model=list[StoredForecastPublic], responses={404: {"model": ErrorPublic}}
)
async def stored_forecasts(
    request: Request, ticker: Annotated[str, Path(pattern=TICKER_PATTERN, examples=["^GSPC"])]
) -> list[dict]:
    """The latest forecast the batch job stored for a ticker: one row per horizon."""
    rows = await asyncio.to_thread(
        forecast_store.latest_forecasts, request.app.state.forecast_store, ticker.upper()
    )
    if not rows:
        raise HTTPException(404, f"{ticker.upper()}: no stored forecasts (has the batch forecast job run?)")
    return rows
