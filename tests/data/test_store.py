"""The Parquet price store: one file per ticker, atomic writes, filtered reads."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

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
    assert sorted(p.name for p in store.root.iterdir()) == [".locks", "AAPL.parquet", "^GSPC.parquet"]
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


# A writer in another process: upserts every second day of the bars in `days` (its parity),
# one day per call, after the test says go. Disjoint rows, so every row must survive.
UPSERT_EVERY_OTHER_DAY = """
import sys, time
from pathlib import Path
import pandas as pd
from forecaster.data import PriceStore

root, days, parity, go = sys.argv[1], pd.read_parquet(sys.argv[2]), int(sys.argv[3]), Path(sys.argv[4])
store = PriceStore(root)
print("ready", flush=True)
while not go.exists():
    time.sleep(0.001)
for i in range(parity, len(days), 2):
    store.upsert(days.iloc[[i]])
"""


def python_env() -> dict:
    """The environment for a child Python that imports this checkout's packages."""
    root = str(Path(__file__).resolve().parents[2])
    return os.environ | {"PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}


def test_concurrent_upserts_of_one_ticker_from_two_processes_keep_every_row(tmp_path, make_bars):
    days = make_bars("AAPL", n=60)
    days.to_parquet(tmp_path / "days.parquet")
    store, go = PriceStore(tmp_path / "prices"), tmp_path / "go"
    writers = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                UPSERT_EVERY_OTHER_DAY,
                str(store.root),
                str(tmp_path / "days.parquet"),
                str(parity),
                str(go),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=python_env(),
        )
        for parity in (0, 1)
    ]
    for writer in writers:  # both have imported everything: the race starts together
        assert writer.stdout.readline().strip() == "ready", writer.stderr.read()
    go.touch()
    for writer in writers:
        _, err = writer.communicate(timeout=120)
        assert writer.returncode == 0, err

    pd.testing.assert_frame_equal(store.read("AAPL"), validate_bars(days))


def test_temp_files_of_killed_writers_are_removed_at_the_next_write(store, make_bars):
    orphan = store.root / ".AAPL.parquet.0123456789abcdef.tmp"  # left by a kill -9 long ago
    orphan.write_bytes(b"PAR1 half a file")
    old = time.time() - 3600
    os.utime(orphan, (old, old))
    in_flight = store.root / ".AAPL.parquet.fedcba9876543210.tmp"  # another writer, right now
    in_flight.write_bytes(b"PAR1 half a file")

    store.upsert(make_bars("AAPL", n=3, start="2020-02-03"))

    assert not orphan.exists()
    assert in_flight.exists()
    assert store.remove_orphans(max_age=timedelta(0)) == [in_flight]
