"""The bar contract: one long frame of daily bars, checked in one place.

Columns, in this order: ticker (str), date (tz-naive datetime64[us] at midnight, the
exchange-local calendar day), open, high, low, close, adj_close, volume (float64), sorted by
ticker then date. Every source in `forecaster.data` returns frames that passed `validate_bars`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

import numpy as np
import pandas as pd

from forecaster.data.errors import DataSourceError, DataValidationError
from forecaster.data.quarantine import QuarantineEntry, QuarantineReport

BAR_COLUMNS = ("ticker", "date", "open", "high", "low", "close", "adj_close", "volume")
PRICE_COLUMNS = ("open", "high", "low", "close", "adj_close")
DATE_DTYPE = "datetime64[us]"  # pandas 3's default resolution for parsed dates
BAR_DTYPES = {"ticker": "str", "date": DATE_DTYPE} | {c: "float64" for c in BAR_COLUMNS[2:]}

# Sources round prices to float32 or a few decimals, so a close can sit a hair above the high.
PRICE_RTOL = 1e-6

# Yahoo symbols: ^GSPC, BRK-B, 7203.T, EURUSD=X, GC=F, M&M.NS. None of these characters is a
# path separator, and a symbol may not start with '.' or '-', so '.', '..' and hidden files
# are out and a symbol is always a safe file name stem.
_TICKER_RE = re.compile(r"[A-Z0-9^][A-Z0-9.^=&-]{0,31}")


def validate_ticker(symbol: str) -> str:
    """Return `symbol` upper-cased (Yahoo symbols are case-insensitive) or raise.

    Upper-casing keeps one file per ticker in the price store, also on case-insensitive
    file systems.
    """
    if not isinstance(symbol, str):
        raise DataValidationError(f"ticker must be a string, got {type(symbol).__name__}")
    canonical = symbol.upper()
    if not _TICKER_RE.fullmatch(canonical):
        raise DataValidationError(
            f"invalid ticker {symbol!r}: use 1-32 characters from A-Z, 0-9 and . ^ = & -, "
            "not starting with '.' or '-'",
            ticker=symbol,
        )
    return canonical


def ticker_list(tickers: str | Iterable[str]) -> list[str]:
    """Validated tickers in the given order without repeats; a lone string is one ticker."""
    if isinstance(tickers, str):
        tickers = [tickers]
    symbols = list(dict.fromkeys(validate_ticker(t) for t in tickers))
    if not symbols:
        raise DataValidationError("no tickers given")
    return symbols


def empty_bars() -> pd.DataFrame:
    """A frame with the contract's columns and dtypes and no rows."""
    return pd.DataFrame({c: pd.Series(dtype=t) for c, t in BAR_DTYPES.items()})


def validate_bars(
    bars: pd.DataFrame, min_rows: int = 1, *, quarantine: QuarantineReport | None = None
) -> pd.DataFrame:
    """Check `bars` against the contract and return a canonical copy.

    The copy has the contract's columns (others are left out) and dtypes, tickers
    upper-cased, rows ordered by ticker (stable; each ticker's dates must already increase)
    and a fresh RangeIndex. Nothing is filled or re-ordered in time: the first problem raises
    `DataValidationError` naming ticker, date and row (0-based position in `bars`) and how many
    more rows share it. Checks, in order: columns, tickers, dates (readable, tz-naive,
    midnight), dates strictly increasing per ticker, prices finite and positive, volume finite
    and >= 0, high >= low, open and close within [low, high] (relative tolerance
    `PRICE_RTOL`), at least `min_rows` rows per ticker.

    With a `quarantine` report, a ticker whose rows fail a check is recorded there (its first
    problem, in the order above) and left out of the result instead; the other tickers go on.
    Problems of the frame as a whole (columns, missing or invalid tickers, time zones) raise
    either way.
    """
    _check_columns(bars)
    if len(bars) == 0:
        if min_rows > 0:
            raise DataValidationError(f"bars are empty, need at least {min_rows} row(s)")
        return empty_bars()
    codes, names = _ticker_codes(bars["ticker"], bars["date"])
    dates = _parse_dates(bars["date"])
    checks = _RowChecks(codes, names, dates.to_numpy(), quarantine)
    _check_days(checks, bars["date"], dates)
    order = _check_date_order(checks)
    values = _check_values(checks, bars)
    _check_price_ranges(checks, values)
    _check_row_counts(checks, min_rows)
    return _canonical_frame(checks, order, values)


