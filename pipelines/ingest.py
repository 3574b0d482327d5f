"""Ingest job: daily bars of the universe from Yahoo Finance into the Parquet price store.

Usage:
    python -m pipelines.ingest             # incremental: the days after what the store holds
    python -m pipelines.ingest --full      # re-download every ticker's whole history
    python -m pipelines.ingest --engine ray   # tickers in parallel Ray tasks, one rate limit for all
    FORECASTER_UNIVERSE_FILE=universe.txt python -m pipelines.ingest

Incremental runs re-read `ingest_overlap_days` calendar days before each ticker's last stored
bar, so revised bars replace the stored ones. When those overlapping days' adjusted closes
changed (a dividend or split re-adjusted the whole history), the ticker's full history is
downloaded again. Tickers go in batches of `ingest_batch_size`; every ticker's bars are
validated, and each file is replaced atomically. Rate limits and network errors are retried
with exponential backoff and jitter. A ticker that fails (unknown, delisted, no bars, bad
data) is reported and the others go on; the exit code is 1 when more than
`ingest_max_failure_share` of the universe failed. Every run is recorded in `job_runs`.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import logging
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sqlalchemy.engine import Engine

from forecaster import forecast_store
from forecaster.config import Settings
from forecaster.data import DataSourceError, DataValidationError, PriceStore
from forecaster.data.universe import universe_tickers
from forecaster.data.yahoo import NO_RETRY, RetryPolicy, download_ticker
from forecaster.runtime.engine import ENGINES, RateLimit, map_tasks, use_engine
from forecaster.runtime.logs import setup_logging
from forecaster.runtime.paths import NotWritableError, ensure_writable
from forecaster.runtime.placeholders import exit_on_placeholders

log = logging.getLogger("pipelines.ingest")

# Adjusted closes of a day seen twice that differ by more than this were re-adjusted.
REVISION_RTOL = 1e-5


@dataclass
class TickerOutcome:
    ticker: str
    ok: bool
    new_rows: int = 0  # bars dated after the previously stored last bar
    last_date: pd.Timestamp | None = None
    full: bool = False  # the whole history was (re)written
    error: str | None = None


@dataclass
class IngestReport:
    outcomes: list[TickerOutcome] = field(default_factory=list)

    @property
    def failed(self) -> list[TickerOutcome]:
        return [o for o in self.outcomes if not o.ok]

    @property
    def failure_share(self) -> float:
        return len(self.failed) / len(self.outcomes) if self.outcomes else 0.0

    def exit_code(self, max_failure_share: float) -> int:
        """0 when at most `max_failure_share` of the tickers failed, else 1."""
        return int(self.failure_share > max_failure_share)

    def counts(self) -> dict:
        return {
            "tickers": len(self.outcomes),
            "failed": len(self.failed),
            "new_rows": sum(o.new_rows for o in self.outcomes),
            "full_refreshes": sum(o.full for o in self.outcomes if o.ok),
        }


def feeds_price_store(settings: Settings) -> bool:
    """Whether the jobs should ingest first: the configured source is Yahoo or its cache.

    The bundled sample and local files are read as they are; there is nothing to download.
    """
    return settings.source in ("yahoo", "cache")


def download_start(last_stored: pd.Timestamp | None, overlap_days: int) -> pd.Timestamp | None:
    """First day to ask for: a few days before the last stored bar; None (everything) when new."""
    return None if last_stored is None else last_stored - pd.Timedelta(days=overlap_days)


def history_revised(stored: pd.DataFrame, fresh: pd.DataFrame) -> bool:
    """True when days both frames hold disagree on the adjusted close (re-adjusted history)."""
    both = stored[["date", "adj_close"]].merge(fresh[["date", "adj_close"]], on="date")
    return not np.allclose(both["adj_close_x"], both["adj_close_y"], rtol=REVISION_RTOL, atol=0)


def ingest(
    store: PriceStore,
    tickers: list[str],
    *,
    full: bool = False,
    overlap_days: int = 7,
    batch_size: int = 20,
    end=None,
    timeout: float = 30,
    retry: RetryPolicy = NO_RETRY,
    session=None,
    engine: str = "local",
    max_rate: float | None = None,
) -> IngestReport:
    """Bring the store's bars of `tickers` up to `end` (default today); one outcome per ticker.

    `engine="ray"` downloads each batch's tickers in parallel Ray tasks, all under one rate
    limit of `max_rate` downloads per second (a Ray actor; retries take a slot too); the store
    is read and written here, in this process, as with the local engine.
    """
    stored = set(store.tickers())
    limit = RateLimit(max_rate, engine) if max_rate and engine == "ray" else None
    options = dict(overlap_days=overlap_days, end=end, timeout=timeout, retry=retry, session=session)
    report = IngestReport()
    for i in range(0, len(tickers), batch_size):
        batch = tickers[i : i + batch_size]
        jobs, done = [], {}
        for ticker in batch:
            try:
                jobs.append(
                    (ticker, *_stored_state(store, ticker, full or ticker not in stored, overlap_days))
                )
            except (DataSourceError, DataValidationError) as exc:
                done[ticker] = Download(None, error=str(exc))
        last_days = {ticker: last for ticker, last, _ in jobs}
        shared = options | {"limit": limit}
        done |= dict(zip(last_days, map_tasks(download, jobs, engine, shared=shared), strict=True))
        replace, merge = [], []
        for ticker in batch:
            bars, last = done[ticker].bars, last_days.get(ticker)
            if bars is None:
                report.outcomes.append(TickerOutcome(ticker, False, error=done[ticker].error))
                log.warning("%s", done[ticker].error)
                continue
            (replace if done[ticker].whole else merge).append(bars)
            new = int((bars["date"] > last).sum()) if last is not None else len(bars)
            report.outcomes.append(TickerOutcome(ticker, True, new, bars["date"].max(), done[ticker].whole))
        # Each file is replaced atomically; a crash mid-batch leaves every file whole.
        if replace:
            store.write(pd.concat(replace))
        if merge:
            store.upsert(pd.concat(merge))
        log.info("batch of %d: %s", len(batch), ", ".join(batch))
    return report


def _stored_state(store: PriceStore, ticker: str, fresh: bool, overlap_days: int):
    """(last stored day, stored bars from the overlap on), or (None, None) for a whole download.

    The overlap is all the revision check compares, so a task is sent no more than that.
    """
    last = None if fresh else store.last_date(ticker)
    if last is None:
        return None, None
    bars = store.read(ticker)
    return last, bars[bars["date"] >= download_start(last, overlap_days)]


@dataclass
class Download:
    """What one ticker's download brought: its bars (the whole history when `whole`), or why not."""

    bars: pd.DataFrame | None
    whole: bool = False
    error: str | None = None


