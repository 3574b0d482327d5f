"""The configured universe: which tickers the jobs ingest, train on and forecast."""

from __future__ import annotations

from forecaster.config import Settings
from forecaster.data.validation import DataValidationError, ticker_list, validate_ticker


def universe_tickers(settings: Settings) -> list[str]:
    """The validated universe: `universe_file`'s tickers when set, else `universe`.

    The file holds one ticker per line; '#' starts a comment.
    """
    if settings.universe_file is None:
        return ticker_list(settings.universe)
    tickers = []
    for number, line in enumerate(settings.universe_file.read_text().splitlines(), start=1):
        symbol = line.split("#", 1)[0].strip()
        if symbol:
            try:
                tickers.append(validate_ticker(symbol))
            except DataValidationError as exc:
                raise DataValidationError(f"{settings.universe_file} line {number}: {exc}") from None
    if not tickers:
        raise DataValidationError(f"{settings.universe_file}: no tickers")
    return list(dict.fromkeys(tickers))