def _check_columns(bars: pd.DataFrame) -> None:
    if not isinstance(bars, pd.DataFrame):
        raise TypeError(f"bars must be a pandas DataFrame, got {type(bars).__name__}")
    missing = [c for c in BAR_COLUMNS if c not in bars.columns]
    if missing:
        raise DataValidationError(
            f"bars are missing column(s) {', '.join(missing)}; expected {', '.join(BAR_COLUMNS)}"
        )


class _RowChecks:
    """The rows of one frame under check, and what becomes of those that fail.

    Each check hands `fail` a mask of failing rows: without a quarantine report the first
    raises; with one, each ticker with a failing row is quarantined, by its first problem.
    """

    def __init__(
        self, codes: np.ndarray, names: np.ndarray, stamps: np.ndarray, quarantine: QuarantineReport | None
    ):
        self.codes = codes  # row -> ticker code, an index into `names`
        self.names = names  # the sorted canonical tickers
        self.stamps = stamps  # row -> datetime64[us], NaT where unreadable
        self.micros = stamps.astype(np.int64)
        self.report = quarantine
        self.quarantined = np.zeros(len(names), dtype=bool)  # per ticker code

    def day(self, r: int) -> str:
        return str(self.stamps[r])[:10]

    def fail(
        self, mask: np.ndarray, problem: Callable[[int], str], hint: str = "", dated: bool = True
    ) -> None:
        """Raise for the first row in `mask`, or quarantine each ticker with a row in it."""
        rows = np.flatnonzero(mask)
        rows = rows[~self.quarantined[self.codes[rows]]]  # a quarantined ticker keeps its first problem
        if len(rows) == 0:
            return
        if self.report is None:
            firsts, counts = rows[:1], [len(rows)]
        else:  # rows are sorted, so the first index per ticker is its earliest row
            _, first, counts = np.unique(self.codes[rows], return_index=True, return_counts=True)
            firsts = rows[first]
        for r, n in zip(firsts.tolist(), counts, strict=True):
            more = f"; {n - 1} more row(s) like it" if n > 1 else ""
            code = self.codes[r]
            entry = QuarantineEntry(
                self.names[code], self.day(r) if dated else None, r, problem(r), hint + more
            )
            self.quarantine(code, entry)

    def quarantine(self, code: int, entry: QuarantineEntry) -> None:
        """Record `entry` and leave its ticker out; without a report, raise it."""
        if self.report is None:
            raise entry.error()
        self.report.add(entry)
        self.quarantined[code] = True


def _check_days(checks: _RowChecks, raw: pd.Series, dates: pd.Series) -> None:
    """Dates readable, and calendar days at midnight."""
    checks.fail(dates.isna().to_numpy(), lambda r: f"unreadable date {_show(raw.iloc[r])}", dated=False)
    checks.fail(
        checks.micros % 86_400_000_000 != 0,
        lambda r: f"time of day {dates.iloc[r].time()} in a daily bar",
        "; dates must be calendar days at midnight",
    )


