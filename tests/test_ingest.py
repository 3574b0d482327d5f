"""Ingest job: the real yfinance code against recorded Yahoo answers (tests/data/conftest.py),
into a real Parquet price store; retries with an injected sleep."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import requests
from data import conftest as data_fixtures
from yfinance import data as yf_data

from forecaster import forecast_store
from forecaster.config import Settings
from forecaster.data import DataSourceError, PriceStore
from forecaster.data.universe import universe_tickers
from forecaster.data.yahoo import RetryPolicy, download_ticker
from pipelines import ingest

FIXTURES = Path(__file__).parent / "data" / "fixtures" / "yahoo"
GS_CHART = (FIXTURES / "chart-GS-1d-2023-10-02_2023-10-09.json").read_bytes()
EMPTY_CHART = (FIXTURES / "chart-GS-1d-empty.json").read_bytes()
TOO_MANY = (429, b"Too Many Requests")
NEW_YORK = "America/New_York"

yahoo = data_fixtures.yahoo  # the fake Yahoo behind the real yfinance, as in tests/data

pytestmark = pytest.mark.filterwarnings("ignore:.*inplace.*:DeprecationWarning:yfinance")


def bar_requests(yahoo, symbol: str = "GS") -> list[tuple[pd.Timestamp | None, float | None]]:
    """(first day asked for or None for the whole history, timeout) of each bar request.

    yfinance also asks the chart endpoint for a ticker's time zone (range=1d): left out.
    """
    out = []
    for url, timeout in yahoo.chart_requests(symbol):
        query = dict(p.split("=", 1) for p in url.split("?", 1)[1].split("&"))
        if "period1" not in query:
            continue
        start = pd.Timestamp(int(query["period1"]), unit="s", tz="UTC").tz_convert(NEW_YORK)
        out.append((None if start.year < 1930 else start.tz_localize(None).normalize(), timeout))
    return out


class Sleeps(list):
    """An injectable sleep that only records how long it was asked to wait."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture
def store(tmp_path) -> PriceStore:
    return PriceStore(tmp_path / "prices")


def test_incremental_update_appends_only_new_dates(yahoo, store):
    yahoo.charts["GS"] = (200, GS_CHART)
    first = ingest.ingest(store, ["GS"], end="2023-10-04")
    assert first.outcomes[0].full and first.outcomes[0].new_rows == 3
    before = store.read("GS")
    assert before["date"].dt.strftime("%m-%d").tolist() == ["10-02", "10-03", "10-04"]

    yahoo.requests.clear()
    report = ingest.ingest(store, ["GS"], overlap_days=3, end="2023-10-09")

    (outcome,) = report.outcomes
    assert outcome.ok and not outcome.full and outcome.new_rows == 3
    assert outcome.last_date == pd.Timestamp("2023-10-09")
    # Asked only for the overlap (3 days before the last stored bar) and what came after.
    assert [day for day, _ in bar_requests(yahoo)] == [pd.Timestamp("2023-10-01")]
    after = store.read("GS")
    assert after["date"].dt.strftime("%m-%d").tolist() == [
        "10-02",
        "10-03",
        "10-04",
        "10-05",
        "10-06",
        "10-09",
    ]
    pd.testing.assert_frame_equal(after.iloc[:3], before)
    assert report.exit_code(max_failure_share=0.0) == 0


def test_revised_bars_in_the_overlap_replace_stored_ones(yahoo, store):
    yahoo.charts["GS"] = (200, GS_CHART)
    ingest.ingest(store, ["GS"], end="2023-10-09")
    recorded = store.read("GS")
    stale = recorded.copy()
    stale.loc[4, ["close", "open"]] = [314.0, 313.0]  # a corrected close on 10-06
    store.write(stale)

    ingest.ingest(store, ["GS"], end="2023-10-09")
    pd.testing.assert_frame_equal(store.read("GS"), recorded)


def test_re_adjusted_history_triggers_a_full_download(yahoo, store):
    yahoo.charts["GS"] = (200, GS_CHART)
    ingest.ingest(store, ["GS"], end="2023-10-09")
    recorded = store.read("GS")
    store.write(recorded.assign(adj_close=recorded["adj_close"] * 0.99))  # before a dividend

    yahoo.requests.clear()
    yf_data.YfData.cache_get.cache_clear()  # yfinance keeps past-range answers in memory
    (outcome,) = ingest.ingest(store, ["GS"], end="2023-10-09").outcomes

    assert outcome.ok and outcome.full
    starts = [day for day, _ in bar_requests(yahoo)]
    assert starts == [pd.Timestamp("2023-10-02"), None]  # the increment, then everything
    pd.testing.assert_frame_equal(store.read("GS"), recorded)


