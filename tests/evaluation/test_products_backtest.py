"""The products backtest: causal ranks and VaR, non-overlapping periods, M6 scores, lined-up exceedances."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from conftest import bars_from_returns
from forecaster.config import ClusterConfig, ExpertConfig, ForecasterConfig, TrainConfig, WindowConfig
from forecaster.evaluation.products_backtest import (
    RANK_COLUMNS,
    backtest_products,
    paired_rps,
    period_starts,
    rps_by_year,
    var_table,
    yearly_folds,
)

TICKERS = ["AAA", "BBB", "CCC", "DDD", "EEE"]  # 5 divides N: uniform probabilities score exactly 0.16
H = 20
START = "2012-06-01"


def _bars(seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    market = rng.normal(0, 0.008, 900)
    parts = [
        bars_from_returns(market + rng.normal(0, vol, 900), ticker)
        for ticker, vol in zip(TICKERS, np.linspace(0.005, 0.02, len(TICKERS)), strict=True)
    ]
    return pd.concat(parts, ignore_index=True)  # 2010-01-04 .. 2013-06, sorted by ticker and date


def _config() -> ForecasterConfig:
    return ForecasterConfig(
        window=WindowConfig(window=10, horizon=H),
        cluster=ClusterConfig(n_clusters=2),
        expert=ExpertConfig(hidden_size=8),
        train=TrainConfig(epochs=1, batch_size=128, device="cpu", fine_tune_epochs=0),
    )


def _run(bars: pd.DataFrame):
    return backtest_products(bars, _config(), start=START, n_paths=500, seed=0)


@pytest.fixture(scope="module")
def bars() -> pd.DataFrame:
    return _bars()


@pytest.fixture(scope="module")
def result(bars):
    return _run(bars)


def test_folds_refit_on_each_years_first_origin_and_periods_do_not_overlap(bars, result):
    plan = yearly_folds(bars, _config().window, start=START)
    assert [str(f.refit) for f in plan.folds] == ["2012-06-01", "2013-01-01"]
    starts = period_starts(plan.origins, H)
    position = np.searchsorted(plan.origins, starts)
    assert (np.diff(position) == H).all()  # every period is H trading days, the next starts where it ends
    periods = result.periods
    assert list(periods["as_of"]) == list(pd.to_datetime(starts))
    # each period ends on the H-th trading day after its start: the next period's start
    assert (periods["end"].iloc[:-1].to_numpy() == periods["as_of"].iloc[1:].to_numpy()).all()
    assert len(result.days) == len(plan.origins) and set(result.days["fold"]) == {0, 1}


def test_uniform_probabilities_score_m6s_016_through_the_backtest(result):
    np.testing.assert_allclose(result.periods["rps_uniform"], 0.16, atol=1e-12)
    table = rps_by_year(result.periods).set_index("year")
    assert table.loc["all", "uniform"] == pytest.approx(0.16) and table.loc["all", "periods"] == len(
        result.periods
    )
    assert list(table.index) == ["2012", "2013", "all"]
    for source in ("model", "factor"):
        assert 0 < table.loc["all", source] < 0.5 and table.loc["all", f"{source}_se"] > 0
    pair = paired_rps(result.periods)
    assert pair["mean_diff"] == pytest.approx(
        (result.periods["rps_model"] - result.periods["rps_factor"]).mean()
    )
    assert 0 <= pair["dm_p"] <= 1


def test_forecasts_at_t_do_not_change_when_bars_after_t_do(bars, result):
    t = result.periods["as_of"].iloc[-3]
    assert t > pd.Timestamp("2013-01-01")  # in the second fold, after its refit: its fit reads the same bars
    later = bars["date"] > t
    noise = np.random.default_rng(9).normal(0, 0.05, later.sum())
    factor = pd.Series(np.exp(noise), index=bars.index[later]).groupby(bars.loc[later, "ticker"]).cumprod()
    changed = bars.copy()
    for column in ("open", "high", "low", "close", "adj_close"):
        changed.loc[later, column] *= factor  # every price of a row scaled alike: the bars stay valid
    again = _run(changed)
    probs = [f"{s}_{c}" for s in ("model", "factor") for c in RANK_COLUMNS]
    before, after = (r.ranks[r.ranks["as_of"] <= t].reset_index(drop=True) for r in (result, again))
    pd.testing.assert_frame_equal(before[probs], after[probs])
    var = [c for c in result.days.columns if c.startswith("var_")]
    same_day = result.days["as_of"] <= t
    pd.testing.assert_frame_equal(result.days.loc[same_day, var], again.days.loc[same_day, var])
    # the outcomes after t did change, so the comparison above could have failed
    assert not np.allclose(result.ranks["realised"], again.ranks["realised"])


def test_var_exceedances_line_up_with_the_next_days_portfolio_return(bars, result):
    wide = bars.pivot(index="date", columns="ticker", values="adj_close")
    next_day = (wide.shift(-1) / wide - 1).mean(axis=1)  # equal weights fixed at t, simple returns
    days = result.days.set_index("as_of")
    np.testing.assert_allclose(days["portfolio_return"], next_day.loc[days.index], rtol=1e-5)
    for alpha in ("0.01", "0.05"):
        assert (days[f"hit_{alpha}"] == (-days["portfolio_return"] > days[f"var_{alpha}"])).all()
    assert (days["var_0.01"] > days["var_0.05"]).all()  # the rarer loss is the larger one


def test_var_table_counts_exceedances_and_tests_them():
    hits = np.zeros(200, dtype=bool)
    hits[[10, 30, 50, 80, 120, 121, 150, 190]] = True  # 8 hits in 200 days, two in a row
    frame = pd.DataFrame({"hit_0.01": hits, "hit_0.05": hits})
    table = var_table(frame, label="1 day").set_index("alpha")
    assert table.loc[0.01, "exceedances"] == 8 and table.loc[0.05, "rate"] == pytest.approx(0.04)
    assert table.loc[0.01, "kupiec_p"] < 0.05 < table.loc[0.05, "kupiec_p"]  # 4% is 4x the 1% rate, near 5%
    assert 0 <= table.loc[0.05, "cc_p"] <= 1