def _check_date_order(checks: _RowChecks) -> np.ndarray:
    """Within each ticker (wherever its rows are) dates strictly increase; returns the rows by ticker."""
    codes = checks.codes
    order = np.argsort(codes, kind="stable")
    same = codes[order][1:] == codes[order][:-1]
    step = np.diff(checks.micros[order])
    later, earlier = order[1:], order[:-1]
    prev = np.empty(len(codes), dtype=np.int64)  # row -> previous row of its ticker
    prev[later] = earlier
    dup, back = np.zeros(len(codes), bool), np.zeros(len(codes), bool)
    dup[later] = same & (step == 0)
    back[later] = same & (step < 0)
    checks.fail(dup, lambda r: f"duplicate date (also row {prev[r]})")
    checks.fail(
        back,
        lambda r: f"date goes back from {checks.day(prev[r])} (row {prev[r]})",
        "; each ticker's bars must be sorted by date",
    )
    return order


def _check_values(checks: _RowChecks, bars: pd.DataFrame) -> dict[str, np.ndarray]:
    """Prices finite and > 0, volume finite and >= 0; returns each column as float64."""
    values = {}
    for col in PRICE_COLUMNS + ("volume",):
        raw = bars[col]
        num = pd.to_numeric(raw, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
        bad = ~np.isfinite(num) | ((num <= 0) if col != "volume" else (num < 0))
        need = "finite and > 0" if col != "volume" else "finite and >= 0"
        checks.fail(bad, lambda r, raw=raw, col=col: f"{col} is {_show(raw.iloc[r])}", f"; need {need}")
        values[col] = num
    return values


def _check_price_ranges(checks: _RowChecks, values: dict[str, np.ndarray]) -> None:
    """high >= low, and open and close within [low, high] up to `PRICE_RTOL`."""
    high, low = values["high"], values["low"]
    with np.errstate(invalid="ignore"):  # NaNs of quarantined tickers
        checks.fail(high < low, lambda r: f"high {high[r]} < low {low[r]}")
        for col in ("close", "open"):
            x = values[col]
            outside = (x > high * (1 + PRICE_RTOL)) | (x < low * (1 - PRICE_RTOL))
            checks.fail(
                outside, lambda r, x=x, col=col: f"{col} {x[r]} outside [low {low[r]}, high {high[r]}]"
            )


def _check_row_counts(checks: _RowChecks, min_rows: int) -> None:
    """At least `min_rows` rows per ticker; an error names the first short ticker and counts the rest."""
    counts = np.bincount(checks.codes, minlength=len(checks.names))
    short = np.flatnonzero((counts < min_rows) & ~checks.quarantined)
    if len(short) and checks.report is None:
        t = checks.names[short[0]]
        more = f" (and {len(short) - 1} more ticker(s))" if len(short) > 1 else ""
        raise DataValidationError(f"{t}: {counts[short[0]]} rows, need at least {min_rows}{more}", ticker=t)
    for code in short:
        entry = QuarantineEntry(
            checks.names[code], None, None, f"{counts[code]} rows, need at least {min_rows}"
        )
        checks.quarantine(code, entry)


def _canonical_frame(checks: _RowChecks, order: np.ndarray, values: dict[str, np.ndarray]) -> pd.DataFrame:
    """The rows of tickers not quarantined, by ticker, in the contract's columns and dtypes."""
    order = order[~checks.quarantined[checks.codes[order]]]
    out = {
        "ticker": pd.Index(checks.names, dtype="str").take(checks.codes[order]),
        "date": checks.stamps[order],
    }
    out |= {c: values[c][order] for c in BAR_COLUMNS[2:]}
    return pd.DataFrame(out, columns=list(BAR_COLUMNS))


def select_bars(
    bars: pd.DataFrame,
    tickers: str | Iterable[str] | None = None,
    start=None,
    end=None,
) -> pd.DataFrame:
    """Rows of valid `bars` for `tickers` (all when None) dated in [start, end], inclusive.

    `start`/`end` are anything `pd.Timestamp` reads ("2020-01-31", a date) or None for open.
    Raises `DataSourceError` naming a requested ticker absent from `bars` or without bars in
    the range, rather than returning a frame with a hole in it.
    """
    first, last = as_day(start, "start"), as_day(end, "end")
    if first is not None and last is not None and first > last:
        raise ValueError(f"start {first.date()} is after end {last.date()}")
    keep = pd.Series(True, index=bars.index)
    wanted = None
    if tickers is not None:
        wanted = ticker_list(tickers)
        present = set(bars["ticker"].unique())
        missing = [t for t in wanted if t not in present]
        if missing:
            raise DataSourceError(
                f"no bars for {', '.join(missing)}; available: {', '.join(sorted(present))}"
            )
        keep &= bars["ticker"].isin(wanted)
    if first is not None:
        keep &= bars["date"] >= first
    if last is not None:
        keep &= bars["date"] <= last
    out = bars[keep].reset_index(drop=True)
    span = f"between {_day(first)} and {_day(last)}"
    for t in wanted or []:
        if not (out["ticker"] == t).any():
            raise DataSourceError(f"{t}: no bars {span}")
    if out.empty:
        raise DataSourceError(f"no bars {span}")
    return out


def as_day(value, name: str = "date") -> pd.Timestamp | None:
    """`value` as a tz-naive midnight Timestamp (None stays None)."""
    if value is None:
        return None
    try:
        ts = pd.Timestamp(value)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} {value!r} is not a date: {exc}") from None
    if ts is pd.NaT or ts.tz is not None:
        raise ValueError(f"{name} {value!r} must be a calendar day without time zone")
    return ts.normalize()


