"""Exchange trading sessions: the dates forecasts are for, and how fresh stored bars should be.

One place computes target dates, so the model's frames, the API and the batch job agree.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np


@lru_cache(maxsize=8)
def _sessions(calendar: str) -> np.ndarray:
    import exchange_calendars  # building a calendar takes ~1 s, hence the cache

    return exchange_calendars.get_calendar(calendar, start="1990-01-01").sessions.to_numpy("datetime64[D]")


def future_sessions(origins: np.ndarray, horizon: int, calendar: str) -> np.ndarray:
    """The next `horizon` trading sessions after each origin on an exchange calendar: [N] -> [N, H]."""
    sessions = _sessions(calendar)
    first = np.searchsorted(sessions, origins.astype("datetime64[D]"), side="right")
    index = first[:, None] + np.arange(horizon)[None, :]
    if index.size and index.max() >= len(sessions):
        raise ValueError(f"the {calendar} calendar has no sessions that far ahead (after {sessions[-1]})")
    return sessions[index]


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
    sessions = _sessions(calendar)
    return sessions[np.searchsorted(sessions, np.datetime64(today, "D")) - 1]
