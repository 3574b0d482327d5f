"""CQR per regime ("cqr_regime"): coverage in each regime where pooled CQR misses, shrinkage of
small regimes toward the pooled shift, its saved arrays, and the same numbers from the model, a
loaded model, the batch job's serving and the API."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from scipy.stats import norm
from test_service import bars_body

from forecaster import serving
from forecaster.calibration.aci import ACIState
from forecaster.calibration.calibrator import load_calibrator, make_calibrator
from forecaster.calibration.cqr import QuantileCalibrator, conformal_shifts
from forecaster.calibration.regime import RegimeQuantileCalibrator
from forecaster.cli.common import build_config
from forecaster.features.volatility import horizon_scale, origin_volatility
from forecaster.features.windows import make_windows
from forecaster.model import FuzzyLSTMForecaster
from forecaster.persistence import pack_calibrations, unpack_calibrations
from service.main import create_app
from service.settings import ServiceSettings

LEVELS = (0.025, 0.1, 0.5, 0.9, 0.975)
SCALES = (1.0, 3.0)  # true scale of the calm regime (cluster 0) and of the turbulent one


def regime_switching(n: int, seed: int, horizon: int = 2):
    """Outcomes [n, H] whose scale is their regime's, one N(0, 1.7) forecast for all, noisy memberships.

    Memberships are one-hot plus noise (0.8 on the true regime, the rest spread at random), and
    one window in 20 is dominated by the other regime: the clusterer is not an oracle.
    """
    rng = np.random.default_rng(seed)
    regime = (rng.random(n) < 0.5).astype(int)
    actual = rng.standard_normal((n, horizon)) * np.asarray(SCALES)[regime, None]
    quantiles = np.broadcast_to(1.7 * norm.ppf(LEVELS), (n, horizon, len(LEVELS))).copy()
    dominant = np.where(rng.random(n) < 0.05, 1 - regime, regime)
    u = 0.8 * np.eye(2)[dominant] + 0.2 * rng.dirichlet([1.0, 1.0], size=n)
    return actual, quantiles, u.astype(np.float32)


def coverage_by_regime(actual, calibrated, u, coverage: float) -> np.ndarray:
    """Share of outcomes inside the central interval, per dominant regime: [c]."""
    lo, hi = LEVELS.index(round((1 - coverage) / 2, 6)), LEVELS.index(round((1 + coverage) / 2, 6))
    inside = (calibrated[..., lo] <= actual) & (actual <= calibrated[..., hi])  # [N, H]
    regime = u.argmax(axis=1)
    return np.array([inside[regime == k].mean() for k in range(u.shape[1])])


def test_each_regime_covers_its_share_where_pooled_cqr_misses_one():
    fit_data, fresh = regime_switching(10_000, seed=0), regime_switching(20_000, seed=1)
    regime_cal = make_calibrator("cqr_regime", LEVELS).fit(*fit_data[:2], memberships=fit_data[2])
    pooled = make_calibrator("cqr", LEVELS).fit(*fit_data[:2], memberships=fit_data[2])
    actual, quantiles, u = fresh
    for coverage, pooled_miss in ((0.8, 0.15), (0.95, 0.04)):
        per_regime = coverage_by_regime(actual, regime_cal.transform(quantiles, memberships=u), u, coverage)
        np.testing.assert_allclose(per_regime, coverage, atol=0.02)
        # One shift for both: the calm regime's intervals too wide, the turbulent one's too narrow
        # (measured: 97% and 63% at 80%; 99.5% and 90% at 95%, where nothing can miss by more than 5).
        calm, turbulent = coverage_by_regime(actual, pooled.transform(quantiles, memberships=u), u, coverage)
        assert calm > coverage + 0.04 and turbulent < coverage - pooled_miss
        assert coverage - turbulent > 2 * np.abs(per_regime - coverage).max()


def test_a_regime_with_few_windows_gets_close_to_the_pooled_shift():
    rng = np.random.default_rng(2)
    n, horizon = 2_000, 2
    regime = np.where(np.arange(n) < 3, 2, rng.integers(0, 2, n))  # regime 2: 3 windows; regime 3: none
    actual = rng.standard_normal((n, horizon)) * np.array([1.0, 3.0, 10.0, 1.0])[regime, None]
    quantiles, u = np.zeros((n, horizon, len(LEVELS))), np.eye(4)[regime]
    cal = RegimeQuantileCalibrator(LEVELS).fit(actual, quantiles, memberships=u)
    residual = actual[:, :, None] - quantiles
    pooled, raw_small = conformal_shifts(residual, LEVELS), conformal_shifts(residual[:3], LEVELS)
    assert cal.prior_windows == 100 and list(cal.counts_) == [np.sum(regime == k) for k in range(4)]
    np.testing.assert_array_equal(cal.shifts_, pooled)
    # 3 windows weigh 3 against the pooled shift's 100: the small regime stays near the pooled shift
    # though its own windows (scale 10) would give a very different one.
    np.testing.assert_allclose(cal.regime_shifts_[2], (3 * raw_small + 100 * pooled) / 103)
    assert np.abs(cal.regime_shifts_[2] - pooled).max() < 0.05 * np.abs(raw_small - pooled).max()
    np.testing.assert_array_equal(cal.regime_shifts_[3], pooled)  # no windows: the pooled shift
    # A large regime (about 1000 windows) keeps mostly its own shift, by the same rule.
    n_0, raw_0 = cal.counts_[0], conformal_shifts(residual[regime == 0], LEVELS)
    np.testing.assert_allclose(cal.regime_shifts_[0], (n_0 * raw_0 + 100 * pooled) / (n_0 + 100))
    np.testing.assert_allclose(raw_0[:, -1], norm.ppf(0.975), rtol=0.1)
    assert n_0 / (n_0 + 100) > 0.9


def test_without_shrinkage_each_regime_is_cqr_on_its_own_windows():
    """prior_windows=0: Mondrian CQR, the finite-sample rank rule of "cqr" inside every regime."""
    actual, quantiles, u = regime_switching(501, seed=3)
    cal = RegimeQuantileCalibrator(LEVELS, prior_windows=0).fit(actual, quantiles, memberships=u)
    for k in range(2):
        rows = u.argmax(axis=1) == k
        alone = QuantileCalibrator(LEVELS).fit(actual[rows], quantiles[rows])
        np.testing.assert_array_equal(cal.regime_shifts_[k], alone.shifts_)
        np.testing.assert_array_equal(
            cal.transform(quantiles[rows], memberships=u[rows]), alone.transform(quantiles[rows])
        )


def test_the_saved_arrays_give_identical_transforms(tmp_path):
    actual, quantiles, u = regime_switching(300, seed=4)
    cal = RegimeQuantileCalibrator(LEVELS, prior_windows=37.5).fit(actual, quantiles, memberships=u)
    # Through calibration.npz as the model directory writes it: a gate's arrays and a prefixed rule's.
    np.savez(
        tmp_path / "calibration.npz",
        **pack_calibrations({"fuzzy": cal.to_arrays(), "equal": cal.to_arrays()}, "fuzzy"),
    )
    with np.load(tmp_path / "calibration.npz") as npz:
        arrays = unpack_calibrations(dict(npz), "fuzzy")
    fresh, fresh_q, fresh_u = regime_switching(200, seed=5)
    for rule in ("fuzzy", "equal"):
        again = load_calibrator("cqr_regime", arrays[rule])
        assert isinstance(again, RegimeQuantileCalibrator) and again.prior_windows == 37.5
        np.testing.assert_array_equal(
            again.transform(fresh_q, memberships=fresh_u), cal.transform(fresh_q, memberships=fresh_u)
        )


def test_memberships_are_required_and_must_match_the_fitted_regimes():
    actual, quantiles, u = regime_switching(50, seed=6)
    with pytest.raises(ValueError, match="'cqr_regime' needs the windows' memberships"):
        RegimeQuantileCalibrator(LEVELS).fit(actual, quantiles)
    cal = RegimeQuantileCalibrator(LEVELS).fit(actual, quantiles, memberships=u)
    with pytest.raises(ValueError, match="'cqr_regime' needs the windows' memberships"):
        cal.transform(quantiles)
    with pytest.raises(ValueError, match=r"memberships must be \[50, 2\], got shape \[50, 3\]"):
        cal.transform(quantiles, memberships=np.ones((50, 3)) / 3)
    with pytest.raises(ValueError, match=r"memberships must be \[50, 2\], got shape \[49, 2\]"):
        cal.transform(quantiles, memberships=u[:49])
    with pytest.raises(ValueError, match="at least 10 calibration windows, got 9"):
        RegimeQuantileCalibrator(LEVELS).fit(actual[:9], quantiles[:9], memberships=u[:9])


def test_a_config_file_selects_it_for_forecaster_train(tmp_path):
    (tmp_path / "model.toml").write_text('[train]\ncalibrator = "cqr_regime"\n')
    assert build_config(tmp_path / "model.toml", epochs=1).train.calibrator == "cqr_regime"
    (tmp_path / "bad.toml").write_text('[train]\ncalibrator = "cqr_regimes"\n')
    with pytest.raises(ValueError, match="calibrator must be one of 'cqr', 'cqr_regime'"):
        build_config(tmp_path / "bad.toml")


def test_the_model_the_loaded_model_the_batch_job_and_the_api_serve_the_same_quantiles(
    tiny_config, two_ticker_bars, tmp_path, monkeypatch
):
    config = tiny_config.with_(train={"calibrator": "cqr_regime", "epochs": 1})
    model = FuzzyLSTMForecaster(config).fit(two_ticker_bars, progress=False)
    for cal in model.calibrators_.values():  # the regimes' shifts differ: dropping u would show
        assert isinstance(cal, RegimeQuantileCalibrator) and len(cal.counts_) == 2
        assert not np.allclose(cal.regime_shifts_[0], cal.regime_shifts_[1])
    windows = make_windows(two_ticker_bars, model.config.window)
    fused, _, u = model._raw_fused(windows, "fuzzy")
    assert set(u.argmax(axis=1)) == {0, 1}
    # predict_windows shifts each window by its own regime's shift, not the other's.
    scale = horizon_scale(origin_volatility(windows.returns), model.config.window.horizon)[:, :, None]
    quantiles = model.predict_windows(windows).quantiles
    np.testing.assert_allclose(quantiles, model.calibrator_.transform(fused, memberships=u) * scale)
    swapped = model.calibrator_.transform(fused, memberships=u[:, ::-1]) * scale
    assert not np.allclose(quantiles, swapped)

    path = model.save(tmp_path / "model")
    loaded = FuzzyLSTMForecaster.load(path)
    assert loaded.config.train.calibrator == "cqr_regime"
    frame = model.predict(two_ticker_bars)
    pd.testing.assert_frame_equal(loaded.predict(two_ticker_bars), frame, check_exact=True)
    np.testing.assert_array_equal(
        loaded.predict_windows(windows, combine="equal").quantiles,
        model.predict_windows(windows, combine="equal").quantiles,
    )

    # The batch job's rows at nominal ACI levels are the model's own.
    batch = serving.forecast_frame(loaded, two_ticker_bars, ACIState(loaded.levels, 3))
    columns = [f"quantile_{q:g}" for q in loaded.levels]
    np.testing.assert_allclose(batch[columns].to_numpy(), frame[columns].to_numpy(), rtol=1e-12)

    # The API, serving the model directory: its request path computes the memberships of the window.
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    settings = ServiceSettings(
        home=tmp_path / "home", source="cache", reload_interval_s=0, model_uri=str(path)
    )
    with TestClient(create_app(settings)) as client:
        r = client.post("/v1/forecast", json={"bars": bars_body(two_ticker_bars, n=40), "horizon": 3})
    assert r.status_code == 200, r.text
    aaa = model.predict(two_ticker_bars[two_ticker_bars["ticker"] == "AAA"].tail(40))
    for step, row in zip(r.json()["steps"], aaa.to_dict("records"), strict=True):
        assert step["quantiles"] == pytest.approx(
            {serving.level_key(q): row[f"quantile_{q:g}"] for q in loaded.levels}, rel=1e-9
        )
