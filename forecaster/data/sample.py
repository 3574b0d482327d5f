"""The bundled sample: daily S&P 500 and NASDAQ Composite bars, 1999-01-04 to 2018-12-31.

The data ship with the `arch` package (Yahoo Finance downloads), so they work offline. Being
price indices, their adj_close equals close; NASDAQ's volume is 0 on 2015-05-12 and 2018-01-09.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable

import pandas as pd

from forecaster.data.layout import bars_from_frame
from forecaster.data.validation import DataSourceError, ticker_list, validate_bars

# arch.data's modules, imported when loaded: importing arch costs ~0.6 s (it pulls matplotlib),
# which every job importing forecaster.data would otherwise pay.
_LOADERS = {"^GSPC": "arch.data.sp500", "^IXIC": "arch.data.nasdaq"}
SAMPLE_TICKERS = tuple(_LOADERS)


def load_sample(tickers: str | Iterable[str] | None = None) -> pd.DataFrame:
    """Validated bars of the sample `tickers` (default: all of `SAMPLE_TICKERS`)."""
    wanted = list(SAMPLE_TICKERS) if tickers is None else ticker_list(tickers)
    unknown = [t for t in wanted if t not in _LOADERS]
    if unknown:
        raise DataSourceError(
            f"no sample data for {', '.join(unknown)}; the sample has {', '.join(SAMPLE_TICKERS)}"
        )
    return validate_bars(
        pd.concat([bars_from_frame(importlib.import_module(_LOADERS[t]).load(), t) for t in wanted])
    )
