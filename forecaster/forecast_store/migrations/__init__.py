"""Alembic migrations of the forecast store (see `forecaster.forecast_store.upgrade`).

To change the schema: edit the tables in `forecast_store.py`, add `versions/NNNN_<what>.py`
(copy the latest one: `revision`, `down_revision`, `upgrade`, `downgrade`), and run
`tests/test_forecast_store.py`, which checks that the migrated schema equals the tables.
"""
