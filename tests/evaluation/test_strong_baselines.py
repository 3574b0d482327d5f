"""The strong baselines: GJR-GARCH skew-t equals arch's own simulation, HAR-QR quantiles follow realized
volatility, both are causal, and any baseline through the model's CQR covers on held-out days."""

from dataclasses import replace

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
    CalibratedBaseline,
    GjrGarchForecaster,
    HarQuantileForecaster,
    forecast_from_quantiles,
    level_index,
)
from forecaster.features.splits import split_windows
from forecaster.features.windows import make_windows

WINDOW = WindowConfig(window=10, horizon=3)


def gjr_returns(n, omega=0.03, alpha=0.02, gamma=0.12, beta=0.88, nu=6.0, seed=0) -> np.ndarray:
    """Daily log returns of a GJR-GARCH(1,1) with unit-variance Student-t innovations (percent params)."""
    rng = np.random.default_rng(seed)
    z = rng.standard_t(nu, n) * np.sqrt((nu - 2) / nu)
    s, x = omega / (1 - alpha - gamma / 2 - beta), np.empty(n)
    for t in range(n):
        x[t] = np.sqrt(s) * z[t]
        s = omega + (alpha + gamma * (x[t] < 0)) * x[t] ** 2 + beta * s
    return x / 100


@pytest.fixture(scope="module")
def gjr_bars():
    return bars_from_returns(gjr_returns(5000, seed=2), "SIM")


def held_out(bars, n_train: int, window=WINDOW):
    train = bars.iloc[: n_train + 1]
    windows = make_windows(bars, window)
    return train, windows.subset(windows.origin > train["date"].iloc[-1].to_datetime64())


def coverage_by_level(forecast, windows) -> np.ndarray:
    """Share of held-out cumulative returns at or below each quantile: [H, Q]."""
    y = np.cumsum(windows.y.astype(np.float64), axis=1)
    return (y[:, :, None] <= forecast.quantiles).mean(axis=0)


def test_gjr_garch_recovers_the_leverage_effect_and_covers_held_out_days(gjr_bars):
    train, test = held_out(gjr_bars, 3000)
    model = GjrGarchForecaster(WINDOW, simulations=4000).fit(train)
    p = model.params_["SIM"]
    assert 0.04 < p["gamma"] < 0.25 and p["alpha"] < 0.08 and abs(p["beta"] - 0.88) < 0.06, p
    forecast = model.predict_windows(test, bars=gjr_bars)
    np.testing.assert_allclose(coverage_by_level(forecast, test), np.tile(DEFAULT_LEVELS, (3, 1)), atol=0.03)
    assert np.all(np.diff(forecast.quantiles, axis=2) >= 0)
    # The leverage effect skews the multi-day distribution left: the 1% tail is longer than the 99%.
    q = forecast.quantiles[:, 2]
    lo, mid, hi = (level_index(DEFAULT_LEVELS, x) for x in (0.01, 0.5, 0.99))
    assert np.mean(q[:, mid] - q[:, lo]) > 1.05 * np.mean(q[:, hi] - q[:, mid])


def test_gjr_garch_paths_are_arch_own_simulation_from_the_filtered_state(gjr_bars):
    """Same parameters, same standardized draws: our vectorised filter and paths equal arch's forecast."""
    bars = gjr_bars.iloc[:2001]
    model = GjrGarchForecaster(WINDOW, simulations=500, random_state=3).fit(bars)
    windows = make_windows(bars, WINDOW, labelled=False)
    last = windows.subset(windows.origin == windows.origin.max())
    ours = model.predict_windows(last).quantiles[0]  # [H, Q]
    from arch import arch_model

    p = model.params_["SIM"]
    x = 100 * np.diff(np.log(bars["adj_close"].to_numpy()))
    res = arch_model(x, mean="Constant", vol="GARCH", p=1, o=1, q=1, dist="skewt").fix(
        [p[k] for k in ("mu", "omega", "alpha", "gamma", "beta", "eta", "lambda")]
    )
    f = res.forecast(horizon=3, method="simulation", simulations=500, rng=lambda size: p["z"], reindex=False)
    paths = np.cumsum(f.simulations.values[-1], axis=1)  # [S, H] cumulative percent returns
    np.testing.assert_allclose(ours, np.quantile(paths, DEFAULT_LEVELS, axis=0).T / 100, rtol=1e-6)


