"""Trading sessions: target dates anywhere the exchange calendar reaches, clear errors past it."""

from datetime import UTC, datetime

import numpy as np
import pytest

from forecaster.data import sessions
from forecaster.data.sessions import target_dates


def days(*values):
    return np.array(values, dtype="datetime64[D]")


def test_origins_before_1990_get_their_own_sessions_not_1990s():
    # Friday 1985-02-08 -> Mon 11, Tue 12, Wed 13 February 1985 (was: 1990-01-02, ...).
    got = target_dates(days("1985-02-08"), 3, "XNYS")
    assert got.tolist() == days("1985-02-11", "1985-02-12", "1985-02-13")[None, :].tolist()


def test_the_calendar_grows_for_far_future_origins_instead_of_failing():
    got = target_dates(days("2100-12-30", "2020-01-02"), 2, "XNYS")
    assert (
        got[0, 0] > np.datetime64("2100-12-30")
        and got[1].tolist() == days("2020-01-03", "2020-01-06").tolist()
    )
    # 5,000 business days from 2020 (one request's worth of bars) ends around 2039.
    assert target_dates(days("2039-02-28"), 5, "XNYS")[0, 0] == np.datetime64("2039-03-01")


def test_a_server_running_past_its_first_year_still_has_sessions(monkeypatch):
    # The first build covers about a year ahead; a later date rebuilds wider instead of raising.
    monkeypatch.setattr(sessions, "_calendars", {})
    first_end = sessions._calendar("XNYS").end
    later = first_end + np.timedelta64(400, "D")
    assert target_dates(np.array([later]), 5, "XNYS")[0, 0] > later
    assert sessions._calendar("XNYS").end > first_end


@pytest.mark.parametrize(
    "origin, message",
    [
        ("1850-03-01", "1850-03-01: before the XNYS calendar's first day (1900-01-01)"),
        ("2300-01-01", "2300-01-01: past the XNYS calendar's last day (2261-12-31)"),
        ("2261-12-30", "2261-12-30: the XNYS calendar has no 5 sessions after it"),
    ],
)
def test_dates_out_of_the_calendars_reach_raise_naming_the_date(origin, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        target_dates(days(origin), 5, "XNYS")


def test_todays_session_counts_as_closed_only_after_the_close():
    # NYSE closes at 16:00 New York time, 20:00 UTC in October.
    assert sessions.last_session_closed_by(
        "XNYS", datetime(2023, 10, 9, 19, 59, tzinfo=UTC)
    ) == np.datetime64("2023-10-06")
    assert sessions.last_session_closed_by("XNYS", datetime(2023, 10, 9, 20, 0, tzinfo=UTC)) == np.datetime64(
        "2023-10-09"
    )
    # Early close (13:00 New York) on the day after Thanksgiving 2023.
    assert sessions.last_session_closed_by(
        "XNYS", datetime(2023, 11, 24, 18, 30, tzinfo=UTC)
    ) == np.datetime64("2023-11-24")
    # A Sunday: Friday is the latest closed session.
    assert sessions.last_session_closed_by("XNYS", datetime(2023, 10, 8, 3, 0, tzinfo=UTC)) == np.datetime64(
        "2023-10-06"
    )
