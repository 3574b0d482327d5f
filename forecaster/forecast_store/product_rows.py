"""Rows of the joint products beside the forecasts: per-ticker VaR / ES (`risk`) and quintile ranks (`ranks`).

The batch job writes them in the transaction of its forecasts (`forecast_rows.write_batch`),
keyed like them (ticker, as-of date, horizon, model name and version; and alpha for `risk`):
a row stored already is left as it is, so a re-run writes nothing new.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import sqlalchemy as sa

from forecaster.forecast_store.tables import RANK_KEY, RISK_KEY, _insert, ranks, risk

RANK_COLUMNS = tuple(f"rank{k}" for k in range(1, 6))


def check_products(risk_rows: Sequence[dict], rank_rows: Sequence[dict]) -> None:
    """Every number stored is finite (JSON and the API have no NaN); else ValueError naming the row."""
    for table, rows, columns in (("risk", risk_rows, ("var", "es")), ("ranks", rank_rows, RANK_COLUMNS)):
        for i, row in enumerate(rows):
            for column in columns:
                value = row.get(column)
                if value is None or not math.isfinite(value):
                    raise ValueError(
                        f"{row.get('ticker')}: {table}.{column} is {value} at horizon {row.get('horizon')} "
                        f"as of {row.get('as_of')} (row {i})"
                    )


def insert_products(
    conn: sa.Connection, risk_rows: Sequence[dict], rank_rows: Sequence[dict]
) -> dict[str, int]:
    """Insert the rows not stored yet; how many were new in each table."""
    return {
        "risk": _insert_new(conn, risk, RISK_KEY, risk_rows),
        "ranks": _insert_new(conn, ranks, RANK_KEY, rank_rows),
    }


def _insert_new(conn: sa.Connection, table: sa.Table, key: tuple[str, ...], rows: Sequence[dict]) -> int:
    if not rows:
        return 0
    stmt = (
        _insert(conn.engine, table).on_conflict_do_nothing(index_elements=list(key)).returning(table.c.ticker)
    )
    return len(conn.execute(stmt, list(rows)).all())
