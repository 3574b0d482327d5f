"""download_bars against recorded Yahoo answers, through the real yfinance (see conftest)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import requests

from forecaster.data import DataSourceError, DataValidationError, download_bars

FIXTURES = Path(__file__).parent / "fixtures" / "yahoo"

# yfinance itself still uses pandas APIs that pandas 3 deprecates.
pytestmark = pytest.mark.filterwarnings("ignore:.*inplace.*:DeprecationWarning:yfinance")

GS_CHART = "chart-GS-1d-2023-10-02_2023-10-09"


def yahoo_fixture(name: str) -> bytes:
    return (FIXTURES / f"{name}.json").read_bytes()


def gs_chart() -> dict:
    return json.loads(yahoo_fixture(GS_CHART))


def test_download_gives_the_recorded_bars_with_adj_close(yahoo):
    yahoo.charts["GS"] = (200, yahoo_fixture(GS_CHART))
    bars = download_bars("GS", start="2023-10-02", end="2023-10-09")

    result = gs_chart()["chart"]["result"][0]
    quote = result["indicators"]["quote"][0]
    # Session opens (09:30 New York) -> the exchange's calendar days.
    days = pd.to_datetime(result["timestamp"], unit="s", utc=True).tz_convert("America/New_York")
    assert bars["ticker"].tolist() == ["GS"] * 6
    assert bars["date"].tolist() == list(days.normalize().tz_localize(None))
    assert bars["date"].iloc[-1] == pd.Timestamp("2023-10-09")
    for column in ("open", "high", "low", "close", "volume"):
        np.testing.assert_allclose(bars[column], quote[column], rtol=1e-12)
    np.testing.assert_allclose(bars["adj_close"], result["indicators"]["adjclose"][0]["adjclose"])
    assert bars.dtypes.to_dict() == {
        "ticker": "str",
        "date": "datetime64[us]",
        "open": "float64",
        "high": "float64",
        "low": "float64",
        "close": "float64",
        "adj_close": "float64",
        "volume": "float64",
    }


def test_download_end_is_inclusive_and_timeout_reaches_the_request(yahoo):
    yahoo.charts["GS"] = (200, yahoo_fixture(GS_CHART))
    download_bars(["gs"], start="2023-10-02", end="2023-10-09", timeout=7, session=yahoo.session)

    ((url, timeout),) = [r for r in yahoo.chart_requests("GS") if "period1=" in r[0]]
    new_york = "America/New_York"
    assert f"period1={int(pd.Timestamp('2023-10-02', tz=new_york).timestamp())}" in url
    # end 2023-10-09 inclusive -> Yahoo's exclusive period2 at the next midnight
    assert f"period2={int(pd.Timestamp('2023-10-10', tz=new_york).timestamp())}" in url
    assert "interval=1d" in url and "crumb=fake-crumb" in url
    assert timeout == 7


def test_download_of_unknown_ticker_raises_data_source_error_naming_it(yahoo):
    with pytest.raises(DataSourceError, match=r"^NOSUCH1: .*(404|delisted)"):
        download_bars("NOSUCH1", start="2023-10-02", end="2023-10-09")


def test_download_with_no_bars_in_range_raises_data_source_error(yahoo):
    yahoo.charts["GS"] = (200, yahoo_fixture("chart-GS-1d-empty"))
    with pytest.raises(DataSourceError, match=r"^GS: .*no price data"):
        download_bars("GS", start="2023-10-07", end="2023-10-08")


@pytest.mark.parametrize(
    ("status", "body", "reason"),
    [
        (429, b"Too Many Requests", "Rate limited"),
        # yfinance parses the chart body before looking at the status code
        (503, b"Service Unavailable", "JSONDecodeError"),
        (200, b'{"chart": {"result": [', "Expecting value"),
        (200, b'{"chart": {"result": [{"meta": {}}], "error": null}}', "KeyError"),
        (200, requests.exceptions.ReadTimeout("read timed out"), "read timed out"),
    ],
    ids=["rate-limited", "unavailable", "truncated-json", "no-quotes", "timeout"],
)
def test_download_failures_raise_data_source_error_naming_the_ticker(yahoo, status, body, reason):
    yahoo.charts["GS"] = (status, body)
    with pytest.raises(DataSourceError, match=rf"^GS: .*{reason}"):
        download_bars("GS", start="2023-10-02", end="2023-10-09")


def test_download_day_with_missing_close_is_a_validation_error_naming_the_day(yahoo):
    chart = gs_chart()
    chart["chart"]["result"][0]["indicators"]["quote"][0]["close"][2] = None
    yahoo.charts["GS"] = (200, json.dumps(chart).encode())
    with pytest.raises(DataValidationError, match=r"^GS: close is nan on 2023-10-04 \(row 2\)"):
        download_bars("GS", start="2023-10-02", end="2023-10-09")