def test_crash_between_temp_write_and_rename_leaves_the_old_cache(yahoo, store, monkeypatch):
    yahoo.charts["GS"] = (200, GS_CHART)
    ingest.ingest(store, ["GS"], end="2023-10-04")
    before = store.read("GS")
    # A temp file left by an earlier hard crash must not confuse anything.
    (store.root / ".GS.parquet.deadbeef.tmp").write_bytes(b"PAR1 half a file")

    def crash(*args):
        raise KeyboardInterrupt("killed between the temp file and the rename")

    with monkeypatch.context() as patch, pytest.raises(KeyboardInterrupt):
        patch.setattr(os, "replace", crash)
        ingest.ingest(store, ["GS"], end="2023-10-09")

    pd.testing.assert_frame_equal(store.read("GS"), before)
    assert store.tickers() == ["GS"]
    # The temp file is recent (its writer may still be running), so it is kept for now.
    assert sorted(p.name for p in store.root.iterdir()) == [
        ".GS.parquet.deadbeef.tmp",
        ".locks",
        "GS.parquet",
    ]
    assert ingest.ingest(store, ["GS"], end="2023-10-09").outcomes[0].new_rows == 3


def test_rate_limit_is_retried_with_jittered_backoff_then_succeeds(yahoo):
    # yfinance itself re-asks once on an HTTP error (with its other cookie strategy), so two
    # 429s make one failed attempt of ours.
    yahoo.charts["GS"] = [TOO_MANY, TOO_MANY, (200, GS_CHART)]
    sleeps = Sleeps()
    bars = download_ticker("GS", "2023-10-02", "2023-10-09", retry=RetryPolicy(4, backoff=2.0, sleep=sleeps))

    assert len(bars) == 6
    assert len(sleeps) == 1 and 0 <= sleeps[0] <= 2.0  # full jitter: anywhere in [0, backoff]
    assert yahoo.charts["GS"] == [(200, GS_CHART)]  # both 429s were served


def test_persistent_timeouts_give_up_after_the_attempts_with_growing_waits(yahoo):
    yahoo.charts["GS"] = (200, requests.exceptions.ReadTimeout("read timed out"))
    sleeps = Sleeps()
    retry = RetryPolicy(attempts=4, backoff=1.0, max_wait=3.0, sleep=sleeps)
    with pytest.raises(DataSourceError, match=r"^GS: Yahoo download failed after 4 attempts \(ReadTimeout"):
        download_ticker("GS", "2023-10-02", "2023-10-09", timeout=5, retry=retry)

    assert len(sleeps) == 3 and all(0 <= s <= cap for s, cap in zip(sleeps, [1.0, 2.0, 3.0], strict=True))
    assert len(yahoo.chart_requests("GS")) == 4  # one per attempt


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        ((200, EMPTY_CHART), "no price data"),
        ((200, b'{"chart": {"result": ['), "Expecting value"),
        # yfinance reports a 404 either as such or, when its timezone lookup fails first, as
        # "possibly delisted": both are permanent.
        ((404, (FIXTURES / "chart-404-not-found.json").read_bytes()), "(404|delisted)"),
    ],
    ids=["empty", "malformed", "delisted"],
)
def test_permanent_failures_are_not_retried(yahoo, answer, reason):
    yahoo.charts["GS"] = answer
    sleeps = Sleeps()
    with pytest.raises(DataSourceError, match=rf"^GS: Yahoo download failed \(.*{reason}"):
        download_ticker("GS", "2023-10-02", "2023-10-09", retry=RetryPolicy(4, sleep=sleeps))
    assert sleeps == []


def bad_close_chart() -> bytes:
    chart = json.loads(GS_CHART)
    chart["chart"]["result"][0]["indicators"]["quote"][0]["close"][2] = None
    return json.dumps(chart).encode()


