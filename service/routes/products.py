"""Joint products of several stored tickers: VaR / ES (`/v1/risk`) and M6 quintile ranks (`/v1/rank`)."""

import math

from fastapi import APIRouter, Request

from forecaster import products
from forecaster.joint import DEFAULT_ALPHAS
from service.deps import ModelDep
from service.forecasting import InputError, check_horizon
from service.json_body import OffloadedJSONRoute
from service.products import check_tickers, joint_product
from service.schemas import (
    AUTH_ERRORS,
    BODY_ERRORS,
    ErrorPublic,
    RankPublic,
    RankRequest,
    RiskPublic,
    RiskRequest,
)  # fmt: skip

router = APIRouter(
    prefix="/v1", tags=["joint products"], route_class=OffloadedJSONRoute, responses=AUTH_ERRORS | BODY_ERRORS
)

ERRORS = {
    404: {"model": ErrorPublic, "description": "a ticker without bars in the price store"},
    503: {"model": ErrorPublic, "description": "no model loaded, or no bars and the data source is down"},
}


def _weights(body: RiskRequest, tickers: list[str]) -> dict[str, float] | None:
    """The weights by upper-case ticker; 422 naming a ticker that is not in `tickers`, or all zero."""
    if body.weights is None:
        return None
    weights: dict[str, float] = {}
    for name, value in body.weights.items():
        ticker = name.upper()
        if ticker not in tickers:
            raise InputError(("body", "weights", name), f"{name} is not one of the tickers")
        weights[ticker] = weights.get(ticker, 0.0) + value
    if not any(weights.values()):
        raise InputError(("body", "weights"), "every weight is 0")
    return weights


def _finite(values, what: str) -> None:
    if not all(math.isfinite(v) for v in values):
        raise InputError(("body", "tickers"), f"the {what} would not be finite (prices too extreme)")


@router.post("/risk", response_model=RiskPublic, responses=ERRORS)
async def risk(body: RiskRequest, request: Request, loaded: ModelDep) -> dict:
    """Value at risk and expected shortfall of each ticker and of a portfolio over `horizon` days.

    One seeded joint simulation (the model's calibrated quantiles tied by a t copula of past daily
    returns); losses are positive fractions of value. Each ticker's component ES is its share of
    the portfolio's ES."""
    horizon = check_horizon(loaded, body.horizon)
    tickers = check_tickers(request, body.tickers)
    weights = _weights(body, tickers)
    alphas = tuple(sorted(set(body.levels))) if body.levels else DEFAULT_ALPHAS

    def tables(joint):
        return products.risk_tables(joint, weights=weights, alphas=alphas)

    product_key = ("risk", tuple(sorted((weights or {}).items())), alphas)
    joint, (per_ticker, portfolio), stale = await joint_product(
        request, loaded, tickers, horizon, tables, product_key
    )
    _finite([*per_ticker[["var", "es", "component_es"]].to_numpy().ravel(), *portfolio["es"]], "losses")
    rows = per_ticker.to_dict("records")  # in the simulation's order: A rows a ticker
    a = len(alphas)
    at = {t: i for i, t in enumerate(joint.tickers)}
    return {
        "as_of": joint.as_of.date(),
        "stale": stale,
        "horizon": horizon,
        "paths": len(joint.draws),
        "tickers": [
            {
                "ticker": ticker,
                "weight": float(rows[at[ticker] * a]["weight"]),
                "last_price": float(joint.last_price[at[ticker]]),
                "risk": [
                    {"level": r["alpha"], "var": r["var"], "es": r["es"], "component_es": r["component_es"]}
                    for r in rows[at[ticker] * a : (at[ticker] + 1) * a]
                ],
            }
            for ticker in tickers  # in request order
        ],
        "portfolio": [
            {"level": r["alpha"], "var": r["var"], "es": r["es"]} for r in portfolio.to_dict("records")
        ],
        "model": {"name": loaded.name, "version": loaded.version, "alias": loaded.alias},
    }


@router.post("/rank", response_model=RankPublic, responses=ERRORS)
async def rank(body: RankRequest, request: Request, loaded: ModelDep) -> dict:
    """Each ticker's probability of landing in each quintile of the group's returns over `horizon`
    days (Rank1: the lowest fifth), as rows of the M6 competition's template."""
    horizon = check_horizon(loaded, body.horizon)
    tickers = check_tickers(request, body.tickers)
    if len(tickers) < 5:
        raise InputError(
            ("body", "tickers"), f"ranking into quintiles needs at least 5 tickers, got {len(tickers)}"
        )
    joint, table, stale = await joint_product(
        request, loaded, tickers, horizon, products.rank_table, ("rank",)
    )
    return {
        "as_of": joint.as_of.date(),
        "stale": stale,
        "horizon": horizon,
        "paths": len(joint.draws),
        "ranks": table.set_index("ID").loc[tickers].reset_index().to_dict("records"),  # request order
        "model": {"name": loaded.name, "version": loaded.version, "alias": loaded.alias},
    }
