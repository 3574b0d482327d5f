"""Distributional baselines: GARCH-t recovers simulated parameters and covers, EWMA and historical
quantiles are ordered and calibrated on iid data, and nothing after an origin reaches a forecast."""

import numpy as np
import pandas as pd
import pytest

from conftest import bars_from_returns
from forecaster.config import DEFAULT_LEVELS, WindowConfig
from forecaster.evaluation.baselines import (
    EwmaForecaster,
    GarchForecaster,
    HistoricalForecaster,
    NaiveForecaster,
)
from forecaster.features.windows import make_windows

WINDOW = WindowConfig(window=10, horizon=3)


def garch_t_returns(n, omega=0.05, alpha=0.08, beta=0.9, nu=6.0, seed=0) -> np.ndarray:
    """Daily log returns of a GARCH(1,1) with unit-variance Student-t innovations (percent params)."""
    rng = np.random.default_rng(seed)
    z = rng.standard_t(nu, n) * np.sqrt((nu - 2) / nu)
    s, x = omega / (1 - alpha - beta), np.empty(n)
    for t in range(n):
        x[t] = np.sqrt(s) * z[t]
        s = omega + alpha * x[t] ** 2 + beta * s
    return x / 100


def held_out(bars: pd.DataFrame, n_train: int):
    """The training bars, and the labelled windows whose origin lies after them."""
    train = bars.iloc[: n_train + 1]
    windows = make_windows(bars, WINDOW)
    return train, windows.subset(windows.origin > train["date"].iloc[-1].to_datetime64())


def interval_coverage(forecast, windows) -> dict[float, np.ndarray]:
    """Per-horizon share of held-out prices inside each interval."""
    price = windows.target_prices()
    return {c: ((price >= lo) & (price <= hi)).mean(axis=0) for c, (lo, hi) in forecast.intervals.items()}


@pytest.fixture(scope="module")
def garch_bars():
    return bars_from_returns(garch_t_returns(6000, seed=3), "SIM")


def test_garch_recovers_simulated_parameters_and_covers_held_out_days(garch_bars):
    train, test = held_out(garch_bars, 3000)
    model = GarchForecaster(WINDOW, max_obs=3000).fit(train)
    p = model.params_["SIM"]
    assert abs(p["alpha"] - 0.08) < 0.05 and abs(p["beta"] - 0.9) < 0.05, p
    assert 3.5 < p["nu"] < 12, p
    forecast = model.predict_windows(test, bars=garch_bars)
    for level, share in interval_coverage(forecast, test).items():
        assert np.all(np.abs(share - level) < 0.03), (level, share)
    assert np.all(np.diff(forecast.quantiles, axis=2) >= 0)
    np.testing.assert_allclose(forecast.log_return, forecast.quantiles[:, :, DEFAULT_LEVELS.index(0.5)])


def test_garch_variance_filter_matches_arch_forecast(garch_bars):
    """Our causal recursion with the fitted parameters equals arch's own h-step variance forecast."""
    bars = garch_bars.iloc[:3001]
    model = GarchForecaster(WINDOW, max_obs=3000).fit(bars)
    windows = make_windows(bars, WINDOW, labelled=False)
    last = windows.subset(windows.origin == windows.origin.max())
    q = model.predict_windows(last).quantiles[0]  # [H, Q]
    from arch import arch_model

    p = model.params_["SIM"]
    x = 100 * np.diff(np.log(bars["adj_close"].to_numpy()))
    res = arch_model(x, mean="Constant", vol="GARCH", p=1, q=1, dist="t").fix(
        [p["mu"], p["omega"], p["alpha"], p["beta"], p["nu"]]
    )
    variance = np.cumsum(res.forecast(horizon=3, reindex=False).variance.to_numpy()[-1])
    # The 97.5% and 2.5% quantiles are symmetric around h * mu: their spread gives sqrt(V_h).
    spread = (q[:, -1] - q[:, 0]) * 100 / 2
    from scipy import stats

    z = stats.t.ppf(0.975, p["nu"]) * np.sqrt((p["nu"] - 2) / p["nu"])
    np.testing.assert_allclose(spread / z, np.sqrt(variance), rtol=1e-6)


