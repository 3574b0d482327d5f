"""Request and response bodies, named by role; validation errors name the field and the problem."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, model_validator

# Numbers are JSON numbers (strict): pydantic's lax mode would read `true` as 1 and "5" as 5.
Price = Annotated[float, Field(gt=0, allow_inf_nan=False, strict=True, description="positive, finite")]
TICKER_PATTERN = r"^[A-Za-z0-9^][A-Za-z0-9.^=&-]{0,31}$"
Ticker = Annotated[str, Field(pattern=TICKER_PATTERN, examples=["^GSPC"])]
# The stores keep naive UTC times; the API always says so (RFC 3339 with an offset).
UTCDatetime = Annotated[
    dt.datetime,
    AfterValidator(lambda t: t.replace(tzinfo=dt.UTC) if t.tzinfo is None else t.astimezone(dt.UTC)),
]
Level = Annotated[float, Field(gt=0, lt=1, allow_inf_nan=False, strict=True)]


def _integral_float(value):
    """5.0 -> 5: JSON Schema counts 5.0 as an integer, so the API takes it; strict mode alone would not."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


Horizon = Annotated[int, Field(ge=1, le=250, strict=True), BeforeValidator(_integral_float)]
LEVELS_DESCRIPTION = (
    "quantile levels to answer, each in (0, 1) and within the served model's range (0.01 to 0.99 "
    "for the default model; GET /v1/model: `levels`): levels between the model's own are interpolated. "
    "A level the model cannot give is answered with 422 naming it. Default: the model's levels"
)
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
                {"ticker": "^GSPC", "horizon": 5, "levels": [0.05, 0.5, 0.95]},
            ],
            # "Exactly one of ticker, bars, closes", in the document: null counts as not given.
            "oneOf": [
                {"required": ["ticker"], "properties": {"ticker": {"type": "string"}}},
                {"required": ["bars"], "properties": {"bars": {"type": "array"}}},
                {"required": ["closes"], "properties": {"closes": {"type": "array"}}},
            ],
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
    horizon: Horizon | None = Field(None, description=HORIZON_DESCRIPTION)
    levels: Annotated[list[Level], Field(min_length=1, max_length=99)] | None = Field(
        None, description=LEVELS_DESCRIPTION
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
    horizon: Horizon | None = Field(None, description=HORIZON_DESCRIPTION)
    levels: Annotated[list[Level], Field(min_length=1, max_length=99)] | None = Field(
        None, description=LEVELS_DESCRIPTION
    )


class ModelRefPublic(BaseModel):
    name: str
    version: str | None
    alias: str | None


class ForecastStep(BaseModel):
    horizon: int
    target_date: dt.date | None = Field(
        description="next trading session; null when the as-of date is unknown"
    )
    forecast: float = Field(
        description="the model's point forecast of the adjusted close: its median, as calibrated in training "
        "(ACI moves `quantiles` and the bounds, not this)"
    )
    quantiles: dict[str, float] = Field(
        description="price quantiles by level ('0.025': price), in increasing level order: the requested "
        "`levels`, else every level of the model. For a `ticker` they are served at the ticker's adaptive "
        "conformal (ACI) working levels, the same as the batch job stores; for `bars` or `closes`, at the "
        "nominal levels",
        examples=[{"0.025": 97.9, "0.05": 98.3, "0.1": 98.8, "0.25": 99.6, "0.5": 100.4, "0.75": 101.2,
                   "0.9": 101.9, "0.95": 102.4, "0.975": 102.8}],
    )  # fmt: skip
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
    regime: int = Field(description="the dominant regime: the cluster of the largest membership")
    regime_label: str = Field(description="its readable name, e.g. 'calm, rising'", examples=["calm, rising"])
    regime_shift: bool | None = Field(
        description="true when today's dominant regime differs from that of the trailing 20 days' mean "
        "memberships, by a margin of 0.1; null when fewer than window + 21 bars are available"
    )
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
    regime_labels: list[str] = Field(description="the readable name of each cluster, in cluster order")
    levels: list[float] = Field(description="the quantile levels the model forecasts")
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
    quantiles: dict[str, float] | None = Field(
        None, description="every served quantile by level ('0.025': price); null on rows stored before them"
    )
    regime: int | None = None
    regime_label: str | None = None
    regime_shift: bool | None = Field(None, description="null when unknown (too few bars, or older rows)")
    model_name: str
    model_version: str
    run_id: str | None
    created_at: UTCDatetime


# ---- joint products of several tickers: VaR / ES (POST /v1/risk), M6 quintile ranks (POST /v1/rank) ----

TailLevel = Annotated[float, Field(gt=0, le=0.5, allow_inf_nan=False, strict=True)]
Weight = Annotated[float, Field(ge=-100, le=100, allow_inf_nan=False, strict=True)]
JOINT_TICKERS_DESCRIPTION = (
    "stored tickers (bars from the price store, as for POST /v1/forecast), each with a bar on the "
    "latest date of the group: a ticker whose bars end earlier is answered with 422 naming it. "
    "Case-insensitive; repeats count once"
)
JOINT_HORIZON_DESCRIPTION = (
    "trading days ahead of the as-of date, 1..the served model's horizon (GET /v1/model: `horizon`): "
    "the model's own h-day quantiles, never compounded 1-day ones; larger is answered with 422. "
    "Default: the model's horizon"
)


class RiskRequest(BaseModel):
    """VaR and ES of each ticker and of a portfolio of them, from one joint simulation."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"tickers": ["^GSPC", "^IXIC"], "horizon": 5},
                {
                    "tickers": ["^GSPC", "^IXIC"],
                    "weights": {"^GSPC": 0.6, "^IXIC": 0.4},
                    "levels": [0.01, 0.05],
                },
            ]
        },
    )

    tickers: Annotated[
        list[Ticker], Field(min_length=1, max_length=500, description=JOINT_TICKERS_DESCRIPTION)
    ]
    weights: Annotated[dict[Ticker, Weight], Field(max_length=500)] | None = Field(
        None,
        description="portfolio weights as fractions of value, ticker -> weight (negative: short); a ticker "
        "left out weighs 0, a ticker not in `tickers` is answered with 422. Default: equal weights",
        examples=[{"^GSPC": 0.6, "^IXIC": 0.4}],
    )
    horizon: Horizon | None = Field(None, description=JOINT_HORIZON_DESCRIPTION)
    levels: Annotated[list[TailLevel], Field(min_length=1, max_length=20)] | None = Field(
        None,
        description="tail probabilities alpha of VaR and ES, each in (0, 0.5]. Default: 0.01, 0.025, 0.05",
    )


class RankRequest(BaseModel):
    """Quintile rank probabilities of the tickers' returns, in the M6 competition's layout."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"tickers": ["AAPL", "MSFT", "XOM", "JPM", "KO"], "horizon": 5}]},
    )

    tickers: Annotated[
        list[Ticker], Field(min_length=5, max_length=500, description=JOINT_TICKERS_DESCRIPTION)
    ]
    horizon: Horizon | None = Field(None, description=JOINT_HORIZON_DESCRIPTION)


