"""The report's evidence tables tell a calibrated model from a too-narrow one: MCS, wins, VaR tests, Basel."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from forecaster.evaluation.evidence import evidence_tables, traffic_light_shares

LEVELS = (0.01, 0.025, 0.05, 0.1, 0.5, 0.9, 0.95, 0.975, 0.99)


def backtest_frame(n_days: int = 600, tickers=("AAA", "BBB", "CCC"), seed: int = 0) -> pd.DataFrame:
    """1-day forecasts of N(0, 1%) returns by a calibrated model and one whose quantiles are 40% too narrow."""
    rng = np.random.default_rng(seed)
    origins = pd.bdate_range("2015-01-01", periods=n_days)
    z = stats.norm.ppf(LEVELS)
    parts = []
    for ticker in tickers:
        y = rng.normal(0, 0.01, n_days)
        for model, scale in (("calibrated", 0.01), ("narrow", 0.006)):
            frame = pd.DataFrame(
                {
                    "model": model,
                    "ticker": ticker,
                    "origin": origins,
                    "horizon": 1,
                    "last_price": 100.0,
                    "actual": 100.0 * np.exp(y),
                    "actual_log_return": y,
                }
            )
            for level, score in zip(LEVELS, z, strict=True):
                frame[f"q_{level:g}"] = scale * score
            parts.append(frame)
    return pd.concat(parts, ignore_index=True)


def test_evidence_keeps_the_calibrated_model_and_rejects_the_narrow_one():
    tables = evidence_tables(backtest_frame())
    mcs = tables["mcs"].set_index("model")
    assert mcs.loc["calibrated", "included"] and not mcs.loc["narrow", "included"]
    wins = tables["wins"].set_index("model")["wins"]
    assert wins["calibrated"] == 3 and wins["narrow"] == 0
    summary = tables["var_summary"].set_index(["model", "alpha", "tail"])
    assert summary.loc[("calibrated", 0.05, "lower"), "kupiec_pass"] >= 2 / 3
    assert summary.loc[("narrow", 0.05, "lower"), "kupiec_pass"] == 0
    assert summary.loc[("narrow", 0.05, "lower"), "rate"] > 0.1  # a 5% VaR 40% too tight breaks ~12%
    assert summary.loc[("narrow", 0.05, "lower"), "kupiec_pooled_p"] < 1e-6
    assert summary.loc[("calibrated", 0.05, "lower"), "kupiec_pooled_p"] > 0.01
    assert len(tables["var_tests"]) == 2 * 3 * 3 * 2  # models x tickers x alphas x tails


def test_traffic_light_counts_rolling_windows_per_model_and_ticker():
    frame = backtest_frame(n_days=1000)
    lights = evidence_tables(frame)["traffic_light"]
    assert set(lights["windows"]) == {1000 - 250 + 1}
    shares = traffic_light_shares(lights).set_index("model")
    assert shares.loc["calibrated", "green"] > 0.75  # P(<= 4 of 250 at 1%) = 0.89 per window
    assert (
        shares.loc["calibrated", "red"] == 0 and shares.loc["narrow", "red"] > 0.9
    )  # 1% VaR 40% too tight: ~7% exceptions, 17 in 250 days


def test_without_a_one_percent_quantile_there_is_no_traffic_light():
    frame = backtest_frame(n_days=300).drop(columns=["q_0.01", "q_0.99"])
    assert evidence_tables(frame)["traffic_light"].empty


def test_es_backtest_keeps_the_calibrated_tail_and_rejects_the_narrow_one():
    frame = backtest_frame(n_days=800)
    tables = evidence_tables(frame)
    tests = tables["es_tests"].set_index(["model", "ticker"])
    assert len(tests) == 2 * 3 and (tests["n"] == 800).all()
    one = frame[(frame["model"] == "narrow") & (frame["ticker"] == "AAA")]
    assert tests.loc[("narrow", "AAA"), "violations"] == (one["actual_log_return"] < one["q_0.025"]).sum()
    summary = tables["es_summary"].set_index("model")
    assert summary.loc["calibrated", "z2_pass"] >= 2 / 3 and summary.loc["calibrated", "pooled_p"] > 0.05
    assert summary.loc["narrow", "z2_pass"] == 0 and summary.loc["narrow", "pooled_p"] < 0.01
    assert summary.loc["narrow", "mean_z2"] < -1 < summary.loc["calibrated", "mean_z2"]
    # The pooled Z2 is the n-weighted mean of the tickers' (equal n here: their mean).
    assert summary.loc["narrow", "pooled_z2"] == pytest.approx(tests.loc["narrow", "z2"].mean())
