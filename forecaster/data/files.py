"""Daily bars from CSV and Parquet files in yfinance's layouts or the contract's own.

See `forecaster.data.layout` for the layouts read. One ticker per file unless the file says
otherwise (a `ticker` column, or yf.download's `Ticker` column level).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from forecaster.data.layout import bars_from_frame
from forecaster.data.quarantine import QuarantineReport
from forecaster.data.validation import (
    DataSourceError,
    DataValidationError,
    ticker_list,
    validate_bars,
    validate_ticker,
)

SUFFIXES = (".csv", ".parquet")


def read_bars_file(
    path: str | Path, ticker: str | None = None, *, quarantine: QuarantineReport | None = None
) -> pd.DataFrame:
    """Validated bars from one CSV or Parquet file.

    The ticker is `ticker`, else the file's `ticker` column (or yf.download's `Ticker`
    level), else the file name stem (`^GSPC.csv` -> `^GSPC`). If `Adj Close` is absent, as
    in files saved with yfinance's `auto_adjust=True`, adj_close is the close. Errors name the
    file; for CSV files in a flat layout they also give the line (row N is line N + 2).
    With a `quarantine` report, a ticker whose bars break the contract is recorded there with
    the file's name and left out (see `validate_bars`).
    """
    path = Path(path)
    frame, header_lines = _read_table(path)
    if ticker is None and not _names_ticker(frame):
        try:
            ticker = validate_ticker(path.stem)
        except DataValidationError as exc:
            raise DataValidationError(f"{path}: no ticker column and the file name {exc}") from None
    found = QuarantineReport() if quarantine is not None else None

    def source(row: int | None) -> str:
        # Rows match lines only when the file was not stacked from yf.download's wide layout.
        if row is not None and not isinstance(frame.columns, pd.MultiIndex):
            return f"{path.name} line {row + header_lines + 1}"
        return path.name

    try:
        bars = bars_from_frame(frame, ticker, quarantine=found)
    except DataValidationError as exc:
        where = f"{path}: {exc}"
        if exc.row is not None and not isinstance(frame.columns, pd.MultiIndex):
            where += f" [{source(exc.row)}]"
        raise DataValidationError(where, ticker=exc.ticker, date=exc.date, row=exc.row) from None
    for entry in found or ():
        quarantine.add(dataclasses.replace(entry, source=source(entry.row)))
    return bars


def read_bars_dir(
    folder: str | Path,
    tickers: str | Iterable[str] | None = None,
    *,
    quarantine: QuarantineReport | None = None,
) -> pd.DataFrame:
    """Validated bars from a folder of `<TICKER>.csv` / `<TICKER>.parquet` files.

    Reads every such file, or only those of `tickers` (a `DataSourceError` names any ticker
    without a file). Hidden files (starting with '.') are skipped. `quarantine`: see
    `read_bars_file`.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise DataSourceError(f"{folder}: not a folder")
    files: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if path.suffix.lower() not in SUFFIXES or path.name.startswith(".") or not path.is_file():
            continue
        try:
            symbol = validate_ticker(path.stem)
        except DataValidationError as exc:
            raise DataValidationError(f"{path}: file name is not a ticker: {exc}") from None
        if symbol in files:
            raise DataSourceError(f"{folder}: two files for {symbol}: {files[symbol].name}, {path.name}")
        files[symbol] = path
    if tickers is None:
        wanted = sorted(files)
        if not wanted:
            raise DataSourceError(f"{folder}: no *.csv or *.parquet files")
    else:
        wanted = ticker_list(tickers)
        missing = [t for t in wanted if t not in files]
        if missing:
            raise DataSourceError(
                f"{folder}: no file for {', '.join(missing)}; found {', '.join(files) or 'none'}"
            )
    frames = [read_bars_file(files[t], t, quarantine=quarantine) for t in wanted]
    return validate_bars(pd.concat(frames), min_rows=0 if quarantine is not None else 1)


def _read_table(path: Path) -> tuple[pd.DataFrame, int]:
    """The file as a frame, and how many header lines precede its first data row."""
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise DataSourceError(f"{path}: unsupported file type, expected .csv or .parquet")
    if not path.is_file():
        raise DataSourceError(f"{path}: no such file")
    try:
        if suffix == ".parquet":
            return pd.read_parquet(path), 0
        frame = pd.read_csv(path)
        if _is_download_csv(frame):
            # yf.download().to_csv(): "Price,..." / "Ticker,..." / "Date,,," then data.
            return pd.read_csv(path, header=[0, 1], index_col=0, skiprows=[2]), 3
        return frame, 1
    except (OSError, ValueError, ImportError) as exc:  # pandas' and pyarrow's parse errors
        raise DataSourceError(f"{path}: cannot read {suffix[1:]} file: {exc}") from exc


def _is_download_csv(frame: pd.DataFrame) -> bool:
    return (
        len(frame) >= 2
        and str(frame.columns[0]) == "Price"
        and str(frame.iloc[0, 0]) == "Ticker"
        and str(frame.iloc[1, 0]) == "Date"
    )


def _names_ticker(frame: pd.DataFrame) -> bool:
    if isinstance(frame.columns, pd.MultiIndex):
        return any(str(n).lower() == "ticker" for n in frame.columns.names)
    return any(str(c).strip().lower() == "ticker" for c in frame.columns)