def test_har_qr_quantiles_scale_with_realized_volatility_and_cover():
    # Volatility in blocks of 60 days: RV22 knows the block, so the quantiles must follow it.
    sigma = np.repeat(np.random.default_rng(3).choice([0.005, 0.02], 60), 60)
    bars = bars_from_returns(np.random.default_rng(4).standard_normal(len(sigma)) * sigma, "AAA")
    train, test = held_out(bars, 2400)
    model = HarQuantileForecaster(WINDOW).fit(train)
    forecast = model.predict_windows(test, bars=bars)
    assert np.all(np.diff(forecast.quantiles, axis=2) >= 0)
    np.testing.assert_allclose(coverage_by_level(forecast, test), np.tile(DEFAULT_LEVELS, (3, 1)), atol=0.04)
    width = forecast.quantiles[:, 0, -2] - forecast.quantiles[:, 0, 1]  # 97.5% - 2.5%, 1 day ahead
    origin_sigma = sigma[np.searchsorted(bars["date"].to_numpy(), test.origin)]  # the next day's sigma
    calm, wild = width[origin_sigma == 0.005], width[origin_sigma == 0.02]
    assert np.median(wild) > 2.5 * np.median(calm)


@pytest.mark.parametrize("name", ["gjr_garch", "har_qr", "gjr_garch+cqr", "har_qr+cqr"])
def test_bars_after_an_origin_never_change_its_quantiles(name):
    sigma = np.repeat(np.random.default_rng(3).choice([0.005, 0.02], 24), 50)
    bars = bars_from_returns(np.random.default_rng(1).normal(0, 1, 1200) * sigma, "AAA")
    model = BASELINES[name](WINDOW).fit(bars.iloc[:800])
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
    assert not np.allclose(before[~made], after[~made])


# ---- CQR around any baseline ------------------------------------------------------------------


class NarrowNormal(Baseline):
    """Normal quantiles at half the ticker's training volatility: a base that covers far too little."""

    fitted_on: list = []

    def _fit_returns(self, returns):
        return {"sigma": float(returns.std()) / 2}

    def fit(self, bars):
        NarrowNormal.fitted_on.append(bars["date"].max())
        return super().fit(bars)

    def predict_windows(self, windows, bars=None):
        sigma = np.array([self._params(t)["sigma"] for t in windows.ticker])
        h = np.sqrt(np.arange(1, self.window.horizon + 1))
        quantiles = sigma[:, None, None] * h[None, :, None] * stats.norm.ppf(self.levels_)
        return forecast_from_quantiles(windows, self.levels_, quantiles, self.coverage)


class NarrowNormalCqr(CalibratedBaseline):
    base = NarrowNormal


def test_cqr_wrapper_fits_the_base_before_the_block_and_restores_coverage():
    bars = bars_from_returns(np.random.default_rng(8).standard_t(5, 7000) * 0.01, "AAA")
    window = WindowConfig(window=10, horizon=3, calib_fraction=0.4)  # a block of about 2,000 windows
    train, test = held_out(bars, 5000, window)
    NarrowNormal.fitted_on = []
    raw = NarrowNormal(window).fit(train).predict_windows(test)
    model = NarrowNormalCqr(window).fit(train)
    calibrated = model.predict_windows(test)
    inner = [level_index(DEFAULT_LEVELS, x) for x in (0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95)]
    levels = np.tile(np.array(DEFAULT_LEVELS)[inner], (3, 1))
    assert np.abs(coverage_by_level(raw, test)[:, inner] - levels).max() > 0.1
    np.testing.assert_allclose(coverage_by_level(calibrated, test)[:, inner], levels, atol=0.04)
    # The block is the model's: split_windows' calib windows of the training bars, without a test share.
    block = split_windows(make_windows(train, window), replace(window, test_fraction=0))
    first_target = block["calib"].target_dates[:, 0].min()
    calendar = train["date"].to_numpy("datetime64[D]")
    base_end = NarrowNormal.fitted_on[-1].to_datetime64().astype("datetime64[D]")
    # The base's bars end gap (= H) trading days before the block's first target.
    assert np.searchsorted(calendar, first_target) - np.searchsorted(calendar, base_end) == WINDOW.horizon + 1
    assert model.calibrator_.shifts_.shape == (3, len(DEFAULT_LEVELS))
    # Shifts are in the base's own units (half its 80% width): wider by about 2x on the outer levels.
    assert model.calibrator_.shifts_[0, -1] > 0 > model.calibrator_.shifts_[0, 0]


def test_the_cqr_variants_are_registered_and_run_through_the_backtest_by_name():
    names = ("garch+cqr", "ewma+cqr", "gjr_garch+cqr", "har_qr+cqr", "gjr_garch", "har_qr")
    assert set(names) <= set(competitors())
    assert all(issubclass(BASELINES[n], CalibratedBaseline) for n in names if n.endswith("+cqr"))
    bars = bars_from_returns(np.random.default_rng(1).normal(0, 0.01, 700), "A")
    result = walk_forward(
        bars,
        ForecasterConfig(window=WINDOW),
        start=bars["date"].iloc[600],
        refit_every=50,
        models=["naive", "ewma+cqr"],
    )
    f = result.forecasts
    rows = f[f["model"] == "ewma+cqr"]
    assert (
        len(rows) == len(f[f["model"] == "naive"])
        and rows[[c for c in f if c.startswith("q_")]].notna().all().all()
    )
    assert len(result.folds) == 2 and isinstance(f, pd.DataFrame)
