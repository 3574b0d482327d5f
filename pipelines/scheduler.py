"""Scheduler: ingest + batch forecast after the US close on trading days, retrain weekly.

Usage:
    python -m pipelines.scheduler          # or: forecaster schedule
    FORECASTER_SCHEDULE_DAILY="0 19 * * mon-fri" FORECASTER_SCHEDULE_RETRAIN="0 3 * * sun" forecaster schedule

A long-running process (APScheduler 3). Cron lines are read in `schedule_timezone`
(America/New_York by default, so 18:30 stays 18:30 across daylight-saving changes); the daily
job fires only on sessions of `schedule_calendar` (XNYS), so exchange holidays are skipped.
At most one instance of each job runs at a time, also across scheduler processes sharing the
forecast store: a job first takes its row in `job_locks` (renewed while it runs, free again
`job_lock_ttl_s` after a crash). Runs missed by less than `schedule_misfire_grace_s` (a busy
or suspended machine) are coalesced into one. SIGTERM or SIGINT lets the running step finish,
starts no further step, and exits 0.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import socket
import threading
import uuid
from collections.abc import Callable, Sequence
from datetime import date, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger

from forecaster import forecast_store
from forecaster.config import Settings
from forecaster.logs import setup_logging

log = logging.getLogger("pipelines.scheduler")

Step = tuple[str, Callable[[], object]]


@lru_cache
def _calendar(name: str):
    import exchange_calendars as xcals

    return xcals.get_calendar(name)


def is_session(day: date, calendar: str = "XNYS") -> bool:
    """Whether the exchange trades on `day`; beyond its published calendar, weekdays count."""
    cal = _calendar(calendar)
    if day > cal.last_session.date() or day < cal.first_session.date():
        return day.weekday() < 5
    return cal.is_session(day)


class SessionTrigger(BaseTrigger):
    """A cron trigger that fires only on trading sessions of an exchange calendar."""

    def __init__(self, cron: CronTrigger, calendar: str = "XNYS"):
        self.cron, self.calendar = cron, calendar

    def get_next_fire_time(self, previous_fire_time: datetime | None, now: datetime) -> datetime | None:
        fire = self.cron.get_next_fire_time(previous_fire_time, now)
        # The fire time is in the cron's zone (exchange-local), so its date is the session's.
        while fire is not None and not is_session(fire.date(), self.calendar):
            fire = self.cron.get_next_fire_time(fire, fire)
        return fire

    def __str__(self) -> str:
        return f"{self.cron} on {self.calendar} sessions"


def daily_trigger(settings: Settings) -> SessionTrigger:
    cron = CronTrigger.from_crontab(settings.schedule_daily, timezone=ZoneInfo(settings.schedule_timezone))
    return SessionTrigger(cron, settings.schedule_calendar)


def retrain_trigger(settings: Settings) -> CronTrigger:
    return CronTrigger.from_crontab(settings.schedule_retrain, timezone=ZoneInfo(settings.schedule_timezone))


def run_steps(steps: Sequence[Step], stop: threading.Event) -> list[str]:
    """Run `steps` in order until one fails or `stop` is set; return the names of those run.

    A stop request never interrupts a step: it only keeps the next one from starting.
    """
    done = []
    for name, step in steps:
        if stop.is_set():
            log.info("stop requested: not starting %s", name)
            break
        log.info("step %s: starting", name)
        step()
        done.append(name)
    return done


def daily_steps(settings: Settings) -> list[Step]:
    from pipelines import batch_forecast, ingest

    steps: list[Step] = []
    if ingest.feeds_price_store(settings):
        steps.append(("ingest", lambda: ingest.run(settings)))
    steps.append(("batch_forecast", lambda: batch_forecast.run(settings)))
    return steps


def retrain_steps(settings: Settings) -> list[Step]:
    from forecaster.config import ForecasterConfig
    from pipelines import train

    return [("retrain", lambda: train.run(settings, ForecasterConfig()))]


def run_locked(
    engine, job: str, steps: Sequence[Step], stop: threading.Event, holder: str, ttl: timedelta
) -> list[str] | None:
    """Run a job's steps under its database lock; None when another process holds it."""
    with forecast_store.job_lock(engine, job, holder, ttl) as held:
        if not held:
            log.info("%s: already running elsewhere; skipping this run", job)
            return None
        try:
            return run_steps(steps, stop)
        except Exception:  # the step recorded its failure in job_runs; keep the scheduler alive
            log.exception("%s: failed", job)
            return []


def build_scheduler(
    settings: Settings, stop: threading.Event, holder: str | None = None
) -> BackgroundScheduler:
    """A scheduler with the daily and the retrain job (not started)."""
    holder = holder or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
    engine = forecast_store.connect(settings.forecast_store_url)
    ttl = timedelta(seconds=settings.job_lock_ttl_s)
    scheduler = BackgroundScheduler(
        timezone=ZoneInfo(settings.schedule_timezone),
        job_defaults={
            "coalesce": True,  # several missed runs become one
            "max_instances": 1,  # in this process; the lock covers other processes
            "misfire_grace_time": settings.schedule_misfire_grace_s,
        },
    )
    jobs = {
        "daily": (daily_trigger(settings), daily_steps),
        "retrain": (retrain_trigger(settings), retrain_steps),
    }
    for job, (trigger, steps) in jobs.items():
        scheduler.add_job(
            lambda job=job, steps=steps: run_locked(engine, job, steps(settings), stop, holder, ttl),
            trigger=trigger,
            id=job,
            name=job,
        )
    return scheduler


def serve(settings: Settings, stop: threading.Event | None = None) -> None:
    """Run the scheduler until SIGTERM / SIGINT (or `stop`), then finish the running step and return."""
    stop = stop or threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda signum, frame: stop.set())
    scheduler = build_scheduler(settings, stop)
    scheduler.start()
    for job in scheduler.get_jobs():
        log.info("job %s: %s; next run %s", job.id, job.trigger, job.next_run_time)
    log.info("scheduler started (forecast store %s)", _safe_url(settings.forecast_store_url))
    while not stop.wait(1):
        pass
    log.info("stopping: waiting for the running step to finish")
    scheduler.shutdown(wait=True)
    log.info("scheduler stopped")


def _safe_url(url: str) -> str:
    from sqlalchemy import make_url

    return make_url(url).render_as_string(hide_password=True)


def main(argv: list[str] | None = None) -> None:
    argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    ).parse_args(argv)
    setup_logging()  # forecaster.logs: plain lines, or JSON with FORECASTER_LOG_FORMAT=json
    serve(Settings())


if __name__ == "__main__":
    main()