def test_failing_tickers_are_reported_the_others_stored_and_the_exit_code_follows_the_share(yahoo, tmp_path):
    yahoo.charts |= {
        "GS": (200, GS_CHART),
        "EMPTY": (200, EMPTY_CHART),
        "BADJSON": (200, b'{"chart": {"result": ['),
        "NOCLOSE": (200, bad_close_chart()),
        "SLOW": (200, requests.exceptions.ReadTimeout("read timed out")),
        "LIMITED": [TOO_MANY, TOO_MANY, (200, GS_CHART)],  # retried, then fine
    }
    settings = Settings(
        home=tmp_path / "home",
        universe=["GS", "EMPTY", "BADJSON", "NOSUCH", "NOCLOSE", "SLOW", "LIMITED"],
        ingest_batch_size=3,
        ingest_attempts=2,
        ingest_max_failure_share=0.5,
    )
    sleeps = Sleeps()
    report = ingest.run(settings, end="2023-10-09", sleep=sleeps)

    errors = {o.ticker: o.error for o in report.failed}
    assert sorted(errors) == ["BADJSON", "EMPTY", "NOCLOSE", "NOSUCH", "SLOW"]
    assert re.match(r"^NOSUCH: Yahoo download failed \(.*(404|delisted)", errors["NOSUCH"])
    assert errors["NOCLOSE"].startswith("NOCLOSE: close is nan on 2023-10-04 (row 2)")
    assert errors["SLOW"].startswith("SLOW: Yahoo download failed after 2 attempts")
    assert len(sleeps) == 2  # SLOW's and LIMITED's one retry each
    assert PriceStore(settings.price_dir).tickers() == ["GS", "LIMITED"]
    assert report.failure_share == pytest.approx(5 / 7) and report.exit_code(0.5) == 1
    assert report.exit_code(0.75) == 0

    engine = forecast_store.connect(settings.forecast_store_url)
    (run,) = forecast_store.recent_runs(engine)
    assert run["job"] == "ingest" and run["status"] == "failed"
    assert run["counts"] == {"tickers": 7, "failed": 5, "new_rows": 12, "full_refreshes": 2}
    assert "NOCLOSE: close is nan" in run["error"]


def test_universe_file_lists_one_ticker_per_line_with_comments(tmp_path):
    path = tmp_path / "universe.txt"
    path.write_text("# US large caps\naapl\n  MSFT  # software\n\n^GSPC\nAAPL\n")
    assert universe_tickers(Settings(universe_file=path)) == ["AAPL", "MSFT", "^GSPC"]
    path.write_text("AAPL\nBRK/B\n")
    with pytest.raises(ValueError, match=r"universe.txt line 2: invalid ticker 'BRK/B'"):
        universe_tickers(Settings(universe_file=path))


def test_upsert_replaces_the_span_it_brings_and_keeps_the_rest(store):
    days = pd.bdate_range("2024-01-01", periods=6).astype("datetime64[us]")
    close = np.arange(100.0, 106.0)
    bars = pd.DataFrame(
        {"ticker": "X", "date": days, "open": close, "high": close + 1, "low": close - 1}
        | {"close": close, "adj_close": close, "volume": 1.0}
    )
    store.write(bars.iloc[:4])
    store.upsert(bars.iloc[2:].assign(close=bars["close"].iloc[2:] + 0.5))

    merged = store.read("X")
    assert len(merged) == 6 and merged["close"].tolist() == [100, 101, 102.5, 103.5, 104.5, 105.5]


def test_ingest_command_refuses_a_bad_universe_in_one_line(monkeypatch, tmp_path):
    from typer.testing import CliRunner

    from forecaster.cli import app

    monkeypatch.setenv("FORECASTER_HOME", str(tmp_path))
    monkeypatch.setenv("FORECASTER_UNIVERSE", '["AAPL", "../etc"]')
    result = CliRunner().invoke(app, ["ingest"])
    assert result.exit_code == 2 and "invalid ticker '../etc'" in result.output
    assert "Traceback" not in result.output


def test_an_unwritable_data_folder_stops_the_job_before_any_download_in_one_line(tmp_path):
    (tmp_path / "home").write_text("a file where the data folder should be")
    env = os.environ | {"FORECASTER_HOME": str(tmp_path / "home"), "FORECASTER_SOURCE": "yahoo"}
    env["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(Path(__file__).resolve().parents[1]), env.get("PYTHONPATH")])
    )
    done = subprocess.run(
        [sys.executable, "-m", "pipelines.ingest"], capture_output=True, text=True, env=env, timeout=120
    )
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        f"error: cannot write to {tmp_path / 'home' / 'prices'}: a part of the path is a file, not a folder"
    ]
