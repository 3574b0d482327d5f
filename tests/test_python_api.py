"""The Python API: predict's horizon, levels and adaptive state, score, regimes, plots and the backtest."""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

import forecaster  # noqa: E402
from conftest import random_walk_bars  # noqa: E402
from forecaster.config import ClusterConfig, ExpertConfig, ForecasterConfig, TrainConfig, WindowConfig  # noqa: E402
from forecaster.features.windows import latest_windows, make_windows  # noqa: E402
from forecaster.model import FuzzyLSTMForecaster  # noqa: E402

CONFIG = ForecasterConfig(  # tests/conftest.py's tiny_config, for a model fitted once per module
    window=WindowConfig(window=10, horizon=3),
    cluster=ClusterConfig(n_clusters=2),
    expert=ExpertConfig(hidden_size=8),
    train=TrainConfig(epochs=2, batch_size=64, device="cpu", fine_tune_epochs=1),
)


@pytest.fixture(scope="module")
def bars() -> pd.DataFrame:
    return pd.concat(
        [random_walk_bars(300, "AAA", seed=1), random_walk_bars(300, "BBB", seed=2)], ignore_index=True
    )


@pytest.fixture(scope="module")
def model(bars) -> FuzzyLSTMForecaster:
    return FuzzyLSTMForecaster(CONFIG).fit(bars, progress=False)


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def quantile_columns(frame: pd.DataFrame) -> list[str]:
    return [c for c in frame.columns if c.startswith("quantile_")]


def test_default_predict_is_the_forecast_table_plus_each_tickers_regime(model, bars):
    table = model.predict(bars)
    windows = latest_windows(bars, CONFIG.window)
    before = model.to_frame(windows, model.predict_windows(windows))  # what predict(bars) returned
    pd.testing.assert_frame_equal(table.drop(columns=["regime", "regime_label"]), before, check_exact=True)
    dominant = table[["u_0", "u_1"]].to_numpy().argmax(axis=1)
    np.testing.assert_array_equal(table["regime"], dominant)
    assert list(table["regime_label"]) == [model.regime_labels_[k] for k in dominant]


def test_horizon_keeps_the_first_steps_and_names_the_models_horizon_when_wrong(model, bars):
    full = model.predict(bars)
    two = model.predict(bars, horizon=2)
    pd.testing.assert_frame_equal(two, full[full["horizon"] <= 2].reset_index(drop=True))
    for wrong in (0, 4, 2.5):
        with pytest.raises(ValueError, match=r"from 1 to 3 \(this model's H\)"):
            model.predict(bars, horizon=wrong)


def test_levels_are_exact_when_known_and_interpolated_between_neighbours_otherwise(model, bars):
    full = model.predict(bars)
    table = model.predict(bars, levels=[0.9, 0.3, 0.1])
    assert quantile_columns(table) == ["quantile_0.1", "quantile_0.3", "quantile_0.9"]
    np.testing.assert_array_equal(table["quantile_0.1"], full["quantile_0.1"])
    np.testing.assert_array_equal(table["quantile_0.9"], full["quantile_0.9"])
    assert (full["quantile_0.25"] < table["quantile_0.3"]).all()
    assert (table["quantile_0.3"] < full["quantile_0.5"]).all()
    # Beyond the model's outermost level: further out than it, like a normal's tail (where the
    # tiny model's two outermost quantiles differ at all).
    beyond = model.predict(bars, levels=[0.999])["quantile_0.999"] - full["quantile_0.99"]
    spread = full["quantile_0.99"] - full["quantile_0.975"]
    assert (beyond >= 0).all() and (beyond[spread > 0] > 0).all() and (spread > 0).any()
    with pytest.raises(ValueError, match=r"strictly between 0 and 1, got \[0, 1.5\]"):
        model.predict(bars, levels=[0.1, 0, 1.5])


def test_score_is_evaluate_on_the_labelled_windows_of_new_bars(model, bars):
    scores = model.score(bars)
    assert isinstance(scores, pd.Series)
    expected = model.evaluate(make_windows(bars, CONFIG.window))
    assert scores.to_dict() == pytest.approx(expected)
    assert {"rmse", "naive_rmse", "theil_u", "coverage_80", "pinball"} <= set(scores.index)
    other = random_walk_bars(200, "CCC", seed=5, vol=0.03)  # three times as volatile: wider misses
    assert model.score(other)["rmse"] != pytest.approx(scores["rmse"])


