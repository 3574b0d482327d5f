"""Probabilistic scores of backtest rows: hand-computed pinball and Winkler, conditional coverage,
reliability, DM tests on the pinball loss, and the report's tables and plots."""

import numpy as np
import pandas as pd
import pytest

from forecaster.evaluation.backtest import BacktestResult
from forecaster.evaluation.report import summary_table, write_report
from forecaster.evaluation.scoring import (
    conditional_coverage,
    dm_tests,
    reliability,
    row_pinball,
    score,
    volatility_terciles,
)


def test_score_gives_pinball_winkler_and_coverage_by_hand():
    y = np.array([0.01, 0.03])
    frame = pd.DataFrame(
        {
            "model": "m",
            "last_price": 100.0,
            "actual": 100 * np.exp(y),
            "forecast": 100.0,
            "mase_scale": 1.0,
            "lower_80": 100 * np.exp(-0.02),
            "upper_80": 100 * np.exp(0.02),
            "q_0.1": -0.02,
            "q_0.5": 0.0,
            "q_0.9": 0.02,
        }
    )
    # y=0.01: 0.1*0.03, 0.5*0.01, 0.1*0.01 -> 0.009/3; y=0.03: 0.1*0.05, 0.5*0.03, 0.9*0.01 -> 0.029/3
    np.testing.assert_allclose(row_pinball(frame), [0.003, 0.029 / 3])
    row = score(frame).iloc[0]
    assert row["pinball"] == pytest.approx(0.038 / 6)
    # width 0.04 both; the second misses by 0.01 above: + 2/0.2 * 0.01
    assert row["winkler_80"] == pytest.approx((0.04 + 0.14) / 2)
    assert row["coverage_80"] == 0.5


def backtest_rows(n_origins=60, tickers=("AAA", "BBB"), models=("garch", "fuzzy", "naive"), seed=0):
    """Fake backtest rows: horizon 1..2, quantiles of N(0, vol^2) where vol is the origin's volatility."""
    rng = np.random.default_rng(seed)
    origins = pd.bdate_range("2015-06-01", periods=n_origins)
    rows = []
    for t in tickers:
        vol = rng.uniform(0.005, 0.03, n_origins)
        regime = (vol > 0.015).astype(int)
        for h in (1, 2):
            y = rng.normal(0, vol * np.sqrt(h))
            for k, model in enumerate(models):
                scale = vol * np.sqrt(h) * (1 + 0.3 * k)  # later models are too wide
                part = pd.DataFrame(
                    {
                        "model": model, "ticker": t, "origin": origins, "horizon": h,
                        "last_price": 50.0, "actual": 50 * np.exp(y), "forecast": 50.0, "mase_scale": 1.0,
                        "realized_vol": vol, "year": origins.year, "regime": regime,
                        "lower_80": 50 * np.exp(-1.2816 * scale), "upper_80": 50 * np.exp(1.2816 * scale),
                    }
                )  # fmt: skip
                if model != "naive":  # a model without quantiles
                    for level, z in ((0.1, -1.2816), (0.5, 0.0), (0.9, 1.2816)):
                        part[f"q_{level:g}"] = z * scale
                rows.append(part)
    frame = pd.concat(rows, ignore_index=True)
    frame["model"] = pd.Categorical(frame["model"], categories=list(models), ordered=True)
    return frame


def test_volatility_terciles_split_every_ticker_into_equal_thirds():
    frame = backtest_rows()
    terciles = volatility_terciles(frame)
    per = (
        frame.assign(t=terciles).drop_duplicates(["ticker", "origin"]).groupby(["ticker", "t"], observed=True)
    )
    assert (per.size() == 20).all() and len(per.size()) == 6  # 60 origins / 3, for both tickers
    # Within a ticker the high tercile is more volatile than the low one.
    vols = frame.assign(t=terciles).groupby(["ticker", "t"], observed=True)["realized_vol"]
    assert (vols.min().xs("high", level="t") > vols.max().xs("low", level="t")).all()


def test_conditional_coverage_has_one_row_per_tercile_regime_and_year():
    table = conditional_coverage(backtest_rows())
    terciles = table[table["condition"] == "vol_tercile"]
    assert len(terciles) == 3 * 3 and set(terciles["group"]) == {"low", "mid", "high"}
    assert (terciles.groupby("model", observed=True).size() == 3).all()
    assert (terciles["n"] == 2 * 20 * 2).all()  # tickers x origins per tercile x horizons
    assert set(table["condition"]) == {"vol_tercile", "regime", "year"}
    assert terciles[terciles["model"] == "naive"]["pinball"].isna().all()
    assert terciles[terciles["model"] == "garch"]["coverage_80"].between(0.6, 0.95).all()