def download(
    job: tuple[str, pd.Timestamp | None, pd.DataFrame | None],
    *,
    overlap_days: int,
    end,
    timeout: float,
    retry: RetryPolicy,
    session,
    limit: RateLimit | None = None,
) -> Download:
    """Download one ticker: (ticker, last stored day or None, stored bars from the overlap on).

    The days after the last stored one (and the overlap); everything when new, or when the
    overlap's adjusted closes changed. Touches no store, so it runs here or as a Ray task.
    """
    ticker, last, stored_tail = job
    if limit is not None:  # every attempt takes a slot: the first here, each retry after its backoff
        retry = dataclasses.replace(retry, sleep=functools.partial(_sleep_then_wait, retry.sleep, limit))

    def fetch(start):
        if limit is not None:
            limit.wait()
        return download_ticker(ticker, start, end, timeout=timeout, session=session, retry=retry)

    try:
        bars = fetch(download_start(last, overlap_days))
        if last is not None and history_revised(stored_tail, bars):
            log.info("%s: adjusted history changed; downloading it all again", ticker)
            return Download(fetch(None), whole=True)
    except (DataSourceError, DataValidationError) as exc:
        return Download(None, error=str(exc))
    return Download(bars, whole=last is None)


def _sleep_then_wait(sleep: Callable[[float], None], limit: RateLimit, seconds: float) -> None:
    sleep(seconds)
    limit.wait()


def run(
    settings: Settings,
    *,
    full: bool = False,
    end=None,
    sleep: Callable[[float], None] = time.sleep,
    session=None,
    engine: Engine | None = None,
) -> IngestReport:
    """The job: the universe from Yahoo into the price store, recorded in job_runs."""
    ensure_writable(settings.price_dir)  # before any download: a read-only folder fails now
    use_engine(settings)  # FORECASTER_ENGINE=ray: a cluster that cannot be reached fails now too
    store = PriceStore(settings.price_dir)
    store.remove_orphans()  # temporary files of an earlier ingest killed mid-write
    engine = engine or forecast_store.connect(settings.forecast_store_url)
    retry = RetryPolicy(attempts=settings.ingest_attempts, backoff=settings.ingest_backoff, sleep=sleep)
    with forecast_store.record_run(
        engine, "ingest", heartbeat_s=settings.job_heartbeat_s, stale_after_s=settings.job_stale_after_s
    ) as record:
        report = ingest(
            store,
            universe_tickers(settings),
            full=full,
            overlap_days=settings.ingest_overlap_days,
            batch_size=settings.ingest_batch_size,
            end=end,
            timeout=settings.ingest_timeout,
            retry=retry,
            session=session,
            engine=settings.engine,
            max_rate=settings.ingest_max_rate,
        )
        record.counts = report.counts()
        if report.failed:
            too_many = report.exit_code(settings.ingest_max_failure_share)
            record.status = "failed" if too_many else "partial"
            record.error = "; ".join(o.error or o.ticker for o in report.failed)
    log.info(
        "ingested %d tickers: %d new bars, %d failed (%.0f%%, limit %.0f%%)",
        len(report.outcomes),
        report.counts()["new_rows"],
        len(report.failed),
        100 * report.failure_share,
        100 * settings.ingest_max_failure_share,
    )
    return report


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--full", action="store_true", help="re-download every ticker's whole history")
    parser.add_argument(
        "--engine", choices=ENGINES, help="local or ray (default FORECASTER_ENGINE, else local)"
    )
    args = parser.parse_args(argv)
    exit_on_placeholders()  # a .env copied unchanged from .env.example
    setup_logging()  # forecaster.runtime.logs: plain lines, or JSON with FORECASTER_LOG_FORMAT=json
    try:
        settings = Settings(**({"engine": args.engine} if args.engine else {}))
        sys.exit(run(settings, full=args.full).exit_code(settings.ingest_max_failure_share))
    # Expected failures: one line, no traceback.
    except (ValueError, DataSourceError, NotWritableError, forecast_store.SchemaVersionError) as exc:
        sys.exit(f"error: {exc}")


if __name__ == "__main__":
    main()
