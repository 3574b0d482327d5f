"""The ACI state beside the forecasts: read by the API and the batch job, written with the forecasts.

`aci_state` holds, per ticker, model name, horizon and nominal level, the working level that
adaptive conformal inference (`forecaster.calibration.aci`) serves, DtACI's candidate levels and
weights (`candidates`, NULL for plain ACI), and `updated_through`: the last day whose
outcomes it has learnt. The batch job reads the state and the stored forecasts that came due
since (`forecasts_due`), updates the state, and writes it in the transaction of its forecasts
(`write_forecasts(..., aci_state=...)`): a re-run of a day finds nothing due and writes nothing,
and a state never moves back to an earlier `updated_through`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from forecaster.forecast_store.schema import _engine
from forecaster.forecast_store.tables import _insert, aci_state, forecasts, utcnow


def load_aci_state(
    engine_or_url: Engine | str, model_name: str, tickers: Iterable[str] | None = None
) -> list[dict]:
    """State records of `model_name` (of `tickers` only, when given): ticker, horizon, level,
    working_level, candidates (None: plain ACI), updated_through. One short query, read-only."""
    t = aci_state.c
    query = sa.select(t.ticker, t.horizon, t.level, t.working_level, t.candidates, t.updated_through).where(
        t.model_name == model_name
    )
    if tickers is not None:
        query = query.where(t.ticker.in_(sorted(set(tickers))))
    with _engine(engine_or_url) as engine, engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(query)]


def forecasts_due(
    engine: Engine, model_name: str, since: Mapping[str, dt.date | None], through: dt.date
) -> list[dict]:
    """Stored forecasts of `model_name` whose target date is in (since[ticker], through].

    `since[ticker]` None means from the beginning. Where several versions forecast the same
    ticker, as-of date and horizon, the one written last counts (what was served last).
    Each dict: ticker, as_of, horizon, target_date, last_price, quantiles.
    """
    t = forecasts.c
    rows: dict[tuple, dict] = {}
    with engine.connect() as conn:
        for ticker, start in since.items():
            where = [t.model_name == model_name, t.ticker == ticker, t.target_date <= through]
            if start is not None:
                where.append(t.target_date > start)
            query = sa.select(
                t.ticker, t.as_of, t.horizon, t.target_date, t.last_price, t.quantiles, t.created_at
            ).where(*where)
            for r in conn.execute(query.order_by(t.created_at)):
                rows[(r.ticker, r.as_of, r.horizon)] = dict(r._mapping)  # the later write wins
    return list(rows.values())


def aci_records(records: Sequence[Mapping], model_name: str, updated_through: dt.date) -> list[dict]:
    """`ACIState.to_records()` as `aci_state` rows learnt through `updated_through`.

    Every row names `candidates` (None for a plain ACI record), so an ACI row that replaces a
    DtACI one leaves none behind."""
    now = utcnow()
    extra = {"model_name": model_name, "updated_through": updated_through, "updated_at": now}
    return [{**r, "candidates": r.get("candidates"), **extra} for r in records]


def _save_aci_state(conn: sa.Connection, rows: Sequence[dict]) -> None:
    """Upsert state rows; a row only replaces one learnt through an earlier day."""
    if not rows:
        return
    stmt = _insert(conn.engine, aci_state)
    stmt = stmt.on_conflict_do_update(
        index_elements=["ticker", "model_name", "horizon", "level"],
        set_={
            "working_level": stmt.excluded.working_level,
            "candidates": stmt.excluded.candidates,
            "updated_through": stmt.excluded.updated_through,
            "updated_at": stmt.excluded.updated_at,
        },
        where=aci_state.c.updated_through < stmt.excluded.updated_through,
    )
    conn.execute(stmt, list(rows))
