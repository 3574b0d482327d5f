"""Batch forecast job: the champion forecasts every ticker of the universe into the forecast store.

Usage:
    python -m pipelines.batch_forecast                    # embedded defaults (after `forecaster quickstart`)
    python -m pipelines.batch_forecast --as-of 2018-12-28
    python -m pipelines.batch_forecast --engine ray       # ticker shards on Ray (RAY_ADDRESS, else local Ray)
    FORECASTER_FORECAST_STORE_URL=postgresql://postgres@127.0.0.1/forecasts python -m pipelines.batch_forecast

Reads the universe's bars from the price store (FORECASTER_HOME/prices), forecasts the latest
window of every ticker in one batched model call, and writes one row per ticker and horizon to
the forecast store in one transaction. The as-of date defaults to the latest day present in
the bars; a ticker without a bar on that day (stale) or with too little history is skipped and
reported, never forecast from old data. Re-running writes nothing new. Every run is recorded in
`job_runs` (see `forecaster runs`). Exit code 0 when rows were written or already there.
"""

from __future__ import annotations

import argparse
import logging
import sys
from dataclasses import dataclass, field
from datetime import date

import pandas as pd
from sqlalchemy.engine import Engine

from forecaster import forecast_store
from forecaster.batch_predict import predict_latest
from forecaster.config import Settings
from forecaster.data import DataSourceError, PriceStore
from forecaster.data.universe import universe_tickers
from forecaster.data.validation import as_day
from forecaster.engine import ENGINES, use_engine
from forecaster.logs import setup_logging
from forecaster.paths import NotWritableError, ensure_writable

log = logging.getLogger("pipelines.batch_forecast")

INTERVAL_COLUMNS = ("lower_80", "upper_80", "lower_95", "upper_95")


@dataclass
class BatchResult:
    as_of: date
    forecast: list[str]  # tickers forecast
    skipped: dict[str, str] = field(default_factory=dict)  # ticker -> why not
    rows_written: int = 0  # new rows; rows already stored are left alone
    rows_total: int = 0


def read_universe(store: PriceStore, tickers: list[str]) -> tuple[pd.DataFrame, dict[str, str]]:
    """Stored bars of `tickers`, and the tickers the store does not hold."""
    stored = set(store.tickers())
    missing = {t: "not in the price store" for t in tickers if t not in stored}
    present = [t for t in tickers if t in stored]
    if not present:
        raise DataSourceError(f"{store}: none of the universe is stored ({', '.join(tickers)}); run ingest")
    return store.read(present), missing


def select_fresh(
    bars: pd.DataFrame, as_of: pd.Timestamp, min_bars: int
) -> tuple[pd.DataFrame, dict[str, str]]:
    """Bars up to `as_of` of the tickers with a bar on `as_of` and at least `min_bars` of them.

    The others are returned with the reason: a forecast from a stale last bar would be
    labelled with a date it never saw.
    """
    skipped: dict[str, str] = {}
    upto = bars[bars["date"] <= as_of]
    for ticker in sorted(set(bars["ticker"].unique()) - set(upto["ticker"].unique())):
        skipped[ticker] = f"no bars on or before {as_of.date()}"
    last = upto.groupby("ticker")["date"].max()
    count = upto.groupby("ticker").size()
    for ticker, day in last[last < as_of].items():
        skipped[ticker] = f"stale: last bar {day.date()}, as of {as_of.date()}"
    for ticker, n in count[(count < min_bars) & (last == as_of)].items():
        skipped[ticker] = f"{n} bars, the model needs {min_bars}"
    return upto[~upto["ticker"].isin(list(skipped))].reset_index(drop=True), skipped


def forecast_rows(
    frame: pd.DataFrame, model_name: str, model_version: str, run_id: str | None, created_at
) -> list[dict]:
    """`FuzzyLSTMForecaster.predict` output as rows of the `forecasts` table."""
    out = pd.DataFrame(
        {
            "ticker": frame["ticker"].astype(str),
            "as_of": frame["as_of"].dt.date,
            "horizon": frame["horizon"].astype(int),
            "target_date": frame["target_date"].dt.date,
            "last_price": frame["last_price"],
            "forecast": frame["forecast"],
        }
    )
    for column in INTERVAL_COLUMNS:  # a model calibrated at other levels leaves these empty
        out[column] = frame[column] if column in frame else None
    out = out.assign(model_name=model_name, model_version=model_version, run_id=run_id, created_at=created_at)
    return out.to_dict("records")


