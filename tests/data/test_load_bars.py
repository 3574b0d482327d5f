"""load_bars: one entry point for every source, with the same filters and errors."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from forecaster.data import DataSourceError, PriceStore, load_bars, load_sample, validate_bars

pytestmark = pytest.mark.filterwarnings("ignore:.*inplace.*:DeprecationWarning:yfinance")

GS_CHART = Path(__file__).parent / "fixtures" / "yahoo" / "chart-GS-1d-2023-10-02_2023-10-09.json"


def test_sample_source_filters_tickers_and_dates():
    bars = load_bars("sample", "^GSPC", start="2018-12-24", end=pd.Timestamp("2018-12-28"))
    assert bars["ticker"].unique().tolist() == ["^GSPC"]
    assert bars["date"].dt.strftime("%m-%d").tolist() == ["12-24", "12-26", "12-27", "12-28"]


def test_cache_source_reads_the_price_store(tmp_path):
    sample = load_sample()
    PriceStore(tmp_path).write(sample)
    pd.testing.assert_frame_equal(load_bars("cache", price_dir=tmp_path), sample)
    # December 2018 had 19 sessions (markets closed on the 5th for the Bush funeral).
    assert len(load_bars("cache", ["^IXIC"], start="2018-12-01", price_dir=tmp_path)) == 19


def test_file_and_folder_sources(tmp_path, make_bars):
    make_bars("AAPL").to_csv(tmp_path / "AAPL.csv", index=False)
    make_bars("MSFT", n=7).to_parquet(tmp_path / "MSFT.parquet")
    assert load_bars(str(tmp_path / "AAPL.csv"))["ticker"].unique().tolist() == ["AAPL"]
    folder = load_bars(tmp_path, ["msft"], end="2020-01-03")
    assert folder["date"].dt.strftime("%Y-%m-%d").tolist() == ["2020-01-02", "2020-01-03"]
    with pytest.raises(DataSourceError, match="no bars for MSFT; available: AAPL"):
        load_bars(tmp_path / "AAPL.csv", "MSFT")


def test_yahoo_source_downloads(yahoo):
    yahoo.charts["GS"] = (200, GS_CHART.read_bytes())
    bars = load_bars("yahoo", ["GS"], start="2023-10-03", end="2023-10-05")
    assert bars["date"].dt.strftime("%d").tolist() == ["03", "04", "05"]
    pd.testing.assert_frame_equal(bars, validate_bars(bars))


def test_range_without_bars_names_the_ticker():
    with pytest.raises(DataSourceError, match=r"\^GSPC: no bars between 2030-01-01 and"):
        load_bars("sample", "^GSPC", start="2030-01-01")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"source": "yahoo"}, "'yahoo' needs tickers"),
        ({"source": "cache"}, "'cache' needs price_dir"),
        ({"source": "sampel"}, "unknown data source 'sampel': expected one of sample, yahoo, cache"),
        ({"source": "/no/such/prices.csv"}, "unknown data source '/no/such/prices.csv'"),
    ],
)
def test_unusable_source_is_a_clear_error(kwargs, message):
    with pytest.raises(ValueError, match=message):
        load_bars(**kwargs)
