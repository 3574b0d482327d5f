"""Robust universe loads: a ticker that fails validation is quarantined, the others load."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from forecaster.data import (
    DataValidationError,
    QuarantineReport,
    check_jumps,
    load_bars,
    validate_bars,
)

# ../shared/data beside the checkout
UNIVERSE = Path(__file__).resolve().parents[3] / "shared" / "data" / "us-stocks-2000-2017.parquet"


@pytest.fixture
def universe(make_bars) -> pd.DataFrame:
    """Three tickers of 40 bars in one long frame; BAD's close at row 47 (2020-01-13) is off."""
    bars = pd.concat([make_bars(t, n=40) for t in ("AAA", "BAD", "CCC")], ignore_index=True)
    bars.loc[47, "close"] = bars.loc[47, "close"] / 10
    return bars


def test_failing_ticker_is_quarantined_with_ticker_date_row_and_reason(universe):
    report = QuarantineReport()
    bars = validate_bars(universe, quarantine=report)
    assert bars["ticker"].unique().tolist() == ["AAA", "CCC"]
    assert len(bars) == 80
    (entry,) = report
    assert (entry.ticker, entry.date, entry.row) == ("BAD", "2020-01-13", 47)
    assert entry.reason == "close 10.7 outside [low 106.0, high 108.0]"
    assert str(report) == "BAD: close 10.7 outside [low 106.0, high 108.0] on 2020-01-13 (row 47)"
    assert report.to_frame()[["ticker", "date", "row"]].values.tolist() == [["BAD", "2020-01-13", 47]]


def test_quarantine_keeps_each_tickers_first_problem_one_line_each(universe):
    broken = universe.copy()
    broken.loc[45, "volume"] = -1.0  # BAD's earlier row, a check that comes first
    broken.loc[[90, 95], "low"] = np.nan  # CCC
    report = QuarantineReport()
    assert validate_bars(broken, quarantine=report)["ticker"].unique().tolist() == ["AAA"]
    lines = sorted(str(report).splitlines())  # in the order found: CCC's low is checked before volume
    assert lines[0] == "BAD: volume is -1.0 on 2020-01-09 (row 45); need finite and >= 0"
    assert lines[1] == "CCC: low is nan on 2020-01-16 (row 90); need finite and > 0; 1 more row(s) like it"


def test_strict_validation_raises_the_same_message(universe):
    with pytest.raises(DataValidationError, match=r"^BAD: close 10.7 outside .* on 2020-01-13 \(row 47\)$"):
        validate_bars(universe)


def test_short_ticker_and_unreadable_date_are_quarantined(universe):
    broken = universe.astype({"date": object})
    broken.loc[5, "date"] = "2020-13-45"
    report = QuarantineReport()
    bars = validate_bars(broken.iloc[:-35], min_rows=10, quarantine=report)  # CCC keeps 5 rows
    assert bars["ticker"].unique().tolist() == []  # AAA: bad date, BAD: bad close, CCC: short
    assert [str(e) for e in report] == [
        "AAA: unreadable date '2020-13-45' (row 5)",
        "BAD: close 10.7 outside [low 106.0, high 108.0] on 2020-01-13 (row 47)",
        "CCC: 5 rows, need at least 10",
    ]


def _with_reversed_jump(bars: pd.DataFrame, row: int, factor: float) -> pd.DataFrame:
    """A bar whose every price is off by `factor` for one day: passes the contract checks."""
    out = bars.copy()
    out.loc[row, ["open", "high", "low", "close", "adj_close"]] *= factor
    return out


def test_reversed_one_day_jump_is_flagged_with_ticker_date_and_row(make_bars):
    bars = validate_bars(pd.concat([make_bars("AAA", n=30), make_bars("BBB", n=30)]))
    bad = _with_reversed_jump(bars, 40, 0.1)  # BBB, its 11th day
    with pytest.raises(DataValidationError, match=r"^BBB: close 11 is a one-day jump from 109 .* \(row 40\)"):
        check_jumps(bad)
    report = QuarantineReport()
    kept = check_jumps(bad, quarantine=report)
    assert kept["ticker"].unique().tolist() == ["AAA"]
    assert (report.entries[0].ticker, report.entries[0].date, report.entries[0].row) == (
        "BBB",
        "2020-01-16",
        40,
    )


