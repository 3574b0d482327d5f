"""Scheduler: exchange-aware cron triggers, the job lock on SQLite and PostgreSQL, clean shutdown."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from forecaster import forecast_store
from forecaster.config import Settings
from pipelines import scheduler

NEW_YORK, UTC = ZoneInfo("America/New_York"), ZoneInfo("UTC")


def fire_times(trigger, after: datetime, n: int) -> list[datetime]:
    """The next `n` fire times of `trigger` after `after`, as APScheduler asks for them."""
    times, previous = [], None
    for _ in range(n):
        previous = trigger.get_next_fire_time(previous, after if previous is None else previous)
        times.append(previous)
    return times


@pytest.fixture
def settings(tmp_path) -> Settings:
    return Settings(home=tmp_path / "home")


def test_daily_trigger_skips_exchange_holidays_and_weekends(settings):
    trigger = scheduler.daily_trigger(settings)
    around_christmas = fire_times(trigger, datetime(2024, 12, 20, 19, 0, tzinfo=NEW_YORK), 5)
    assert [t.strftime("%a %m-%d %H:%M") for t in around_christmas] == [
        "Mon 12-23 18:30",
        "Tue 12-24 18:30",
        "Thu 12-26 18:30",  # Christmas Day is a holiday
        "Fri 12-27 18:30",
        "Mon 12-30 18:30",
    ]
    # Independence Day (Thursday) and Good Friday, a holiday on a weekday that is no federal one.
    assert trigger.get_next_fire_time(None, datetime(2024, 7, 3, 19, tzinfo=NEW_YORK)).day == 5
    good_friday = trigger.get_next_fire_time(None, datetime(2024, 3, 28, 19, tzinfo=NEW_YORK))
    assert good_friday.strftime("%a %m-%d") == "Mon 04-01"


def test_triggers_keep_new_york_time_across_daylight_saving_changes(settings):
    daily = fire_times(scheduler.daily_trigger(settings), datetime(2024, 3, 8, 12, tzinfo=NEW_YORK), 2)
    # Friday 18:30 EST, then Monday 18:30 EDT: one hour earlier in UTC.
    assert [t.astimezone(UTC).strftime("%m-%d %H:%M") for t in daily] == ["03-08 23:30", "03-11 22:30"]

    weekly = fire_times(scheduler.retrain_trigger(settings), datetime(2024, 10, 28, tzinfo=NEW_YORK), 2)
    assert [t.strftime("%a %m-%d %H:%M") for t in weekly] == ["Sat 11-02 06:00", "Sat 11-09 06:00"]
    assert [t.astimezone(UTC).hour for t in weekly] == [10, 11]  # EDT, then EST


def test_a_stop_request_lets_the_running_step_finish_and_starts_no_other():
    stop, ran = threading.Event(), []

    def ingest():
        stop.set()  # SIGTERM arrives while ingest runs
        time.sleep(0.05)
        ran.append("ingest finished")

    done = scheduler.run_steps([("ingest", ingest), ("batch_forecast", lambda: ran.append("forecast"))], stop)
    assert done == ["ingest"] and ran == ["ingest finished"]


def test_a_held_lock_is_refused_to_others_renewed_while_held_and_taken_over_when_expired(store_url):
    ttl = timedelta(seconds=0.6)
    one, other = forecast_store.connect(store_url), forecast_store.connect(store_url)
    with forecast_store.job_lock(one, "daily", "one", ttl) as held:
        assert held
        time.sleep(1.2)  # twice the ttl: the heartbeat keeps the lock
        assert not forecast_store.acquire_lock(other, "daily", "other", ttl)
        assert forecast_store.acquire_lock(other, "retrain", "other", ttl)  # locks are per job
    assert forecast_store.acquire_lock(other, "daily", "other", ttl)  # released on exit

    # A holder that died without releasing: its lock is free once expired.
    assert not forecast_store.acquire_lock(one, "daily", "one", ttl)
    time.sleep(0.7)
    assert forecast_store.acquire_lock(one, "daily", "one", ttl)
    assert not forecast_store.renew_lock(other, "daily", "other", ttl)  # it lost the lock


def test_two_schedulers_on_one_database_never_run_a_job_at_the_same_time(store_url):
    forecast_store.connect(store_url).dispose()  # tables exist before the race
    running, intervals, skipped = [], [], []
    lock = threading.Lock()

    def work(holder: str) -> None:
        with lock:
            running.append(holder)
            overlap = len(running) > 1
        start = time.monotonic()
        time.sleep(0.03)
        with lock:
            running.remove(holder)
            intervals.append((start, time.monotonic(), holder, overlap))

    def scheduler_process(holder: str) -> None:
        engine = forecast_store.connect(store_url)  # its own connections, as another process
        stop = threading.Event()
        for _ in range(25):
            result = scheduler.run_locked(
                engine, "daily", [("work", lambda: work(holder))], stop, holder, timedelta(seconds=30)
            )
            if result is None:
                skipped.append(holder)
        engine.dispose()

    threads = [threading.Thread(target=scheduler_process, args=(h,)) for h in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)

    assert not any(overlap for *_, overlap in intervals)
    ordered = sorted(intervals)
    assert all(prev[1] <= nxt[0] for prev, nxt in zip(ordered, ordered[1:], strict=False))
    assert len(intervals) + len(skipped) == 50
    assert skipped and len(intervals) >= 2  # they did contend, and the lock was passed on


def test_sigterm_stops_the_scheduler_process_cleanly(tmp_path):
    env = os.environ | {"FORECASTER_HOME": str(tmp_path / "home")}
    env.pop("MLFLOW_TRACKING_URI", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "pipelines.scheduler"],
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        lines = []
        for line in process.stderr:
            lines.append(line)
            if "scheduler started" in line:
                break
        assert any("job daily: cron[" in line and "on XNYS sessions" in line for line in lines), lines
        process.send_signal(signal.SIGTERM)
        rest = process.communicate(timeout=30)[1]
    finally:
        process.kill()
    assert process.returncode == 0, rest
    assert "scheduler stopped" in rest


def stored_daily_run(settings: Settings, next_run_time: datetime) -> None:
    """What a scheduler stopped earlier left in the forecast store: the daily job, due then."""
    earlier = scheduler.build_scheduler(settings, threading.Event())
    earlier.start(paused=True)
    func, make_trigger = scheduler.JOBS["daily"]
    earlier.add_job(func, trigger=make_trigger(settings), id="daily", next_run_time=next_run_time)
    scheduler.shutdown(earlier)


@pytest.mark.parametrize(("late_min", "grace_min", "fires"), [(10, 60, True), (90, 60, False)])
def test_a_run_missed_while_the_scheduler_was_down_fires_at_start_only_within_grace(
    tmp_path, store_url, late_min, grace_min, fires
):
    from apscheduler.events import EVENT_JOB_EXECUTED, EVENT_JOB_MISSED

    settings = Settings(
        home=tmp_path / "home",
        forecast_store_url=store_url,
        schedule_misfire_grace_s=grace_min * 60,
        schedule_daily="0 0 29 2 *",  # no cron fire of its own lands in the last minutes
    )
    engine = forecast_store.connect(store_url)
    # Another scheduler holds the daily lock, so the run stops there: no ingest, no model needed.
    assert forecast_store.acquire_lock(engine, "daily", "elsewhere", timedelta(hours=1))
    missed_at = datetime.now(UTC) - timedelta(minutes=late_min)
    stored_daily_run(settings, missed_at)

    events, seen = [], threading.Event()
    restarted = scheduler.build_scheduler(settings, threading.Event())
    restarted.add_listener(lambda e: (events.append(e), seen.set()), EVENT_JOB_EXECUTED | EVENT_JOB_MISSED)
    scheduler.start(restarted, settings)
    try:
        assert seen.wait(10), "the stored daily run was neither run nor reported missed"
        time.sleep(0.3)  # a second (uncoalesced) run would show up here
        job = restarted.get_job("daily")
    finally:
        scheduler.shutdown(restarted)
    engine.dispose()

    assert [(e.job_id, e.code) for e in events] == [
        ("daily", EVENT_JOB_EXECUTED if fires else EVENT_JOB_MISSED)
    ]
    assert events[0].scheduled_run_time == missed_at
    assert job.next_run_time > datetime.now(UTC)  # rescheduled by its trigger
    assert job.func_ref == "pipelines.scheduler:daily_job"  # stored by name: nothing unpicklable


def test_a_restart_keeps_the_jobs_and_applies_a_changed_crontab(tmp_path, store_url):
    settings = Settings(home=tmp_path / "home", forecast_store_url=store_url)
    first = scheduler.build_scheduler(settings, threading.Event())
    scheduler.start(first, settings)
    scheduler.shutdown(first)

    changed = settings.model_copy(update={"schedule_daily": "0 19 * * mon-fri"})
    second = scheduler.build_scheduler(changed, threading.Event())
    scheduler.start(second, changed)
    try:
        jobs = {job.id: job for job in second.get_jobs()}
    finally:
        scheduler.shutdown(second)
    assert sorted(jobs) == ["daily", "retrain"]
    assert jobs["daily"].next_run_time.astimezone(NEW_YORK).strftime("%H:%M") == "19:00"