def test_reliability_gives_the_share_below_each_level_for_models_with_quantiles():
    frame = backtest_rows()
    table = reliability(frame)
    assert set(table["model"]) == {"garch", "fuzzy"} and sorted(table["level"].unique()) == [0.1, 0.5, 0.9]
    g = frame[frame["model"] == "garch"]
    y = np.log(g["actual"] / g["last_price"])
    expected = (y <= g["q_0.9"]).mean()
    assert table.set_index(["model", "level"]).loc[("garch", 0.9), "observed"] == pytest.approx(expected)


def test_dm_tests_on_pinball_average_the_differential_over_tickers():
    frame = backtest_rows()
    tests = dm_tests(frame, references=["garch"], loss="pinball")
    assert set(tests["model"]) == {"fuzzy"} and (tests["loss"] == "pinball").all()  # naive has no quantiles
    loss = frame.assign(loss=row_pinball(frame)).pivot_table(
        index=["ticker", "origin", "horizon"], columns="model", values="loss", observed=True
    )
    diff = (loss["fuzzy"] - loss["garch"]).groupby(level="origin").mean()
    overall = tests[tests["horizon"] == "all"].iloc[0]
    assert overall["mean_loss_diff"] == pytest.approx(diff.mean()) and overall["mean_loss_diff"] > 0
    with pytest.raises(ValueError, match="loss must be"):
        dm_tests(frame, loss="crps")


def test_report_has_the_probabilistic_columns_conditional_tables_and_plots(tmp_path):
    frame = backtest_rows()
    frame["fold"], frame["target_date"] = 0, frame["origin"] + pd.Timedelta(days=1)
    result = BacktestResult(frame, pd.DataFrame(), pd.DataFrame({"fold": [0]}))
    summary = summary_table(result).set_index("model")
    assert {"pinball_x1e4", "winkler_80_x1e4", "dm_p_pinball_vs_garch"} <= set(summary.columns)
    assert summary.loc["garch", "pinball_x1e4"] == pytest.approx(
        1e4 * row_pinball(frame[frame["model"] == "garch"]).mean()
    )
    assert summary.loc["fuzzy", "dm_p_pinball_vs_garch"] < 0.05 and np.isnan(
        summary.loc["naive", "dm_p_pinball_vs_garch"]
    )
    paths = write_report(result, tmp_path)
    text = paths["report"].read_text()
    assert "Conditional coverage (80% interval)" in text and "| vol_tercile | high |" in text
    assert (
        paths["reliability_plot"].stat().st_size > 10_000 and paths["coverage_plot"].stat().st_size > 10_000
    )


def test_a_backtest_of_point_forecasts_only_still_reports(tmp_path):
    frame = backtest_rows(models=("naive",))
    frame["fold"], frame["target_date"] = 0, frame["origin"] + pd.Timedelta(days=1)
    assert reliability(frame).empty and dm_tests(frame, ["garch"], loss="pinball").empty
    paths = write_report(BacktestResult(frame, pd.DataFrame(), pd.DataFrame({"fold": [0]})), tmp_path)
    assert "reliability_plot" not in paths and paths["coverage_plot"].is_file()


def test_score_gives_quantile_crps_and_weighted_interval_score_by_hand():
    y = np.array([0.01, 0.03])
    frame = pd.DataFrame(
        {
            "model": "m",
            "last_price": 100.0,
            "actual": 100 * np.exp(y),
            "forecast": 100.0,
            "mase_scale": 1.0,
            "q_0.1": -0.02,
            "q_0.5": 0.0,
            "q_0.9": 0.02,
        }
    )
    row = score(frame).iloc[0]
    # crps = 2 / Q * summed pinball: 2 * (0.009 / 3 + 0.029 / 3) / 2 rows
    assert row["crps"] == pytest.approx(2 * 0.038 / 6)
    # WIS (K = 1, alpha 0.2): (|y - m| / 2 + 0.1 * IS_80) / 1.5; IS = 0.04, then 0.04 + 10 * 0.01
    wis = [(0.01 / 2 + 0.1 * 0.04) / 1.5, (0.03 / 2 + 0.1 * 0.14) / 1.5]
    assert row["wis"] == pytest.approx(np.mean(wis))
    assert row["wis"] == pytest.approx(row["crps"])  # symmetric levels: WIS is the quantile CRPS
    # Without the median or a mirrored pair there is no WIS; without quantiles, neither score.
    assert np.isnan(score(frame.drop(columns="q_0.5")).iloc[0]["wis"])
    none = score(frame.drop(columns=["q_0.1", "q_0.5", "q_0.9"])).iloc[0]
    assert np.isnan(none["crps"]) and np.isnan(none["wis"])