def forecast(
    model,
    bars: pd.DataFrame,
    as_of=None,
    *,
    model_name: str,
    model_version: str,
    run_id: str | None = None,
    engine: str = "local",
) -> tuple[list[dict], BatchResult]:
    """Forecast rows of every fresh ticker in `bars` in one model call (or ticker shards on Ray), and what was skipped."""
    if bars.empty:
        raise DataSourceError("no bars to forecast from")
    day = as_day(as_of, "as_of") if as_of is not None else bars["date"].max()
    fresh, skipped = select_fresh(bars, day, model.config.window.window + 1)
    result = BatchResult(day.date(), sorted(fresh["ticker"].unique()), skipped)
    if fresh.empty:
        reasons = "; ".join(f"{t}: {why}" for t, why in skipped.items())
        raise DataSourceError(f"no ticker can be forecast as of {day.date()} ({reasons})")
    frame = predict_latest(model, fresh, engine)  # the latest window of every ticker
    rows = forecast_rows(frame, model_name, model_version, run_id, forecast_store.utcnow())
    result.rows_total = len(rows)
    return rows, result


def run(
    settings: Settings,
    as_of=None,
    *,
    engine: Engine | None = None,
    fence: forecast_store.Lease | None = None,
) -> BatchResult:
    """The job: champion + stored bars of the universe -> forecast store, recorded in job_runs.

    With `fence` (the scheduler's lock lease) the rows commit only while the lease is held:
    a job that lost its lock raises `LockLostError` and writes nothing.
    """
    from forecaster import tracking

    # The data folder holds the SQLite store and MLflow's local files: check it before loading.
    ensure_writable(settings.home)
    use_engine(settings)  # FORECASTER_ENGINE=ray: a cluster that cannot be reached fails now
    engine = engine or forecast_store.connect(settings.forecast_store_url)
    with forecast_store.record_run(
        engine,
        "batch_forecast",
        heartbeat_s=settings.job_heartbeat_s,
        stale_after_s=settings.job_stale_after_s,
    ) as record:
        champion = tracking.load_registered(settings)
        tickers = universe_tickers(settings)
        bars, missing = read_universe(PriceStore(settings.price_dir), tickers)
        rows, result = forecast(
            champion.model,
            bars,
            as_of,
            model_name=champion.name,
            model_version=champion.version,
            run_id=champion.run_id,
            engine=settings.engine,
        )
        result.skipped = missing | result.skipped
        result.rows_written = forecast_store.write_forecasts(engine, rows, fence)
        record.counts = {
            "as_of": str(result.as_of),
            "model_version": champion.version,
            "universe": len(tickers),
            "forecast": len(result.forecast),
            "skipped": len(result.skipped),
            "rows_written": result.rows_written,
            "rows_existing": result.rows_total - result.rows_written,
        }
        if result.skipped:
            record.status = "partial"
            record.error = "skipped " + "; ".join(f"{t}: {why}" for t, why in result.skipped.items())
    for ticker, why in result.skipped.items():
        log.warning("%s: skipped (%s)", ticker, why)
    log.info(
        "%s v%s as of %s: %d tickers forecast, %d skipped; %d new rows (%d already stored)",
        champion.name,
        champion.version,
        result.as_of,
        len(result.forecast),
        len(result.skipped),
        result.rows_written,
        result.rows_total - result.rows_written,
    )
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--as-of", help="forecast from the bars of this day (YYYY-MM-DD); default the latest")
    parser.add_argument(
        "--engine", choices=ENGINES, help="local or ray (default FORECASTER_ENGINE, else local)"
    )
    args = parser.parse_args(argv)
    setup_logging()  # forecaster.logs: plain lines, or JSON with FORECASTER_LOG_FORMAT=json
    try:
        run(Settings(**({"engine": args.engine} if args.engine else {})), args.as_of)
    # Expected failures: one line, no traceback.
    except (
        ValueError,
        DataSourceError,
        NotWritableError,
        forecast_store.SchemaVersionError,
        forecast_store.LockLostError,
    ) as exc:
        sys.exit(f"error: {exc}")


if __name__ == "__main__":
    main()
