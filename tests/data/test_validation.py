"""The bar contract: canonical output, and errors that say what is wrong and where."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from forecaster.data import (
    BAR_COLUMNS,
    DataSourceError,
    DataValidationError,
    select_bars,
    validate_bars,
    validate_ticker,
)


@pytest.fixture
def two_tickers(make_bars) -> pd.DataFrame:
    """AAPL on rows 0-4, MSFT on rows 5-9, both 2020-01-02 .. 2020-01-08 (business days)."""
    return pd.concat([make_bars("AAPL"), make_bars("MSFT")], ignore_index=True)


def test_valid_bars_come_back_canonical(make_bars):
    raw = pd.concat([make_bars("msft"), make_bars("AAPL")], ignore_index=True)
    raw["volume"] = raw["volume"].astype("int64")
    raw["date"] = raw["date"].dt.strftime("%Y-%m-%d")
    raw["note"] = "extra"
    out = validate_bars(raw[list(reversed(raw.columns))])

    assert tuple(out.columns) == BAR_COLUMNS
    assert out.dtypes.to_dict() == {
        "ticker": "str",
        "date": "datetime64[us]",
        "open": "float64",
        "high": "float64",
        "low": "float64",
        "close": "float64",
        "adj_close": "float64",
        "volume": "float64",
    }
    assert out["ticker"].tolist() == ["AAPL"] * 5 + ["MSFT"] * 5  # upper-cased, by ticker
    assert out["date"].is_monotonic_increasing is False  # sorted within, not across, tickers
    assert (out.groupby("ticker")["date"].diff().dropna() > pd.Timedelta(0)).all()
    assert isinstance(out.index, pd.RangeIndex)
    assert len(out) == len(raw)


def test_validation_leaves_input_untouched(two_tickers):
    before = two_tickers.copy()
    validate_bars(two_tickers)
    pd.testing.assert_frame_equal(two_tickers, before)


def test_tickers_may_interleave_when_each_ticker_is_sorted(make_bars):
    a, b = make_bars("AAPL"), make_bars("MSFT")
    mixed = pd.concat([a, b]).sort_values(["date", "ticker"], ignore_index=True)
    out = validate_bars(mixed)
    pd.testing.assert_frame_equal(out, validate_bars(pd.concat([a, b], ignore_index=True)))


def _set(frame: pd.DataFrame, row: int, column: str, value) -> pd.DataFrame:
    frame = frame.copy()
    if isinstance(value, str) and frame[column].dtype != object:
        frame[column] = frame[column].astype(object)
    frame.loc[row, column] = value
    return frame


# Row 7 is MSFT on 2020-01-06 (a Monday); each case breaks one rule there.
BROKEN_ROW_7 = [
    ("open", np.nan, r"open is nan"),
    ("high", np.inf, r"high is inf"),
    ("low", 0.0, r"low is 0.0"),
    ("close", -5.0, r"close is -5.0"),
    ("adj_close", np.nan, r"adj_close is nan"),
    ("close", "n/a", r"close is 'n/a'"),
    ("volume", np.nan, r"volume is nan"),
    ("volume", -1.0, r"volume is -1.0"),
    ("volume", np.inf, r"volume is inf"),
    ("high", 90.0, r"high 90.0 < low 101.0"),
    ("close", 104.0, r"close 104.0 outside \[low 101.0, high 103.0\]"),
    ("close", 100.5, r"close 100.5 outside \[low 101.0, high 103.0\]"),
    ("open", 103.5, r"open 103.5 outside \[low 101.0, high 103.0\]"),
]


@pytest.mark.parametrize(("column", "value", "problem"), BROKEN_ROW_7)
def test_validation_error_names_ticker_date_and_row(two_tickers, column, value, problem):
    broken = _set(two_tickers, 7, column, value)
    with pytest.raises(DataValidationError, match=rf"^MSFT: {problem} on 2020-01-06 \(row 7\)"):
        validate_bars(broken)


@pytest.mark.parametrize(
    ("column", "value", "rule"),
    [("low", 0.0, "need finite and > 0"), ("volume", np.nan, "need finite and >= 0")],
)
def test_validation_error_states_the_rule(two_tickers, column, value, rule):
    with pytest.raises(DataValidationError, match=rf"\(row 7\); {rule}$"):
        validate_bars(_set(two_tickers, 7, column, value))


def test_validation_error_carries_ticker_date_and_row(two_tickers):
    with pytest.raises(DataValidationError) as info:
        validate_bars(_set(two_tickers, 7, "low", -1.0))
    assert (info.value.ticker, info.value.date, info.value.row) == ("MSFT", "2020-01-06", 7)


def test_validation_error_counts_more_rows_with_the_same_problem(two_tickers):
    broken = _set(_set(two_tickers, 8, "volume", -1.0), 2, "volume", -3.0)
    with pytest.raises(DataValidationError, match=r"^AAPL: .*\(row 2\).*; 1 more row\(s\) like it"):
        validate_bars(broken)


def test_close_a_rounding_hair_above_high_is_accepted(two_tickers):
    bars = _set(two_tickers, 7, "close", two_tickers.loc[7, "high"] * (1 + 1e-7))
    assert validate_bars(bars).loc[7, "close"] > bars.loc[7, "high"]


def test_zero_volume_is_valid(two_tickers):
    assert validate_bars(_set(two_tickers, 7, "volume", 0.0)).loc[7, "volume"] == 0.0


def test_duplicate_date_names_both_rows(two_tickers):
    broken = _set(two_tickers, 7, "date", two_tickers.loc[6, "date"])
    expected = r"^MSFT: duplicate date \(also row 6\) on 2020-01-03 \(row 7\)"
    with pytest.raises(DataValidationError, match=expected):
        validate_bars(broken)


def test_unsorted_dates_are_an_error_not_resorted(two_tickers):
    broken = two_tickers.copy()
    broken.loc[[6, 7], "date"] = broken.loc[[7, 6], "date"].to_numpy()
    with pytest.raises(
        DataValidationError,
        match=r"^MSFT: date goes back from 2020-01-06 \(row 6\) on 2020-01-03 \(row 7\); .*sorted",
    ):
        validate_bars(broken)


def test_unreadable_date_names_ticker_value_and_row(two_tickers):
    broken = _set(two_tickers, 7, "date", "2020-13-45")
    with pytest.raises(DataValidationError, match=r"^MSFT: unreadable date '2020-13-45' \(row 7\)"):
        validate_bars(broken)


def test_missing_date_is_unreadable(two_tickers):
    broken = _set(two_tickers, 3, "date", pd.NaT)
    with pytest.raises(DataValidationError, match=r"^AAPL: unreadable date NaT \(row 3\)"):
        validate_bars(broken)


def test_time_of_day_is_rejected_in_daily_bars(two_tickers):
    broken = _set(two_tickers, 7, "date", pd.Timestamp("2020-01-06 09:30"))
    with pytest.raises(DataValidationError, match=r"^MSFT: time of day 09:30:00 .* on 2020-01-06 \(row 7\)"):
        validate_bars(broken)


def test_time_zone_aware_dates_are_rejected(two_tickers):
    aware = two_tickers.assign(date=two_tickers["date"].dt.tz_localize("America/New_York"))
    with pytest.raises(DataValidationError, match="time zone America/New_York"):
        validate_bars(aware)


def test_numeric_dates_are_rejected(two_tickers):
    with pytest.raises(DataValidationError, match="dates are numbers"):
        validate_bars(two_tickers.assign(date=np.arange(10)))


def test_missing_columns_are_named(two_tickers):
    with pytest.raises(DataValidationError, match=r"missing column\(s\) adj_close, volume"):
        validate_bars(two_tickers.drop(columns=["volume", "adj_close"]))


def test_too_few_rows_names_the_ticker(make_bars):
    with pytest.raises(DataValidationError, match=r"^\^GSPC: 12 rows, need at least 36$"):
        validate_bars(make_bars("^GSPC", n=12), min_rows=36)


def test_empty_bars_are_an_error_unless_allowed(make_bars):
    empty = make_bars().iloc[:0]
    with pytest.raises(DataValidationError, match="empty"):
        validate_bars(empty)
    assert tuple(validate_bars(empty, min_rows=0).columns) == BAR_COLUMNS


def test_missing_or_invalid_ticker_names_the_row(two_tickers):
    with pytest.raises(DataValidationError, match=r"^missing ticker on 2020-01-08 \(row 4\)$"):
        validate_bars(_set(two_tickers, 4, "ticker", None))
    with pytest.raises(DataValidationError, match=r"^invalid ticker '\.\./x'.* on 2020-01-08 \(row 4\)$"):
        validate_bars(_set(two_tickers, 4, "ticker", "../x"))


@pytest.mark.parametrize(
    "symbol", ["^GSPC", "BRK-B", "7203.T", "AAPL", "EURUSD=X", "GC=F", "M&M.NS", "BTC-USD"]
)
def test_valid_tickers_are_accepted(symbol):
    assert validate_ticker(symbol) == symbol


def test_tickers_are_upper_cased():
    assert validate_ticker("brk-b") == "BRK-B"


@pytest.mark.parametrize(
    "symbol",
    [
        "",
        ".",
        "..",
        "../x",
        "a/b",
        "a\\b",
        "/etc",
        "AA PL",
        " AAPL",
        "A\0B",
        ".hidden",
        "-x",
        "A" * 33,
        "AAPL\n",
        "C:",
        "a*b",
        "a?b",
    ],
)
def test_unsafe_or_malformed_tickers_are_rejected(symbol):
    with pytest.raises(DataValidationError, match=re.escape(repr(symbol))):
        validate_ticker(symbol)


def test_non_string_ticker_is_rejected():
    with pytest.raises(DataValidationError, match="must be a string"):
        validate_ticker(None)


def test_select_bars_filters_tickers_and_inclusive_dates(two_tickers):
    bars = validate_bars(two_tickers)
    picked = select_bars(bars, "msft", start="2020-01-03", end="2020-01-06")
    assert picked["ticker"].unique().tolist() == ["MSFT"]
    assert picked["date"].dt.strftime("%Y-%m-%d").tolist() == ["2020-01-03", "2020-01-06"]


def test_select_bars_names_missing_ticker_and_empty_range(two_tickers):
    bars = validate_bars(two_tickers)
    with pytest.raises(DataSourceError, match=r"no bars for TSLA; available: AAPL, MSFT"):
        select_bars(bars, ["AAPL", "TSLA"])
    with pytest.raises(DataSourceError, match=r"AAPL: no bars between 2021-01-01 and the start"):
        select_bars(bars, "AAPL", start="2021-01-01")
    with pytest.raises(ValueError, match="after end"):
        select_bars(bars, start="2020-02-01", end="2020-01-01")
