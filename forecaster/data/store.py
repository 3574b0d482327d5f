"""The price store: validated daily bars, one Parquet file per ticker.

`<root>/<TICKER>.parquet`, the ticker as `validate_ticker` returns it: upper-case letters,
digits and `. ^ = & -`, never a path separator and never a leading '.', so the name is safe
and the ticker is the file name minus `.parquet`. Temporary files start with '.', so they
are never mistaken for a ticker.

Concurrent writers (the ingest job, the API's refresh, a manual `forecaster ingest`) take a
per-ticker file lock, `<root>/.locks/<TICKER>.lock`, around each read-merge-write, so one
never overwrites rows the other has just added. A temporary file older than `TMP_MAX_AGE` was
left by a killed writer and is deleted before the next write.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
import uuid
from collections.abc import Iterable, Iterator
from datetime import timedelta
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from forecaster.data.validation import (
    DataSourceError,
    DataValidationError,
    select_bars,
    ticker_list,
    validate_bars,
    validate_ticker,
)
from forecaster.runtime.paths import ensure_writable

log = logging.getLogger(__name__)

SUFFIX = ".parquet"
# A write takes milliseconds; a temporary file this old belongs to a writer that was killed.
TMP_MAX_AGE = timedelta(minutes=10)
# Waiting longer than this for another writer of the same ticker means something is stuck.
LOCK_TIMEOUT_S = 120


class PriceStore:
    """Daily bars per ticker under `root` (created on first write)."""

    def __init__(self, root: str | Path):
        self.root = Path(root)

    def __repr__(self) -> str:
        return f"PriceStore({str(self.root)!r})"

    def path(self, ticker: str) -> Path:
        """The file that holds `ticker`'s bars (it may not exist yet)."""
        return self.root / f"{validate_ticker(ticker)}{SUFFIX}"

    def tickers(self) -> list[str]:
        """Stored tickers, sorted."""
        if not self.root.is_dir():
            return []
        stems = (p.name[: -len(SUFFIX)] for p in self.root.glob(f"*{SUFFIX}"))
        return sorted(s for s in stems if _is_canonical(s))

    def write(self, bars: pd.DataFrame) -> list[str]:
        """Validate `bars` and replace each of its tickers' files; return the tickers written.

        Each file is written to a temporary file in the same folder and moved into place with
        `os.replace`, so a reader sees the old file or the new one, never half of one, and a
        crash leaves the old file as it was. Tickers not in `bars` are left alone.
        """
        bars = validate_bars(bars)
        self._prepare_write()
        written = []
        for ticker, group in bars.groupby("ticker", sort=True):
            with self.lock(ticker):
                self._write_atomic(self.path(ticker), group.reset_index(drop=True))
            written.append(ticker)
        return written

    def upsert(self, bars: pd.DataFrame) -> list[str]:
        """Merge `bars` into the stored files, each new span replacing the stored one; return tickers.

        For each ticker, stored bars dated inside the new bars' first..last day are replaced
        (revised or withdrawn days), the others kept; a ticker not stored yet is created.
        Every file is replaced atomically, as in `write`.
        """
        bars = validate_bars(bars)
        self._prepare_write()
        written = []
        for ticker, group in bars.groupby("ticker", sort=True):
            # Read, merge and write under one lock: another writer's rows are in `old` or wait.
            with self.lock(ticker):
                old = self._read_one(ticker) if self.path(ticker).is_file() else None
                self._write_atomic(self.path(ticker), merge_bars(old, group).reset_index(drop=True))
            written.append(ticker)
        return written

    @contextlib.contextmanager
    def lock(self, ticker: str) -> Iterator[None]:
        """Hold `ticker`'s file lock (across processes) while the block runs."""
        from filelock import FileLock

        locks = self.root / ".locks"
        locks.mkdir(parents=True, exist_ok=True)
        with FileLock(locks / f"{validate_ticker(ticker)}.lock", timeout=LOCK_TIMEOUT_S):
            yield

    def remove_orphans(self, max_age: timedelta = TMP_MAX_AGE) -> list[Path]:
        """Delete temporary files older than `max_age` (left by killed writers); return them."""
        if not self.root.is_dir():
            return []
        cutoff = time.time() - max_age.total_seconds()
        removed = []
        for tmp in self.root.glob(f".*{SUFFIX}.*.tmp"):
            with contextlib.suppress(FileNotFoundError):  # another process removed it first
                if tmp.stat().st_mtime < cutoff:
                    tmp.unlink()
                    removed.append(tmp)
        if removed:
            log.info("%s: removed %d orphan temporary files", self, len(removed))
        return removed

    def _prepare_write(self) -> None:
        # One clear line for a read-only or full folder, before any lock or temp file.
        ensure_writable(self.root)
        self.remove_orphans()

    def read(
        self,
        tickers: str | Iterable[str] | None = None,
        start=None,
        end=None,
    ) -> pd.DataFrame:
        """Validated bars of `tickers` (default: all stored) dated in [start, end], inclusive.

        Raises `DataSourceError` naming a ticker that is not stored or has no bars in range.
        """
        wanted = self.tickers() if tickers is None else ticker_list(tickers)
        if not wanted:
            raise DataSourceError(f"{self}: no tickers stored")
        # One Arrow table, one conversion: twice as fast as a pandas frame per file.
        bars = validate_bars(
            pa.concat_tables([self._read_table(t) for t in wanted], promote_options="default").to_pandas()
        )
        if start is None and end is None:
            return bars  # whole files of exactly the wanted tickers, each non-empty (see write)
        return select_bars(bars, wanted, start, end)

    def last_date(self, ticker: str) -> pd.Timestamp:
        """The date of `ticker`'s latest stored bar."""
        return self._read_one(ticker, columns=["date"])["date"].max()

    def _read_one(self, ticker: str, columns: list[str] | None = None) -> pd.DataFrame:
        return self._read_table(ticker, columns).to_pandas()

    def _read_table(self, ticker: str, columns: list[str] | None = None) -> pa.Table:
        path = self.path(ticker)
        if not path.is_file():
            stored = ", ".join(self.tickers()) or "none"
            raise DataSourceError(f"{validate_ticker(ticker)}: not in {self} (stored: {stored})")
        try:
            return pq.read_table(path, columns=columns)
        except (OSError, ValueError) as exc:  # pyarrow's ArrowInvalid is a ValueError
            raise DataSourceError(f"{path}: cannot read the stored bars: {exc}") from exc

    @staticmethod
    def _write_atomic(path: Path, bars: pd.DataFrame) -> None:
        # Same folder, so os.replace is a rename; a leading '.' hides it from tickers().
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
        try:
            with open(tmp, "xb") as f:
                bars.to_parquet(f, index=False)
                f.flush()
                os.fsync(f.fileno())  # the data is on disk before the name points at it
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise


def merge_bars(old: pd.DataFrame | None, new: pd.DataFrame) -> pd.DataFrame:
    """One ticker's stored bars `old` with the span of `new` (first..last day) replaced by `new`."""
    if old is None or old.empty:
        return new
    first, last = new["date"].min(), new["date"].max()
    kept = old[(old["date"] < first) | (old["date"] > last)]
    return validate_bars(pd.concat([kept, new]).sort_values("date", kind="stable"))


def _is_canonical(stem: str) -> bool:
    try:
        return validate_ticker(stem) == stem
    except DataValidationError:
        return False
