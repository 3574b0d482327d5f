"""Scheduler: ingest + batch forecast after the US close on trading days, retrain weekly.

Usage:
    python -m pipelines.scheduler          # or: forecaster schedule
    FORECASTER_SCHEDULE_DAILY="0 19 * * mon-fri" FORECASTER_SCHEDULE_RETRAIN="0 3 * * sun" forecaster schedule

A long-running process (APScheduler 3). Cron lines are read in `schedule_timezone`
(America/New_York by default, so 18:30 stays 18:30 across daylight-saving changes); the daily
job fires only on sessions of `schedule_calendar` (XNYS), so exchange holidays are skipped.
At most one instance of each job runs at a time, also across scheduler processes sharing the
forecast store: a job first takes its row in `job_locks` (renewed while it runs, free again
`job_lock_ttl_s` after a crash), and the batch forecast commits only while that lock is held.

The jobs' next run times live in the forecast store (table `scheduler_jobs`), so a run missed
while the scheduler was down (a deploy, a crash, a suspended machine) fires once at start when
it is less than `schedule_misfire_grace_s` late; later ones are skipped and logged, and
several missed runs are coalesced into one. SIGTERM or SIGINT lets the running step finish,
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
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from sqlalchemy.engine import Engine

from forecaster import forecast_store
from forecaster.config import Settings
from forecaster.runtime.logs import setup_logging
from forecaster.runtime.placeholders import exit_on_placeholders

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


def daily_steps(settings: Settings, lease: forecast_store.Lease | None = None) -> list[Step]:
    from pipelines import batch_forecast, ingest

    steps: list[Step] = []
    if ingest.feeds_price_store(settings):
        steps.append(("ingest", lambda: ingest.run(settings)))
    steps.append(("batch_forecast", lambda: batch_forecast.run(settings, fence=lease)))
    return steps


def retrain_steps(settings: Settings, lease: forecast_store.Lease | None = None) -> list[Step]:
    from forecaster.config import ForecasterConfig
    from pipelines import train

    return [("retrain", lambda: train.run(settings, ForecasterConfig()))]


def run_locked(
    engine,
    job: str,
    steps: Sequence[Step] | Callable[[forecast_store.Lease], Sequence[Step]],
    stop: threading.Event,
    holder: str,
    ttl: timedelta,
) -> list[str] | None:
    """Run a job's steps under its database lock; None when another process holds it.

    `steps` may be a function of the lease, for steps that fence their writes with it.
    """
    with forecast_store.job_lock(engine, job, holder, ttl) as lease:
        if lease is None:
            log.info("%s: already running elsewhere; skipping this run", job)
            return None
        try:
            return run_steps(steps(lease) if callable(steps) else steps, stop)
        except Exception:  # the step recorded its failure in job_runs; keep the scheduler alive
            log.exception("%s: failed", job)
            return []


@dataclass
class _Runtime:
    """What the scheduled jobs need in this process: nothing of it is stored in the job store."""

    settings: Settings
    engine: Engine
    stop: threading.Event
    holder: str
    ttl: timedelta


# Set by build_scheduler. APScheduler pickles each job into the forecast store, so a job is
# a textual reference to a module-level function (JOBS), and the engine, stop event and lock
# holder it needs stay here, in the process.
_runtime: _Runtime | None = None


def daily_job() -> list[str] | None:
    """The scheduled daily job: ingest (for Yahoo sources) and the batch forecast."""
    return _run_job("daily", daily_steps)


def retrain_job() -> list[str] | None:
    """The scheduled weekly job: retrain and register a challenger."""
    return _run_job("retrain", retrain_steps)


def _run_job(job: str, make_steps: Callable) -> list[str] | None:
    if _runtime is None:
        raise RuntimeError(f"{job}: scheduled jobs run in a scheduler made by build_scheduler")
    rt = _runtime
    return run_locked(
        rt.engine, job, lambda lease: make_steps(rt.settings, lease), rt.stop, rt.holder, rt.ttl
    )


# job id -> (textual reference of its function, its trigger from the settings)
JOBS: dict[str, tuple[str, Callable[[Settings], BaseTrigger]]] = {
    "daily": ("pipelines.scheduler:daily_job", daily_trigger),
    "retrain": ("pipelines.scheduler:retrain_job", retrain_trigger),
}


def build_scheduler(
    settings: Settings, stop: threading.Event, holder: str | None = None
) -> BackgroundScheduler:
    """A scheduler whose job store is the forecast store (not started: see `start`)."""
    global _runtime
    holder = holder or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
    engine = forecast_store.connect(settings.forecast_store_url)  # its schema has `scheduler_jobs`
    _runtime = _Runtime(settings, engine, stop, holder, timedelta(seconds=settings.job_lock_ttl_s))
    return BackgroundScheduler(
        jobstores={"default": SQLAlchemyJobStore(engine=engine, tablename="scheduler_jobs")},
        timezone=ZoneInfo(settings.schedule_timezone),
        job_defaults={
            "coalesce": True,  # several missed runs become one
            "max_instances": 1,  # in this process; the lock covers other processes
            "misfire_grace_time": settings.schedule_misfire_grace_s,
        },
    )


def start(scheduler: BackgroundScheduler, settings: Settings) -> None:
    """Start `scheduler` with the daily and retrain jobs, keeping a stored run that is due.

    A stored job whose next run time has passed was missed while no scheduler ran: it keeps
    that time, so it fires now if within `schedule_misfire_grace_s` (else it is skipped and
    logged). Otherwise its next run is recomputed from the current settings, so a changed
    crontab takes effect.
    """
    scheduler.start(paused=True)  # jobs are loaded, none runs until resume()
    now = datetime.now(ZoneInfo(settings.schedule_timezone))
    options = {"coalesce": True, "max_instances": 1, "misfire_grace_time": settings.schedule_misfire_grace_s}
    for job_id, (func, make_trigger) in JOBS.items():
        trigger, stored = make_trigger(settings), scheduler.get_job(job_id)
        if stored is None:
            scheduler.add_job(func, trigger=trigger, id=job_id, name=job_id, **options)
            continue
        missed = stored.next_run_time is not None and stored.next_run_time <= now
        next_run = stored.next_run_time if missed else trigger.get_next_fire_time(None, now)
        if missed:
            log.info("job %s: missed its run at %s while the scheduler was down", job_id, next_run)
        scheduler.modify_job(
            job_id, func=func, trigger=trigger, name=job_id, next_run_time=next_run, **options
        )
    scheduler.resume()


def shutdown(scheduler: BackgroundScheduler) -> None:
    """Stop `scheduler` after its running job; the stored jobs stay as they are for the next start.

    APScheduler 3's loop makes one more pass after `shutdown`, which would take a due run,
    fail to submit it to the stopped executor and move the stored next run time past it: that
    run would be lost. Detaching the job store first leaves that pass nothing to take.
    """
    scheduler.remove_jobstore("default", shutdown=False)
    scheduler.shutdown(wait=True)


def serve(settings: Settings, stop: threading.Event | None = None) -> None:
    """Run the scheduler until SIGTERM / SIGINT (or `stop`), then finish the running step and return."""
    stop = stop or threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda signum, frame: stop.set())
    scheduler = build_scheduler(settings, stop)
    start(scheduler, settings)
    for job in scheduler.get_jobs():
        log.info("job %s: %s; next run %s", job.id, job.trigger, job.next_run_time)
    log.info("scheduler started (forecast store %s)", _safe_url(settings.forecast_store_url))
    while not stop.wait(1):
        pass
    log.info("stopping: waiting for the running step to finish")
    shutdown(scheduler)
    log.info("scheduler stopped")


def _safe_url(url: str) -> str:
    from sqlalchemy import make_url

    return make_url(url).render_as_string(hide_password=True)


def main(argv: list[str] | None = None) -> None:
    argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    ).parse_args(argv)
    exit_on_placeholders()  # a .env copied unchanged from .env.example
    setup_logging()  # forecaster.runtime.logs: plain lines, or JSON with FORECASTER_LOG_FORMAT=json
    serve(Settings())


if __name__ == "__main__":
    main()