def _show(value) -> str:
    """A cell for an error message: strings quoted, numbers plain (not np.float64(...))."""
    return repr(value) if isinstance(value, str) else str(value)


def _day(ts: pd.Timestamp | None) -> str:
    return "the start" if ts is None else str(ts.date())


def _ticker_codes(column: pd.Series, dates: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Per-row codes into the sorted canonical ticker names."""

    def where(row: int) -> str:  # dates are not parsed yet: show the raw cell
        raw = dates.iloc[row]
        day = str(raw.date()) if isinstance(raw, pd.Timestamp) else _show(raw)
        return f"on {day} (row {row})"

    null = np.flatnonzero(column.isna().to_numpy())
    if len(null):
        row = int(null[0])
        raise DataValidationError(f"missing ticker {where(row)}", row=row)
    raw_codes, raw_names = pd.factorize(column)
    canonical = []
    for i, name in enumerate(raw_names):
        try:
            canonical.append(validate_ticker(name))
        except DataValidationError as exc:
            row = int(np.flatnonzero(raw_codes == i)[0])
            raise DataValidationError(f"{exc} {where(row)}", ticker=name, row=row) from None
    # 'aapl' and 'AAPL' are one ticker; codes into the sorted names give the output order.
    names, inverse = np.unique(np.asarray(canonical, dtype=object), return_inverse=True)
    return inverse[raw_codes], names


def _parse_dates(column: pd.Series) -> pd.Series:
    """Dates as a datetime64[us] Series with a RangeIndex, NaT where unreadable."""
    if isinstance(column.dtype, pd.DatetimeTZDtype):
        raise DataValidationError(
            f"dates carry time zone {column.dtype.tz}; use tz-naive exchange-local days"
        )
    if pd.api.types.is_numeric_dtype(column.dtype) or pd.api.types.is_bool_dtype(column.dtype):
        raise DataValidationError(f"dates are numbers ({column.dtype}), expected dates")
    try:
        parsed = pd.to_datetime(column, errors="coerce", format="ISO8601")
    except (TypeError, ValueError) as exc:  # e.g. mixed UTC offsets in strings
        raise DataValidationError(f"dates cannot be read: {exc}") from None
    if isinstance(parsed.dtype, pd.DatetimeTZDtype):
        raise DataValidationError("dates carry UTC offsets; use tz-naive exchange-local days")
    return parsed.astype(DATE_DTYPE).reset_index(drop=True)