def test_regimes_give_every_windows_memberships_and_named_regime(model, bars):
    frame = model.regimes(bars)
    assert len(frame) == len(make_windows(bars, CONFIG.window, labelled=False))
    np.testing.assert_allclose(frame[["u_0", "u_1"]].sum(axis=1), 1.0, rtol=1e-5)
    assert set(frame["regime_label"]) <= set(model.regime_labels_)
    # The latest window's memberships are the forecast's.
    last = frame.groupby("ticker").tail(1).set_index("ticker")[["u_0", "u_1"]]
    first = model.predict(bars).groupby("ticker").head(1).set_index("ticker")[["u_0", "u_1"]]
    pd.testing.assert_frame_equal(last, first)


def test_fan_chart_draws_a_band_per_pair_of_levels_and_the_point(model, bars):
    table = model.predict(bars)
    ax = forecaster.plot_fan(table, "AAA", bars)
    assert isinstance(ax, matplotlib.axes.Axes)
    pairs = 5  # 0.01/0.99, 0.025/0.975, 0.05/0.95, 0.1/0.9, 0.25/0.75
    assert len(ax.collections) == pairs
    assert len(ax.lines) == 3  # closes, the median path, the as-of marker
    bare = forecaster.plot_fan(table[table["ticker"] == "BBB"], ax=plt.subplots()[1])  # the only ticker
    assert len(bare.lines) == 2 and len(bare.collections) == pairs
    assert len(forecaster.plot_fan(model.predict(bars, levels=[0.1, 0.9]), "AAA").collections) == 1
    with pytest.raises(ValueError, match="'ZZZ' is not in the frame; it has AAA, BBB"):
        forecaster.plot_fan(table, "ZZZ")


def test_membership_chart_stacks_one_area_per_cluster_named_by_regime(model, bars):
    top, bottom = forecaster.plot_memberships(model.regimes(bars), "BBB", model.regime_labels_)
    assert len(top.lines) == 1 and len(bottom.collections) == 2
    assert [t.get_text() for t in bottom.get_legend().get_texts()] == list(model.regime_labels_)


def test_backtest_model_gives_the_report_tables_of_every_model(model, bars):
    bt = forecaster.backtest_model(model, bars, start="2010-12-01", refit_every=500)
    assert list(bt.summary["model"].astype(str)) == ["naive", "fuzzy"]
    assert {"by_horizon", "dm_tests", "reliability"} <= set(bt.tables)
    assert set(bt.forecasts["model"].astype(str)) == {"naive", "fuzzy"}
    left, right = bt.plot()
    assert len(left.lines) == 2 and len(right.lines) == 2 + 1  # a line per model, Theil's U = 1
    assert forecaster.evaluation.backtest_model is forecaster.backtest_model


def test_adaptive_state_serves_nominal_quantiles_until_outcomes_move_it(model, bars):
    state = model.aci_state(gamma=0.05)
    served = model.predict(bars, adaptive=state)
    plain = model.predict(bars)
    pd.testing.assert_frame_equal(served, plain, check_exact=True)  # nothing learnt: nominal levels
    # Every outcome far above the upper quantile: the working levels rise, so do the quantiles.
    closes = served.assign(date=served["target_date"], adj_close=2 * served["quantile_0.99"])
    assert model.update_aci(state, served, closes[["ticker", "date", "adj_close"]]) == len(served)
    after = model.predict(bars, adaptive=state)
    # (0.9 and 0.95, unlike the tiny model's outermost levels, differ: a higher level moves the quantile.)
    assert (after["quantile_0.9"] > plain["quantile_0.9"]).all()
    assert (after["upper_80"] > plain["upper_80"]).all()
    assert (after[quantile_columns(after)].to_numpy() >= plain[quantile_columns(plain)].to_numpy()).all()
    np.testing.assert_array_equal(after["forecast"], plain["forecast"])  # ACI moves the quantiles only
    assert state.to_records()[0]["working_level"] > state.to_records()[0]["level"]


def test_an_adaptive_state_of_another_model_or_a_table_without_every_level_is_refused(model, bars):
    other = forecaster.ACIState((0.1, 0.5, 0.9), horizon=3)
    with pytest.raises(ValueError, match=r"levels \(0.1, 0.5, 0.9\) and horizon 3.*model.aci_state\(\)"):
        model.predict(bars, adaptive=other)
    some = model.predict(bars, levels=[0.1, 0.9])
    with pytest.raises(ValueError, match=r"lack \['quantile_0.01'"):
        model.update_aci(model.aci_state(), some, bars)
