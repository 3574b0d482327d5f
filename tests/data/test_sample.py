"""The bundled sample (arch's S&P 500 and NASDAQ Composite data)."""

from __future__ import annotations

import pandas as pd
import pytest

from forecaster.data import SAMPLE_TICKERS, DataSourceError, load_sample, validate_bars


@pytest.fixture(scope="module")
def sample() -> pd.DataFrame:
    return load_sample()


def test_sample_has_both_indices_1999_to_2018(sample):
    spans = sample.groupby("ticker")["date"].agg(["min", "max", "size"])
    assert spans.index.tolist() == sorted(SAMPLE_TICKERS) == ["^GSPC", "^IXIC"]
    assert (spans["min"] == pd.Timestamp("1999-01-04")).all()
    assert (spans["max"] == pd.Timestamp("2018-12-31")).all()
    assert spans["size"].tolist() == [5031, 5031]


def test_sample_passes_validation_unchanged(sample):
    pd.testing.assert_frame_equal(validate_bars(sample, min_rows=5031), sample)


def test_sample_quirks_stated_in_the_docstring_hold(sample):
    # Price indices: no dividends, so adj_close == close; NASDAQ reports two zero-volume days.
    assert (sample["adj_close"] == sample["close"]).all()
    zero = sample[sample["volume"] == 0]
    assert zero["ticker"].tolist() == ["^IXIC", "^IXIC"]
    assert zero["date"].dt.strftime("%Y-%m-%d").tolist() == ["2015-05-12", "2018-01-09"]


def test_sample_loads_one_ticker_case_insensitively():
    assert load_sample("^ixic")["ticker"].unique().tolist() == ["^IXIC"]


def test_unknown_sample_ticker_lists_the_available_ones():
    with pytest.raises(DataSourceError, match=r"no sample data for AAPL; the sample has \^GSPC, \^IXIC"):
        load_sample(["^GSPC", "AAPL"])
