"""Baselines: GARCH-t recovers simulated parameters and covers, EWMA and historical quantiles are
ordered and calibrated on iid data, nothing after an origin reaches a forecast, intervals are central
quantiles, and a baseline registered by name runs through the backtest."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from conftest import bars_from_returns
from forecaster.config import DEFAULT_LEVELS, ForecasterConfig, WindowConfig
from forecaster.evaluation.backtest import competitors, walk_forward
from forecaster.evaluation.baselines import (
    BASELINES,
    Baseline,
    DriftForecaster,
    EwmaForecaster,
    GarchForecaster,
    HistoricalForecaster,
    NaiveForecaster,
    forecast_from_quantiles,
    register,
)
from forecaster.evaluation.scoring import score
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
    spread = (q[:, DEFAULT_LEVELS.index(0.975)] - q[:, DEFAULT_LEVELS.index(0.025)]) * 100 / 2
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


def test_point_baseline_intervals_are_the_central_quantiles_of_its_quantiles():
    bars = bars_from_returns(np.random.default_rng(5).normal(0.001, 0.02, 400), "AAA")
    windows = make_windows(bars, WINDOW)
    for cls in (NaiveForecaster, DriftForecaster):
        forecast = cls(WINDOW).fit(bars.iloc[:300]).predict_windows(windows)
        base = windows.last_price[:, None]
        for level, (lower, upper) in forecast.intervals.items():
            lo, hi = (
                DEFAULT_LEVELS.index(round((1 - level) / 2, 3)),
                DEFAULT_LEVELS.index(round((1 + level) / 2, 3)),
            )
            np.testing.assert_allclose(lower, base * np.exp(forecast.quantiles[:, :, lo]))
            np.testing.assert_allclose(upper, base * np.exp(forecast.quantiles[:, :, hi]))
        # The point stays the path: the naive forecast is the last price, not the median.
        assert cls is not NaiveForecaster or (forecast.price == base).all()


# ---- the registry: a baseline is one module and one name --------------------------------------


class ToyForecaster(Baseline):
    """Normal quantiles at the ticker's training volatility, sqrt(h) wider each day ahead."""

    fitted_on: list = []  # the last training date of every fit, in order

    def fit(self, bars):
        ToyForecaster.fitted_on.append(bars["date"].max())
        return super().fit(bars)

    def _fit_returns(self, returns):
        return {"sigma": float(returns.std())}

    def predict_windows(self, windows, bars=None):
        sigma = np.array([self._params(t)["sigma"] for t in windows.ticker])  # [N]
        h = np.arange(1, self.window.horizon + 1)
        quantiles = (
            sigma[:, None, None] * np.sqrt(h)[None, :, None] * stats.norm.ppf(self.levels_)
        )  # [N, H, Q]
        return forecast_from_quantiles(windows, self.levels_, quantiles, self.coverage)


@pytest.fixture
def toy():
    ToyForecaster.fitted_on = []
    register("toy")(ToyForecaster)
    yield ToyForecaster
    del BASELINES["toy"]


def test_a_registered_baseline_runs_through_the_backtest_by_its_name(toy):
    bars = pd.concat(
        [bars_from_returns(np.random.default_rng(s).normal(0, 0.01, 300), t) for s, t in [(1, "A"), (2, "B")]]
    )
    config = ForecasterConfig(window=WINDOW)
    result = walk_forward(bars, config, start=bars["date"].iloc[200], refit_every=40, models=["naive", "toy"])

    f = result.forecasts
    assert list(f["model"].cat.categories) == ["naive", "toy"] and "toy" in competitors()
    rows, naive = f[f["model"] == "toy"], f[f["model"] == "naive"]
    keys = ["fold", "ticker", "origin", "horizon", "actual"]
    pd.testing.assert_frame_equal(rows[keys].reset_index(drop=True), naive[keys].reset_index(drop=True))
    # Fitted once a fold on the bars up to its refit day, and its own numbers reach the rows.
    assert toy.fitted_on == result.folds["refit_date"].tolist()
    one = rows[(rows["ticker"] == "A") & (rows["fold"] == 1)]
    past = bars[(bars["ticker"] == "A") & (bars["date"] <= result.folds["refit_date"].iloc[1])]
    sigma = np.diff(np.log(past["adj_close"].to_numpy())).std()
    z = stats.norm.ppf(0.1) * np.sqrt(one["horizon"].to_numpy())
    np.testing.assert_allclose(one["lower_80"], one["last_price"] * np.exp(sigma * z))
    np.testing.assert_allclose(one["forecast"], one["last_price"])  # the median: no drift
    assert score(f).set_index("model").loc["toy", "coverage_80"] > 0.6


def test_an_unregistered_or_taken_name_is_refused(toy):
    with pytest.raises(ValueError, match="already registered as 'toy': ToyForecaster"):
        register("toy")(NaiveForecaster)
    bars = bars_from_returns(np.random.default_rng(0).normal(0, 0.01, 300), "A")
    with pytest.raises(ValueError, match=r"unknown model\(s\) \['prophet'\]; choose from naive, .*toy"):
        walk_forward(bars, ForecasterConfig(window=WINDOW), models=["toy", "prophet"])
