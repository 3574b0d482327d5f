"""Request and response bodies, named by role; validation errors name the field and the problem."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

Price = Annotated[float, Field(gt=0, allow_inf_nan=False, description="positive, finite")]
TICKER_PATTERN = r"^[A-Za-z0-9^][A-Za-z0-9.^=&-]{0,31}$"
Ticker = Annotated[str, Field(pattern=TICKER_PATTERN, examples=["^GSPC"])]
# The stores keep naive UTC times; the API always says so (RFC 3339 with an offset).
UTCDatetime = Annotated[
    dt.datetime,
    AfterValidator(lambda t: t.replace(tzinfo=dt.UTC) if t.tzinfo is None else t.astimezone(dt.UTC)),
]
HORIZON_DESCRIPTION = (
    "trading days ahead, 1..the served model's horizon (GET /v1/model: `horizon`; 5 for the default "
    "model); the schema cannot know the model, so a larger value is answered with 422. "
    "Default: the model's horizon"
)


def _example_bars(n: int = 31) -> list[dict]:
    """n consecutive NYSE sessions of made-up bars: enough for the default model's window of 30."""
    days = [d for d in (dt.date(2024, 1, 29) + dt.timedelta(i) for i in range(60)) if d.weekday() < 5]
    days = [d for d in days if d != dt.date(2024, 2, 19)][:n]  # Presidents' Day
    out = []
    for i, day in enumerate(days):
        close = round(100 + 0.5 * i + (-1) ** i * 0.8, 2)
        out.append({"date": str(day), "high": round(close * 1.01, 2), "low": round(close * 0.99, 2),
                    "close": close, "volume": 1_000_000 + 10_000 * i})  # fmt: skip
    return out


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
                {"bars": _example_bars(), "horizon": 3},
            ]
        },
    )

    ticker: Ticker | None = None
    bars: Annotated[list[Bar], Field(max_length=5000)] | None = None
    closes: (
        Annotated[
            list[Price],
            Field(
                max_length=5000,
                description="closes only: for models that read log returns alone. The default model also "
                "reads each day's high/low range, so it answers 422 here: send `bars`",
            ),
        ]
        | None
    ) = None
    as_of: dt.date | None = Field(None, description="date of the last close, for `closes`")
    horizon: int | None = Field(None, ge=1, le=250, description=HORIZON_DESCRIPTION)

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
    horizon: int | None = Field(None, ge=1, le=250, description=HORIZON_DESCRIPTION)


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
    loaded_at: UTCDatetime
    n_clusters: int
    horizon: int
    window: int
    features: list[str]
    fingerprint: dict
    validation_metrics: dict[str, float]
    registry: str = Field(description="'ok', 'not polled' (local model), or why the registry is unreachable")
    registry_checked_at: UTCDatetime | None


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
    created_at: UTCDatetime


class ErrorPublic(BaseModel):
    detail: str


# Documented answers shared by routes: the guard's (service/guard.py) and FastAPI's own.
AUTH_ERRORS: dict = {
    401: {
        "model": ErrorPublic,
        "description": "missing or invalid X-API-Key (checked before the body is read)",
    }
}
BODY_ERRORS: dict = {
    400: {
        "model": ErrorPublic,
        "description": "the body could not be read as JSON text (for example not UTF-8)",
    },
    408: {"model": ErrorPublic, "description": "the body did not arrive within FORECASTER_BODY_TIMEOUT_S"},
    413: {"model": ErrorPublic, "description": "the body is over FORECASTER_MAX_BODY_BYTES"},
}
