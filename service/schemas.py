"""Request and response bodies, named by role; validation errors name the field and the problem."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, model_validator

Price = Annotated[float, Field(gt=0, allow_inf_nan=False, description="positive, finite")]
TICKER_PATTERN = r"^[A-Za-z0-9^][A-Za-z0-9.^=&-]{0,31}$"
Ticker = Annotated[str, Field(pattern=TICKER_PATTERN, examples=["^GSPC"])]


class Bar(BaseModel):
    """One daily bar. `adj_close` defaults to `close`; `open` and `volume` are optional."""

    model_config = ConfigDict(extra="forbid")

    date: dt.date
    open: Price | None = None
    high: Price
    low: Price
    close: Price
    adj_close: Price | None = None
    volume: Annotated[float, Field(ge=0, allow_inf_nan=False)] = 0.0

    @model_validator(mode="after")
    def _consistent(self) -> Bar:
        if self.high < self.low:
            raise ValueError(f"high {self.high} < low {self.low} on {self.date}")
        # Relative tolerance: float rounding in upstream data puts closes a hair outside the range.
        tol = 1e-6 * self.high
        if not self.low - tol <= self.close <= self.high + tol:
            raise ValueError(f"close {self.close} outside [low {self.low}, high {self.high}] on {self.date}")
        return self


def _check_increasing(dates: list[dt.date], field: str) -> None:
    for i in range(1, len(dates)):
        if dates[i] <= dates[i - 1]:
            problem = "duplicate date" if dates[i] == dates[i - 1] else "dates out of order"
            raise ValueError(
                f"{field}[{i}].date {dates[i]} is not after {field}[{i - 1}].date {dates[i - 1]} ({problem})"
            )


class ForecastRequest(BaseModel):
    """Give exactly one of: `ticker` (bars from the price store), `bars`, or `closes` (with `as_of`)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"ticker": "^GSPC", "horizon": 5},
                {"closes": [100.0 + i for i in range(40)], "as_of": "2024-03-28", "horizon": 3},
            ]
        },
    )

    ticker: Ticker | None = None
    bars: Annotated[list[Bar], Field(max_length=5000)] | None = None
    closes: Annotated[list[Price], Field(max_length=5000)] | None = None
    as_of: dt.date | None = Field(None, description="date of the last close, for `closes`")
    horizon: int | None = Field(
        None, ge=1, le=250, description="trading days ahead, 1..the model's horizon (default)"
    )

    @model_validator(mode="after")
    def _one_source(self) -> ForecastRequest:
        given = [name for name in ("ticker", "bars", "closes") if getattr(self, name) is not None]
        if len(given) != 1:
            raise ValueError(f"give exactly one of ticker, bars, closes (got {', '.join(given) or 'none'})")
        if self.bars is not None:
            _check_increasing([b.date for b in self.bars], "bars")
        return self


class BatchForecastRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"tickers": ["^GSPC", "^IXIC"]}]}
    )

    tickers: Annotated[list[Ticker], Field(min_length=1, max_length=500)]
    horizon: int | None = Field(None, ge=1, le=250, description="default: the model's horizon")


class ModelRefPublic(BaseModel):
    name: str
    version: str | None
    alias: str | None


class ForecastStep(BaseModel):
    horizon: int
    target_date: dt.date | None = Field(
        description="next trading session; null when the as-of date is unknown"
    )
    forecast: float
    lower_80: float | None = None
    upper_80: float | None = None
    lower_95: float | None = None
    upper_95: float | None = None
    experts: list[float] = Field(description="each expert's forecast, in cluster order")


class ForecastPublic(BaseModel):
    ticker: str | None
    as_of: dt.date | None = Field(description="date of the last bar the forecast reads")
    stale: bool = Field(description="true when the bars end before the latest completed trading session")
    last_price: float
    memberships: list[float] = Field(description="fuzzy membership of the window in each cluster (sum 1)")
    steps: list[ForecastStep]
    model: ModelRefPublic


class BatchErrorPublic(BaseModel):
    ticker: str
    status: int
    detail: str


class BatchForecastPublic(BaseModel):
    forecasts: list[ForecastPublic]
    errors: list[BatchErrorPublic]


class ModelPublic(BaseModel):
    name: str
    version: str | None
    alias: str | None
    run_id: str | None
    uri: str
    source: str = Field(
        description="'registry', 'cache' (registry unreachable: its last copy), or 'directory'"
    )
    loaded_at: dt.datetime
    n_clusters: int
    horizon: int
    window: int
    features: list[str]
    fingerprint: dict
    validation_metrics: dict[str, float]
    registry: str = Field(description="'ok', 'not polled' (local model), or why the registry is unreachable")
    registry_checked_at: dt.datetime | None


class StoredForecastPublic(BaseModel):
    ticker: str
    as_of: dt.date
    target_date: dt.date
    horizon: int
    last_price: float
    forecast: float
    lower_80: float | None
    upper_80: float | None
    lower_95: float | None
    upper_95: float | None
    model_name: str
    model_version: str
    run_id: str | None
    created_at: dt.datetime


class ErrorPublic(BaseModel):
    detail: str