@pytest.mark.parametrize("cls", [EwmaForecaster, HistoricalForecaster])
def test_ewma_and_historical_quantiles_are_ordered_and_calibrated_on_iid_returns(cls):
    returns = np.random.default_rng(7).standard_t(5, 4000) * 0.01
    bars = bars_from_returns(returns, "IID")
    train, test = held_out(bars, 2000)
    forecast = cls(WINDOW).fit(train).predict_windows(test, bars=bars)
    assert forecast.quantiles.shape == (len(test), 3, len(DEFAULT_LEVELS))
    assert np.all(np.diff(forecast.quantiles, axis=2) >= 0)
    for level, share in interval_coverage(forecast, test).items():
        assert np.all(np.abs(share - level) < 0.03), (cls.__name__, level, share)
    # Wider with the horizon, by about sqrt(h) on iid returns.
    width = (forecast.quantiles[:, :, -1] - forecast.quantiles[:, :, 0]).mean(axis=0)
    np.testing.assert_allclose(width / width[0], np.sqrt([1, 2, 3]), rtol=0.1)


@pytest.mark.parametrize("cls", [GarchForecaster, EwmaForecaster, HistoricalForecaster, NaiveForecaster])
def test_bars_after_an_origin_never_change_its_quantiles(cls):
    # Volatility in blocks, so GARCH's fit reacts to shocks (on iid returns alpha can come out 0, and
    # then nothing after an origin could change its forecasts, corrupted or not).
    sigma = np.repeat(np.random.default_rng(3).choice([0.005, 0.02], 24), 50)
    returns = np.random.default_rng(1).normal(0, 1, 1200) * sigma
    bars = bars_from_returns(returns, "AAA")
    model = cls(WINDOW).fit(bars.iloc[:800])
    windows = make_windows(bars, WINDOW)
    windows = windows.subset(windows.origin >= bars["date"].iloc[800].to_datetime64())
    cut = bars["date"].iloc[1000].to_datetime64()
    corrupted = bars.copy()
    later = corrupted["date"] > cut
    corrupted.loc[later, "adj_close"] *= np.exp(np.random.default_rng(2).normal(0, 0.3, later.sum()))
    before = model.predict_windows(windows, bars=bars).quantiles
    after = model.predict_windows(windows, bars=corrupted).quantiles
    made = windows.origin <= cut
    np.testing.assert_array_equal(before[made], after[made])
    if cls is not NaiveForecaster:  # the point baselines read only their window
        assert not np.allclose(before[~made], after[~made])


def test_volatility_baseline_names_the_origin_its_bars_do_not_reach():
    bars = bars_from_returns(np.random.default_rng(0).normal(0, 0.01, 600), "AAA")
    model = EwmaForecaster(WINDOW).fit(bars.iloc[:400])
    windows = make_windows(bars, WINDOW)
    with pytest.raises(ValueError, match="AAA: origin .* is not in the bars"):
        model.predict_windows(windows)  # the fit bars end before the last origins
    short = make_windows(bars.iloc[:120], WINDOW)  # 119 returns, the first origins have under 100 + 2
    with pytest.raises(ValueError, match="AAA: HistoricalForecaster needs 102 daily returns"):
        HistoricalForecaster(WINDOW).fit(bars).predict_windows(short)
    with pytest.raises(ValueError, match="quantile level 0.9"):
        EwmaForecaster(WINDOW, levels=(0.025, 0.1, 0.5, 0.95, 0.975)).fit(bars)


def test_naive_quantiles_are_the_tickers_unconditional_h_day_returns():
    bars = bars_from_returns(np.random.default_rng(4).normal(0.001, 0.02, 500), "AAA")
    model = NaiveForecaster(WINDOW).fit(bars)
    windows = make_windows(bars, WINDOW)
    cum = np.cumsum(windows.y.astype(np.float64), axis=1)
    forecast = model.predict_windows(windows.subset(np.arange(len(windows)) < 2))
    np.testing.assert_allclose(forecast.quantiles[0], np.quantile(cum, DEFAULT_LEVELS, axis=0).T)
    assert (forecast.log_return == 0).all() and forecast.levels == DEFAULT_LEVELS