def test_jump_that_does_not_reverse_or_is_small_is_not_flagged(make_bars):
    bars = validate_bars(make_bars("AAA", n=30))
    step = bars.copy()
    step.loc[10:, ["open", "high", "low", "close", "adj_close"]] *= 3.0  # a lasting jump: real news
    pd.testing.assert_frame_equal(check_jumps(step), step)
    small = _with_reversed_jump(bars, 10, 1.5)  # log 1.5 = 0.41 < 0.5
    pd.testing.assert_frame_equal(check_jumps(small), small)
    with pytest.raises(DataValidationError, match="reversed"):
        check_jumps(small, max_jump=0.3)  # the threshold is configurable
    assert check_jumps(_with_reversed_jump(bars, 10, 0.1), max_jump=None) is not None


def test_load_bars_quarantines_by_default_and_strict_fails_fast(tmp_path, universe):
    path = tmp_path / "universe.parquet"
    universe.to_parquet(path)
    bars = load_bars(path)
    assert bars["ticker"].unique().tolist() == ["AAA", "CCC"]
    report = bars.attrs["quarantine"]
    assert report.tickers == ["BAD"] and report.entries[0].row == 47
    with pytest.raises(DataValidationError, match=r"BAD: close 10.7 outside .* \(row 47\)"):
        load_bars(path, strict=True)
    assert load_bars(path, ["AAA", "CCC"]).attrs["quarantine"].empty  # BAD was not asked for
    assert load_bars(path, ["AAA", "BAD"]).attrs["quarantine"].tickers == ["BAD"]


def test_one_ticker_load_with_a_bad_row_still_raises(tmp_path, universe):
    path = tmp_path / "universe.parquet"
    universe.to_parquet(path)
    with pytest.raises(DataValidationError, match=r"BAD: close 10.7 outside .* on 2020-01-13 \(row 47\)"):
        load_bars(path, "BAD")
    single = tmp_path / "BAD.csv"
    universe[universe["ticker"] == "BAD"].to_csv(single, index=False)
    with pytest.raises(DataValidationError, match=r"BAD: close 10.7 .*\(row 7\)"):
        load_bars(single)


def test_folder_load_quarantines_a_bad_file_and_names_it(tmp_path, universe):
    for ticker, one in universe.groupby("ticker"):
        one.to_csv(tmp_path / f"{ticker}.csv", index=False)
    bars = load_bars(tmp_path)
    assert bars["ticker"].unique().tolist() == ["AAA", "CCC"]
    assert str(bars.attrs["quarantine"]).endswith("(row 7) [BAD.csv line 9]")


def test_load_bars_quarantines_reversed_jumps(tmp_path, make_bars):
    bars = validate_bars(pd.concat([make_bars("AAA", n=30), make_bars("BBB", n=30)]))
    _with_reversed_jump(bars, 40, 10.0).to_parquet(tmp_path / "u.parquet")
    loaded = load_bars(tmp_path / "u.parquet")
    assert loaded.attrs["quarantine"].tickers == ["BBB"]
    assert load_bars(tmp_path / "u.parquet", max_jump=None)["ticker"].nunique() == 2


@pytest.mark.skipif(not UNIVERSE.is_file(), reason="the 200-stock universe is only in ../shared/data")
def test_real_universe_loads_199_tickers_and_quarantines_nue():
    bars = load_bars(UNIVERSE)
    report = bars.attrs["quarantine"]
    assert bars["ticker"].nunique() == 199 and "NUE" not in set(bars["ticker"])
    (entry,) = report
    assert (entry.ticker, entry.date, entry.row) == ("NUE", "2007-01-16", 610627)
    assert entry.reason == "close 4.4956 outside [low 44.723, high 45.383]"


def test_yahoo_load_quarantines_a_ticker_whose_bars_break_the_contract(monkeypatch, make_bars):
    from forecaster.data import yahoo

    def history(symbol, *_):
        bars = make_bars(symbol, n=10).set_index("date").drop(columns="ticker")
        if symbol == "BAD":
            bars.loc[bars.index[3], "high"] = 1.0  # high < low
        return bars.rename(columns=lambda c: c.replace("_", " ").title())  # Ticker.history()'s layout

    monkeypatch.setattr(yahoo, "_history", history)
    bars = load_bars("yahoo", ["AAA", "BAD"])
    assert bars["ticker"].unique().tolist() == ["AAA"]
    assert str(bars.attrs["quarantine"]) == "BAD: high 1.0 < low 102.0 on 2020-01-07 (row 3)"
    with pytest.raises(DataValidationError, match="BAD: high 1.0 < low"):
        load_bars("yahoo", ["AAA", "BAD"], strict=True)
