"""Risk and ranks from a fitted model: one joint simulation of the latest windows of every ticker."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from conftest import random_walk_bars
from forecaster.config import ClusterConfig, ExpertConfig, ForecasterConfig, TrainConfig, WindowConfig
from forecaster.model import FuzzyLSTMForecaster
from forecaster.products import joint_draws, rank_table, risk_tables

TICKERS = ["AAA", "BBB", "CCC", "DDD", "EEE", "FFF"]


@pytest.fixture(scope="module")
def universe() -> pd.DataFrame:
    vols = np.linspace(0.005, 0.03, len(TICKERS))  # calm to wild, so ranks have something to say
    return pd.concat(
        [random_walk_bars(260, t, seed=i, vol=v) for i, (t, v) in enumerate(zip(TICKERS, vols, strict=True))],
        ignore_index=True,
    )


@pytest.fixture(scope="module")
def model(universe) -> FuzzyLSTMForecaster:
    config = ForecasterConfig(
        window=WindowConfig(window=10, horizon=3),
        cluster=ClusterConfig(n_clusters=2),
        expert=ExpertConfig(hidden_size=8),
        train=TrainConfig(epochs=1, batch_size=64, device="cpu", fine_tune_epochs=0),
    )
    return FuzzyLSTMForecaster(config).fit(universe, progress=False)


def test_risk_tables_hold_every_ticker_and_alpha_and_components_sum_to_the_portfolio_es(model, universe):
    joint = joint_draws(model, universe, horizon=3, n_paths=4000, seed=1)
    assert joint.draws.shape == (4000, len(TICKERS)) and joint.as_of == universe["date"].max()
    tickers, portfolio = risk_tables(joint, alphas=(0.01, 0.05))
    assert len(tickers) == len(TICKERS) * 2 and list(portfolio["alpha"]) == [0.01, 0.05]
    sums = tickers.groupby("alpha")["component_es"].sum().to_numpy()
    np.testing.assert_allclose(sums, portfolio["es"].to_numpy(), rtol=1e-12)
    assert (tickers["es"] >= tickers["var"]).all() and (portfolio["es"] >= portfolio["var"]).all()
    # The wildest stock carries more risk than the calmest at the same alpha.
    at = tickers[tickers["alpha"] == 0.05].set_index("ticker")
    assert at.loc["FFF", "var"] > at.loc["AAA", "var"]


def test_a_portfolio_of_one_ticker_has_that_tickers_var_and_es(model, universe):
    joint = joint_draws(model, universe, horizon=2, n_paths=3000, seed=2)
    tickers, portfolio = risk_tables(joint, weights={"CCC": 1.0}, alphas=(0.05,))
    ccc = tickers[tickers["ticker"] == "CCC"].iloc[0]
    assert portfolio["var"].iloc[0] == pytest.approx(ccc["var"]) and portfolio["es"].iloc[0] == pytest.approx(
        ccc["es"]
    )


def test_rank_table_is_in_m6_layout_with_rows_summing_to_one(model, universe):
    table = rank_table(joint_draws(model, universe, horizon=3, n_paths=2000))
    assert list(table.columns) == ["ID", "Rank1", "Rank2", "Rank3", "Rank4", "Rank5"]
    np.testing.assert_allclose(table.iloc[:, 1:].sum(axis=1), 1.0)
    # Volatile stocks land in the outer quintiles more often than calm ones.
    outer = table.set_index("ID")[["Rank1", "Rank5"]].sum(axis=1)
    assert outer["FFF"] > outer["AAA"]


def test_bad_requests_name_what_is_wrong(model, universe):
    with pytest.raises(ValueError, match="horizon 9 is outside 1..3"):
        joint_draws(model, universe, horizon=9)
    with pytest.raises(ValueError, match="no bars for ticker.*ZZZ"):
        joint_draws(model, universe, horizon=1, tickers=["AAA", "ZZZ"])
    stale = universe[~((universe["ticker"] == "BBB") & (universe["date"] == universe["date"].max()))]
    with pytest.raises(ValueError, match="BBB \\(last bar"):
        joint_draws(model, stale, horizon=1)
    joint = joint_draws(model, universe, horizon=1, tickers=TICKERS[:3], n_paths=500)
    with pytest.raises(ValueError, match="at least 5 tickers"):
        rank_table(joint)
    with pytest.raises(ValueError, match="not in the portfolio: ZZZ"):
        risk_tables(joint, weights={"ZZZ": 1.0})


def test_the_model_offers_risk_and_rank_with_the_same_seeded_numbers(model, universe):
    tickers, portfolio = model.risk(universe, weights={"AAA": 0.5, "FFF": 0.5}, alphas=(0.05,), n_paths=1000)
    joint = joint_draws(model, universe, horizon=3, n_paths=1000)  # horizon defaults to the model's H
    expected = risk_tables(joint, weights={"AAA": 0.5, "FFF": 0.5}, alphas=(0.05,))
    pd.testing.assert_frame_equal(tickers, expected[0])
    pd.testing.assert_frame_equal(portfolio, expected[1])
    assert set(tickers.loc[tickers["weight"] == 0, "ticker"]) == {"BBB", "CCC", "DDD", "EEE"}
    pd.testing.assert_frame_equal(model.rank(universe, horizon=3, n_paths=1000), rank_table(joint))


def test_the_portfolio_loss_draws_give_the_portfolio_var(model, universe):
    from forecaster.products import portfolio_losses

    joint = joint_draws(model, universe, horizon=2, n_paths=2000, seed=3)
    losses = portfolio_losses(joint, {"BBB": 1.0})
    _, portfolio = risk_tables(joint, weights={"BBB": 1.0}, alphas=(0.05,))
    assert np.sort(losses)[::-1][99] == pytest.approx(portfolio["var"].iloc[0])


def test_daily_returns_are_each_tickers_own_and_span_a_missing_day(universe):
    from forecaster.products import daily_returns

    gap = universe[~((universe["ticker"] == "AAA") & (universe.index % 260 == 100))]
    wide = daily_returns(gap)
    aaa = gap[gap["ticker"] == "AAA"]
    assert wide["AAA"].dropna().to_numpy() == pytest.approx(np.diff(np.log(aaa["adj_close"].to_numpy())))
    assert wide["AAA"].isna().sum() == 1  # the missing day (the first has no return in any ticker)


def test_served_working_levels_move_their_tickers_marginal_and_no_other(model, universe):
    """The batch job simulates from the quantiles it serves (ACI working levels), not the nominal ones."""
    from forecaster.calibration.aci import ACIState
    from forecaster.features.windows import latest_windows
    from forecaster.products import daily_returns, simulate_joint

    windows, returns = latest_windows(universe, model.config.window), daily_returns(universe)
    nominal = simulate_joint(model, windows, returns, n_paths=2000)
    state = ACIState(model.levels, model.config.window.horizon)
    state.working["AAA"] = 0.5 + 0.5 * (state.levels_of("AAA") - 0.5)  # AAA served narrower
    served = simulate_joint(model, windows, returns, n_paths=2000, state=state)
    aaa = list(served.tickers).index("AAA")
    others = [i for i in range(len(served.tickers)) if i != aaa]
    np.testing.assert_array_equal(served.draws[:, others], nominal.draws[:, others])
    var = lambda joint: risk_tables(joint, alphas=(0.05,))[0].set_index("ticker")["var"]  # noqa: E731
    assert var(served)["AAA"] < 0.8 * var(nominal)["AAA"]


def test_ranks_ignore_each_tickers_drift_unless_asked_to_keep_it(model, universe):
    """Served ranks read spread, tails and co-movement, not the median forecasts (no skill over naive)."""
    import dataclasses

    joint = joint_draws(model, universe, n_paths=2000)
    shifted = dataclasses.replace(joint, draws=joint.draws + np.linspace(-0.05, 0.05, len(joint.tickers)))
    pd.testing.assert_frame_equal(rank_table(shifted), rank_table(joint))
    kept = rank_table(shifted, drift=True).set_index("ID")
    assert kept.loc["FFF", "Rank5"] > rank_table(joint).set_index("ID").loc["FFF", "Rank5"] + 0.1
