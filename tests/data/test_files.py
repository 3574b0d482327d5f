"""Reading bars from CSV and Parquet files: yfinance's layouts, ours, and broken files."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yfinance as yf

from forecaster.data import (
    DataSourceError,
    DataValidationError,
    bars_from_frame,
    download_bars,
    read_bars_dir,
    read_bars_file,
    validate_bars,
)

pytestmark = pytest.mark.filterwarnings("ignore:.*inplace.*:DeprecationWarning:yfinance")

GS_CHART = Path(__file__).parent / "fixtures" / "yahoo" / "chart-GS-1d-2023-10-02_2023-10-09.json"


@pytest.fixture
def gs(yahoo):
    """GS from the recorded chart as yfinance hands it out, and as our bars."""
    yahoo.charts["GS"] = (200, GS_CHART.read_bytes())
    span = {"start": "2023-10-02", "end": "2023-10-10", "auto_adjust": False}
    return {
        "history": yf.Ticker("GS", session=yahoo.session).history(**span),
        "download": yf.download("GS", progress=False, threads=False, session=yahoo.session, **span),
        "bars": download_bars("GS", "2023-10-02", "2023-10-09", session=yahoo.session),
    }


def _save(frame: pd.DataFrame, path: Path, **kwargs) -> Path:
    if path.suffix == ".csv":
        frame.to_csv(path, **kwargs)
    else:
        frame.to_parquet(path, **kwargs)
    return path


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_ticker_history_file_round_trips(tmp_path, gs, suffix):
    # Ticker.history(): tz-aware Date index ("2023-10-02 00:00:00-04:00" in CSV), Dividends...
    path = _save(gs["history"], tmp_path / f"GS{suffix}")
    pd.testing.assert_frame_equal(read_bars_file(path), gs["bars"])


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_yf_download_file_round_trips_with_its_ticker(tmp_path, gs, suffix):
    # yf.download(): (Price, Ticker) column levels; its CSV has three header lines.
    path = _save(gs["download"], tmp_path / f"prices{suffix}")
    pd.testing.assert_frame_equal(read_bars_file(path), gs["bars"])


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_contract_layout_round_trips(tmp_path, make_bars, suffix):
    bars = validate_bars(pd.concat([make_bars("AAPL"), make_bars("^GSPC")]))
    path = _save(bars, tmp_path / f"universe{suffix}", index=False)
    pd.testing.assert_frame_equal(read_bars_file(path), bars)


def test_multi_ticker_download_layout_drops_only_padding_rows(make_bars):
    a, b = make_bars("AAPL", n=3), make_bars("7203.T", n=3)
    wide = pd.concat(
        {t: f.set_index("date").drop(columns="ticker") for t, f in (("AAPL", a), ("7203.T", b))},
        axis=1,
        names=["Ticker", "Price"],
    ).swaplevel(axis=1)
    wide.loc[wide.index[1], (slice(None), "7203.T")] = np.nan  # a Tokyo holiday
    bars = bars_from_frame(wide)
    assert bars.groupby("ticker").size().to_dict() == {"7203.T": 2, "AAPL": 3}


def test_missing_adj_close_falls_back_to_close(tmp_path, gs):
    path = _save(gs["history"].drop(columns="Adj Close"), tmp_path / "GS.csv")
    bars = read_bars_file(path)
    np.testing.assert_array_equal(bars["adj_close"], bars["close"])


def test_dates_with_utc_offsets_keep_the_local_day(tmp_path):
    # Tokyo's midnight is the previous day in UTC; the bar belongs to the local day.
    path = tmp_path / "7203.T.csv"
    path.write_text(
        "Date,Open,High,Low,Close,Adj Close,Volume\n"
        "2023-10-02 00:00:00+09:00,2600,2650,2590,2640,2640,100\n"
        "2023-10-03 00:00:00+09:00,2640,2660,2600,2610,2610,120\n"
    )
    bars = read_bars_file(path)
    assert bars["ticker"].tolist() == ["7203.T"] * 2
    assert bars["date"].dt.strftime("%Y-%m-%d").tolist() == ["2023-10-02", "2023-10-03"]


def test_ticker_comes_from_argument_then_column_then_file_name(tmp_path, make_bars):
    flat = make_bars("AAPL").drop(columns="ticker")
    path = _save(flat, tmp_path / "aapl.csv", index=False)
    assert set(read_bars_file(path)["ticker"]) == {"AAPL"}
    assert set(read_bars_file(path, ticker="MSFT")["ticker"]) == {"MSFT"}
    tagged = _save(make_bars("IBM"), tmp_path / "aapl.parquet")
    assert set(read_bars_file(tagged)["ticker"]) == {"IBM"}
    with pytest.raises(DataValidationError, match=r"aapl\.parquet: ticker MSFT was asked .* IBM"):
        read_bars_file(tagged, ticker="MSFT")


def test_missing_column_error_names_file_and_column(tmp_path, gs):
    path = _save(gs["history"].drop(columns="Volume"), tmp_path / "GS.csv")
    with pytest.raises(DataValidationError, match=rf"^{re.escape(str(path))}: missing column\(s\) volume"):
        read_bars_file(path)


def test_a_file_without_a_date_column_lists_its_own_columns(tmp_path):
    path = tmp_path / "AAA.csv"
    path.write_text("when,price\n2020-01-02,100\n2020-01-03,101\n")
    with pytest.raises(DataValidationError) as caught:
        read_bars_file(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: no date") and "got columns ['when', 'price']" in message, message


def test_unreadable_date_error_names_file_row_and_line(tmp_path, make_bars):
    frame = make_bars("AAPL").astype({"date": "str"})
    frame.loc[2, "date"] = "2020-02-30"
    path = _save(frame, tmp_path / "AAPL.csv", index=False)
    with pytest.raises(
        DataValidationError,
        match=rf"^{re.escape(str(path))}: AAPL: unreadable date '2020-02-30' \(row 2\) \[AAPL.csv line 4\]",
    ):
        read_bars_file(path)


def test_bad_price_error_names_file_day_and_line(tmp_path, make_bars):
    frame = make_bars("AAPL").astype({"close": object})
    frame.loc[3, "close"] = "abc"
    path = _save(frame, tmp_path / "AAPL.csv", index=False)
    with pytest.raises(DataValidationError, match=r"close is 'abc' on 2020-01-07 \(row 3\).*line 5"):
        read_bars_file(path)


@pytest.mark.parametrize(
    ("name", "content", "problem"),
    [
        ("AAPL.parquet", b"not parquet at all", "cannot read parquet file"),
        ("AAPL.csv", b"", "cannot read csv file"),
        ("AAPL.json", b"{}", "unsupported file type"),
    ],
)
def test_unreadable_file_error_names_the_file(tmp_path, name, content, problem):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(DataSourceError, match=rf"^{re.escape(str(path))}: {problem}"):
        read_bars_file(path)


def test_missing_file_is_named(tmp_path):
    with pytest.raises(DataSourceError, match=r"nope\.csv: no such file"):
        read_bars_file(tmp_path / "nope.csv")


def test_file_name_that_is_no_ticker_needs_a_ticker(tmp_path, make_bars):
    path = _save(make_bars().drop(columns="ticker"), tmp_path / "my prices.csv", index=False)
    with pytest.raises(DataValidationError, match=r"my prices\.csv: no ticker column"):
        read_bars_file(path)
    assert len(read_bars_file(path, ticker="AAPL")) == 5


@pytest.fixture
def price_folder(tmp_path, make_bars) -> Path:
    _save(make_bars("AAPL").drop(columns="ticker"), tmp_path / "AAPL.csv", index=False)
    _save(make_bars("^GSPC", n=7), tmp_path / "^GSPC.parquet")
    (tmp_path / "notes.txt").write_text("not bars")
    (tmp_path / ".AAPL.csv.tmp.csv").write_text("hidden, skipped")
    return tmp_path


def test_folder_reads_every_ticker_file(price_folder):
    bars = read_bars_dir(price_folder)
    assert bars.groupby("ticker").size().to_dict() == {"AAPL": 5, "^GSPC": 7}


def test_folder_reads_only_requested_tickers(price_folder):
    assert read_bars_dir(price_folder, ["^gspc"])["ticker"].unique().tolist() == ["^GSPC"]


def test_folder_names_requested_ticker_without_file(price_folder):
    with pytest.raises(DataSourceError, match=r"no file for MSFT; found AAPL, \^GSPC"):
        read_bars_dir(price_folder, ["AAPL", "MSFT"])


def test_folder_rejects_two_files_for_one_ticker(price_folder, make_bars):
    _save(make_bars("AAPL"), price_folder / "aapl.parquet")
    with pytest.raises(DataSourceError, match="two files for AAPL"):
        read_bars_dir(price_folder)


def test_folder_names_file_whose_name_is_no_ticker(price_folder, make_bars):
    _save(make_bars("AAPL"), price_folder / "my prices.csv", index=False)
    with pytest.raises(DataValidationError, match=r"my prices\.csv: file name is not a ticker"):
        read_bars_dir(price_folder)


def test_empty_folder_is_an_error(tmp_path):
    with pytest.raises(DataSourceError, match="no \\*.csv or \\*.parquet files"):
        read_bars_dir(tmp_path)
