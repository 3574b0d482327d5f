"""The Parquet price store: one file per ticker, atomic writes, filtered reads."""

from __future__ import annotations

import os

import pandas as pd
import pytest

from forecaster.data import DataSourceError, DataValidationError, PriceStore, validate_bars


@pytest.fixture
def bars(make_bars) -> pd.DataFrame:
    return validate_bars(pd.concat([make_bars("AAPL", n=5), make_bars("^GSPC", n=8)]))


@pytest.fixture
def store(tmp_path, bars) -> PriceStore:
    store = PriceStore(tmp_path / "prices")
    store.write(bars)
    return store


def test_store_round_trips_bars_one_file_per_ticker(store, bars):
    assert sorted(p.name for p in store.root.iterdir()) == ["AAPL.parquet", "^GSPC.parquet"]
    assert store.tickers() == ["AAPL", "^GSPC"]
    pd.testing.assert_frame_equal(store.read(), bars)


def test_store_reads_requested_tickers_and_inclusive_dates(store):
    picked = store.read(["^gspc"], start="2020-01-06", end="2020-01-08")
    assert picked["ticker"].unique().tolist() == ["^GSPC"]
    assert picked["date"].dt.strftime("%Y-%m-%d").tolist() == ["2020-01-06", "2020-01-07", "2020-01-08"]


def test_store_names_a_ticker_it_does_not_hold(store):
    with pytest.raises(DataSourceError, match=r"^MSFT: not in PriceStore\(.*\) \(stored: AAPL, \^GSPC\)"):
        store.read(["AAPL", "MSFT"])
    with pytest.raises(DataSourceError, match="^MSFT: not in"):
        store.last_date("MSFT")


def test_store_last_date(store):
    assert store.last_date("^GSPC") == pd.Timestamp("2020-01-13")


def test_write_replaces_only_the_tickers_written(store, make_bars):
    store.write(make_bars("AAPL", n=2, start="2021-06-01"))
    assert store.last_date("AAPL") == pd.Timestamp("2021-06-02")
    assert len(store.read("^GSPC")) == 8


def test_write_validates_before_touching_files(store, bars, make_bars):
    broken = make_bars("AAPL").assign(volume=-1.0)
    with pytest.raises(DataValidationError, match="volume"):
        store.write(broken)
    pd.testing.assert_frame_equal(store.read(), bars)


@pytest.mark.parametrize("failure", ["replace", "parquet"])
def test_failed_write_keeps_old_file_and_leaves_no_temp_file(store, bars, make_bars, monkeypatch, failure):
    def crash(*args, **kwargs):
        raise OSError("disk full (simulated)")

    if failure == "replace":  # the new file is complete, the rename fails
        monkeypatch.setattr(os, "replace", crash)
    else:  # the Parquet writer fails half-way, after writing some bytes

        def partial(self, f, **kwargs):
            f.write(b"PAR1 half a file")
            crash()

        monkeypatch.setattr(pd.DataFrame, "to_parquet", partial)

    before = sorted(store.root.iterdir())
    with pytest.raises(OSError, match="simulated"):
        store.write(make_bars("AAPL", n=3, start="2022-01-03"))
    monkeypatch.undo()

    assert sorted(store.root.iterdir()) == before
    pd.testing.assert_frame_equal(store.read(), bars)


def test_temp_and_foreign_files_are_not_tickers(store):
    (store.root / ".AAPL.parquet.123.tmp").write_bytes(b"")
    (store.root / "lowercase.parquet").write_bytes(b"")
    (store.root / "notes.txt").write_text("")
    assert store.tickers() == ["AAPL", "^GSPC"]


@pytest.mark.parametrize("ticker", ["../AAPL", "a/b", "..", ""])
def test_store_paths_cannot_escape_the_root(tmp_path, ticker):
    with pytest.raises(DataValidationError, match="invalid ticker"):
        PriceStore(tmp_path).path(ticker)


def test_empty_store_has_no_tickers(tmp_path):
    store = PriceStore(tmp_path / "missing")
    assert store.tickers() == []
    with pytest.raises(DataSourceError, match="no tickers stored"):
        store.read()
