"""Exchange trading sessions: the dates forecasts are for, and how fresh stored bars should be.

One place computes target dates, so the model's frames, the API and the batch job agree.

The calendar of each exchange is built once and grown on demand: it starts covering
1990-01-01 .. a year from now, and is rebuilt wider (whole years) when an origin falls before
its start or its horizon runs past its end. So a server running for years, or bars from 1985,
get real sessions, never a clamped or missing date. Outside `EARLIEST`..`LATEST` (or the
calendar's own bounds) there are no sessions, and a ValueError names the date.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache

import numpy as np

# Older bars are not daily market data any source we read has; building from here costs ~0.4 s.
EARLIEST = np.datetime64("1900-01-01", "D")
# exchange_calendars builds on pandas' nanosecond timestamps, which end in April 2262.
LATEST = np.datetime64("2261-12-31", "D")
_FIRST_BUILD = np.datetime64("1990-01-01", "D")
_DAY = np.timedelta64(1, "D")


@dataclass(frozen=True)
class _Calendar:
    exchange: object  # exchange_calendars.ExchangeCalendar
    start: np.datetime64  # the span it was built for (the first session may be later)
    end: np.datetime64
    sessions: np.ndarray  # [S] datetime64[D], increasing


_calendars: dict[str, _Calendar] = {}
_lock = threading.Lock()  # one rebuild at a time; readers take the current object without it


def _year_start(day: np.datetime64) -> np.datetime64:
    return day.astype("datetime64[Y]").astype("datetime64[D]")


def _year_end(day: np.datetime64) -> np.datetime64:
    return (day.astype("datetime64[Y]") + 1).astype("datetime64[D]") - _DAY


@lru_cache(maxsize=16)
def _bounds(name: str) -> tuple[np.datetime64, np.datetime64]:
    """The widest span we build `name` for: EARLIEST..LATEST, narrowed by the calendar's own bounds."""
    import exchange_calendars

    kind = type(exchange_calendars.get_calendar(name))  # raises for an unknown exchange
    lo, hi = EARLIEST, LATEST
    if kind.bound_min() is not None:
        lo = max(lo, np.datetime64(kind.bound_min().date(), "D"))
    if kind.bound_max() is not None:
        hi = min(hi, np.datetime64(kind.bound_max().date(), "D"))
    return lo, hi


def _calendar(name: str, start: np.datetime64 | None = None, end: np.datetime64 | None = None) -> _Calendar:
    """The cached calendar of exchange `name`, rebuilt wider when it does not cover [start, end].

    The span is clamped to `_bounds(name)`: callers check the result covers what they need.
    """
    lo_bound, hi_bound = _bounds(name)
    start = None if start is None else min(max(start, lo_bound), hi_bound)
    end = None if end is None else max(min(end, hi_bound), lo_bound)
    cached = _calendars.get(name)
    if cached and (start is None or start >= cached.start) and (end is None or end <= cached.end):
        return cached
    import exchange_calendars  # building a calendar takes 0.1-0.4 s, hence the cache

    with _lock:
        cached = _calendars.get(name)
        today = np.datetime64(datetime.now(UTC).date(), "D")
        lo = min(x for x in (start, cached and cached.start, _FIRST_BUILD) if x is not None)
        hi = max(x for x in (end, cached and cached.end, today + 366 * _DAY) if x is not None)
        # Whole years, so that a series of requests a few days further out does not rebuild each time.
        lo, hi = max(_year_start(lo), lo_bound), min(_year_end(hi), hi_bound)
        exchange = exchange_calendars.get_calendar(name, start=str(lo), end=str(hi))
        built = _Calendar(exchange, lo, hi, exchange.sessions.to_numpy("datetime64[D]"))
        _calendars[name] = built
        return built


def _check_span(name: str, first: np.datetime64, last: np.datetime64) -> None:
    """Dates the calendar can never reach get a ValueError naming them (before anything is built)."""
    lo, hi = _bounds(name)
    if first < lo:
        raise ValueError(
            f"{first}: before the {name} calendar's first day ({lo}); no trading sessions to date it"
        )
    if last > hi:
        raise ValueError(
            f"{last}: past the {name} calendar's last day ({hi}); no trading sessions to forecast"
        )


def future_sessions(origins: np.ndarray, horizon: int, calendar: str) -> np.ndarray:
    """The next `horizon` trading sessions after each origin on an exchange calendar: [N] -> [N, H].

    Raises ValueError naming the origin when the calendar cannot reach it (see the module docstring).
    """
    origins = np.asarray(origins, dtype="datetime64[D]")
    if not origins.size:
        return np.empty((0, horizon), dtype="datetime64[D]")
    first, last = origins.min(), origins.max()
    # Two calendar days per session and two weeks of slack cover every closure but the longest
    # (NYSE shut for four months in 1914): those rebuild once more below.
    _check_span(calendar, first, last)
    reach = last + (2 * horizon + 14) * _DAY
    while True:
        cal = _calendar(calendar, first, reach)
        index = np.searchsorted(cal.sessions, origins, side="right")[:, None] + np.arange(horizon)[None, :]
        if index.max() < len(cal.sessions):
            return cal.sessions[index]
        if reach > cal.end:  # it was clamped to its bounds: it cannot grow any further
            raise ValueError(
                f"{last}: the {calendar} calendar has no {horizon} sessions after it (it ends {cal.end})"
            )
        reach = cal.end + 366 * _DAY


def target_dates(origins: np.ndarray, horizon: int, calendar: str) -> np.ndarray:
    """Target dates of forecasts made at `origins`: [N] -> [N, H]; NaT rows where the origin is NaT.

    The one function the model, the API and the batch job use for "which days is this forecast for".
    """
    origins = np.asarray(origins, dtype="datetime64[D]")
    out = np.full((len(origins), horizon), np.datetime64("NaT"), dtype="datetime64[D]")
    known = ~np.isnat(origins)
    if known.any():
        out[known] = future_sessions(origins[known], horizon, calendar)
    return out


def last_closed_session(calendar: str, today: np.datetime64) -> np.datetime64:
    """The latest session strictly before `today`: the newest bar fresh data should have."""
    today = np.datetime64(today, "D")
    cal = _calendar(calendar, today - 30 * _DAY, today)
    return cal.sessions[np.searchsorted(cal.sessions, today) - 1]


def last_session_closed_by(calendar: str, now: datetime) -> np.datetime64:
    """The latest session whose close (early closes included) is at or before `now` (tz-aware).

    A bar dated after it is intraday: its "close" is only the latest price.
    """
    today = np.datetime64(now.astimezone(UTC).date(), "D")
    cal = _calendar(calendar, today - 30 * _DAY, today + _DAY)
    # Sessions are exchange-local dates; one dated today (UTC) or tomorrow may be open or still ahead.
    i = np.searchsorted(cal.sessions, today + _DAY, side="right") - 1
    import pandas as pd

    while cal.exchange.session_close(pd.Timestamp(cal.sessions[i])) > now:
        i -= 1
    return cal.sessions[i]
