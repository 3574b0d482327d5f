"""Reversed one-day jumps: bad prints that pass the bar contract but are not market moves."""

from __future__ import annotations

import numpy as np
import pandas as pd

from forecaster.data.quarantine import QuarantineEntry, QuarantineReport

# A reversed jump (see `check_jumps`): a one-day move beyond exp(0.5) = x1.65 or x0.61 that the
# next day undoes to within 25% of its size. NUE on 2007-01-16 (x0.1 and back) is one.
MAX_JUMP = 0.5
JUMP_TOLERANCE = 0.25


def check_jumps(
    bars: pd.DataFrame,
    max_jump: float | None = MAX_JUMP,
    tolerance: float = JUMP_TOLERANCE,
    *,
    quarantine: QuarantineReport | None = None,
) -> pd.DataFrame:
    """Flag one-day jumps that reverse the next day: bad prints, not market moves.

    Day t is flagged in `close` or `adj_close` when |r_t| > `max_jump` (log return from the
    day before) and |r_t + r_t+1| <= `tolerance` * |r_t|, i.e. the next day undoes it. A real
    crash or takeover jump does not come straight back; a price off by x10 for one day
    does. `bars` must be valid (see `validate_bars`); rows are positions in `bars`. Like
    `validate_bars`: raises `DataValidationError` on the first flagged day, or, with a
    `quarantine` report, records each flagged ticker there and returns `bars` without it.
    `max_jump=None` checks nothing.
    """
    if max_jump is None or len(bars) < 3:
        return bars
    dropped: set[str] = set()
    for r, col, price in _reversed_jumps(bars, max_jump, tolerance):
        ticker = str(bars["ticker"].iat[r])
        if ticker in dropped:
            continue
        entry = QuarantineEntry(
            ticker,
            str(bars["date"].iat[r])[:10],
            r,
            f"{col} {price[r]:g} is a one-day jump from {price[r - 1]:g} reversed the next day "
            f"({price[r + 1]:g})",
            f"; a bad print? (|log return| > {max_jump}, back within {tolerance:.0%})",
        )
        if quarantine is None:
            raise entry.error()
        quarantine.add(entry)
        dropped.add(ticker)
    if not dropped:
        return bars
    return bars[~bars["ticker"].isin(dropped)].reset_index(drop=True)


def _reversed_jumps(
    bars: pd.DataFrame, max_jump: float, tolerance: float
) -> list[tuple[int, str, np.ndarray]]:
    """(row, column, that column's prices) of each reversed jump, by row (see `check_jumps`)."""
    codes = pd.factorize(bars["ticker"])[0]
    same = codes[1:] == codes[:-1]  # row i and i + 1 belong to one ticker
    flagged = []
    for col in ("close", "adj_close"):
        price = bars[col].to_numpy(np.float64)
        r = np.where(same, np.diff(np.log(price)), np.nan)  # r[i - 1] is the return into row i
        with np.errstate(invalid="ignore"):
            jump = np.abs(r[:-1]) > max_jump
            back = np.abs(r[:-1] + r[1:]) <= tolerance * np.abs(r[:-1])
        for i in np.flatnonzero(jump & back) + 1:  # rows where the reversed jump lands
            flagged.append((int(i), col, price))
    flagged.sort(key=lambda f: f[0])
    return flagged