class RiskLevelPublic(BaseModel):
    level: float = Field(description="tail probability alpha")
    var: float = Field(
        description="value at risk: the loss exceeded with probability alpha, a fraction of value"
    )
    es: float = Field(description="expected shortfall: the mean loss on the worst alpha share of paths")


class TickerRiskLevelPublic(RiskLevelPublic):
    component_es: float = Field(
        description="the ticker's share of the portfolio's ES at this level (the tickers' sum to it)"
    )


class TickerRiskPublic(BaseModel):
    ticker: str
    weight: float
    last_price: float = Field(description="adjusted close on the as-of date")
    risk: list[TickerRiskLevelPublic] = Field(description="the ticker's own VaR and ES, one per level")


class RiskPublic(BaseModel):
    as_of: dt.date = Field(description="date of the last bar every ticker's forecast reads")
    stale: bool = Field(description="true when the bars end before the latest completed trading session")
    horizon: int
    paths: int = Field(description="simulated paths (FORECASTER_JOINT_PATHS); the simulation is seeded")
    tickers: list[TickerRiskPublic]
    portfolio: list[RiskLevelPublic] = Field(description="the portfolio's VaR and ES, one per level")
    model: ModelRefPublic


class RankRowPublic(BaseModel):
    """One row of the M6 template: the ticker (ID) and its probability of each quintile."""

    ID: str
    Rank1: float = Field(description="probability of the lowest fifth of returns in the group")
    Rank2: float
    Rank3: float
    Rank4: float
    Rank5: float = Field(description="probability of the highest fifth")


class RankPublic(BaseModel):
    as_of: dt.date = Field(description="date of the last bar every ticker's forecast reads")
    stale: bool = Field(description="true when the bars end before the latest completed trading session")
    horizon: int
    paths: int = Field(description="simulated paths (FORECASTER_JOINT_PATHS); the simulation is seeded")
    ranks: list[RankRowPublic] = Field(description="one row per ticker, in request order; rows sum to 1")
    model: ModelRefPublic


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
    415: {"model": ErrorPublic, "description": "the body was sent without Content-Type: application/json"},
}
