"""Forecast rows: the batch job's idempotent, optionally fenced write and the API's read."""

from __future__ import annotations

import math
from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from forecaster.forecast_store.aci_rows import _save_aci_state
from forecaster.forecast_store.jobs import Lease, check_lease
from forecaster.forecast_store.product_rows import check_products, insert_products
from forecaster.forecast_store.schema import _engine
from forecaster.forecast_store.tables import FORECAST_KEY, _insert, forecasts


def write_forecasts(
    engine: Engine, rows: Sequence[dict], fence: Lease | None = None, aci_state: Sequence[dict] = ()
) -> int:
    """Insert forecast rows, and the ACI state learnt before them, in one transaction; return how
    many rows were new. (`write_batch` with no products; see it.)"""
    return write_batch(engine, rows, fence=fence, aci_state=aci_state)["forecasts"]


def write_batch(
    engine: Engine,
    rows: Sequence[dict],
    *,
    fence: Lease | None = None,
    aci_state: Sequence[dict] = (),
    risk: Sequence[dict] = (),
    ranks: Sequence[dict] = (),
) -> dict[str, int]:
    """Insert forecast rows, the ACI state learnt before them and the joint products (`risk` and
    `ranks` rows, see `product_rows`) in one transaction; how many rows were new in each table
    ({"forecasts": n, "risk": n, "ranks": n}).

    Rows whose key (ticker, as_of, horizon, model_name, model_version) is stored already are
    left as they are, so re-running a batch is a no-op. Any failure rolls back the whole batch.
    With a `fence` (the job's lock lease), the transaction commits only if the lease is still
    held at that moment; otherwise it rolls back and raises `LockLostError`. `aci_state` rows
    (`aci_rows.aci_records`) replace stored ones only when learnt through a later day.
    """
    if not rows and not aci_state and not risk and not ranks:
        return {"forecasts": 0, "risk": 0, "ranks": 0}
    check_products(risk, ranks)
    for i, row in enumerate(rows):
        for column in ("forecast", "last_price"):
            value = row.get(column)
            if value is None or not math.isfinite(value):
                raise ValueError(
                    f"{row.get('ticker')}: {column} is {value} at horizon {row.get('horizon')} "
                    f"as of {row.get('as_of')} (row {i})"
                )
        for level, value in (row.get("quantiles") or {}).items():  # JSON has no NaN or inf
            if not math.isfinite(value):
                raise ValueError(
                    f"{row.get('ticker')}: quantile {level} is {value} at horizon {row.get('horizon')} "
                    f"as of {row.get('as_of')} (row {i})"
                )
    stmt = (
        _insert(engine, forecasts)
        .on_conflict_do_nothing(index_elements=list(FORECAST_KEY))
        .returning(forecasts.c.ticker)
    )
    with engine.begin() as conn:
        written = {"forecasts": len(conn.execute(stmt, list(rows)).all()) if rows else 0}
        written |= insert_products(conn, risk, ranks)
        _save_aci_state(conn, aci_state)
        if fence is not None:
            check_lease(conn, fence)  # after the writes: see check_lease
        return written


def latest_forecasts(engine_or_url: Engine | str, ticker: str, model_name: str | None = None) -> list[dict]:
    """The latest forecast of `ticker`: one dict per horizon, ordered by horizon; [] if none.

    "Latest" is the most recent as_of date, and of the model versions that forecast from that
    date the one written last (so after a rollback, the restored champion's rows win).
    `model_name` restricts to one registered model. Each dict has the `forecasts` columns:
    ticker, as_of and target_date (`datetime.date`), horizon, last_price, forecast,
    lower_80/upper_80/lower_95/upper_95 (None when not computed), model_name, model_version,
    run_id, created_at (naive UTC `datetime`), quantiles ({"0.025": price, ...}), regime,
    regime_label and regime_shift (None on rows written before those existed).

    Pass the `Engine` from `connect` (created once, e.g. in the API's lifespan); a URL string
    also works but opens a new engine per call.
    """
    from forecaster.data.validation import validate_ticker

    t = forecasts.c
    where = [t.ticker == validate_ticker(ticker)]
    if model_name is not None:
        where.append(t.model_name == model_name)
    with _engine(engine_or_url) as engine, engine.connect() as conn:
        newest = conn.execute(
            sa.select(t.as_of, t.model_name, t.model_version)
            .where(*where)
            .order_by(t.as_of.desc(), t.created_at.desc())
            .limit(1)
        ).first()
        if newest is None:
            return []
        rows = conn.execute(
            sa.select(forecasts)
            .where(
                *where,
                t.as_of == newest.as_of,
                t.model_name == newest.model_name,
                t.model_version == newest.model_version,
            )
            .order_by(t.horizon)
        )
        return [dict(r._mapping) for r in rows]


def tickers_by_regime(engine: Engine, model_name: str | None = None) -> dict[str, int]:
    """How many tickers are in each regime, by label, going by each ticker's latest stored forecast.

    Every ticker counts once, with the regime of its newest as-of date (of the version written
    last); tickers whose latest rows carry no regime are left out.
    """
    t = forecasts.c
    where = [t.horizon == 1] + ([t.model_name == model_name] if model_name else [])
    newest = (
        sa.select(t.ticker, sa.func.max(t.as_of).label("as_of")).where(*where).group_by(t.ticker).subquery()
    )
    query = (
        sa.select(t.ticker, t.regime_label)
        .join(newest, sa.and_(t.ticker == newest.c.ticker, t.as_of == newest.c.as_of))
        .where(*where)
        .order_by(t.created_at)
    )
    with engine.connect() as conn:
        label = {r.ticker: r.regime_label for r in conn.execute(query)}  # the later write wins
    counts: dict[str, int] = {}
    for name in label.values():
        if name is not None:
            counts[name] = counts.get(name, 0) + 1
    return counts
