"""What the API answers beyond the point forecast: every quantile (or the levels asked for), the
regime and its shift flag, ACI-served quantiles equal to the batch job's, and the regime gauge."""

from __future__ import annotations

import numpy as np
import pytest
from fastapi.testclient import TestClient
from test_service import (  # noqa: F401  (module fixtures: a registry of its own for this module)
    bars_body,
    make_settings,
    registry,
    tiny_config_module,
    two_ticker_bars_module,
)

from conftest import mlflow_environment_restored
from forecaster import forecast_store, serving, tracking
from forecaster.config import DEFAULT_LEVELS, Settings
from forecaster.features.windows import latest_windows
from pipelines import batch_forecast
from service.main import create_app

LEVELS = [f"{level:g}" for level in DEFAULT_LEVELS]  # "0.01" .. "0.99"


@pytest.fixture
def client(registry, monkeypatch):  # noqa: F811
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    with TestClient(create_app(make_settings(registry))) as c:
        yield c


@pytest.fixture(scope="module")
def model(registry):  # noqa: F811
    with mlflow_environment_restored(), pytest.MonkeyPatch.context() as mp:
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        tracking.configure(Settings(home=registry))
        return tracking.load_model("models:/fcm-lstm/1")


@pytest.fixture(scope="module")
def batched(registry, two_ticker_bars_module):  # noqa: F811
    """Two batch runs: as of a week before the last bar, then the last bar (ACI learns in between)."""
    dates = sorted(two_ticker_bars_module["date"].unique())
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_URI", "placeholder")
        mp.delenv("MLFLOW_TRACKING_URI")
        settings = Settings(home=registry, universe=["AAA", "BBB"])
        batch_forecast.run(settings, dates[-6])
        batch_forecast.run(settings)
    return settings


def test_every_quantile_per_step_in_level_order_with_the_interval_bounds(client):
    body = client.post("/v1/forecast", json={"ticker": "AAA", "horizon": 3}).json()
    for step in body["steps"]:
        q = step["quantiles"]
        assert list(q) == LEVELS
        assert list(q.values()) == sorted(q.values())
        assert (q["0.1"], q["0.9"], q["0.025"], q["0.975"]) == (
            step["lower_80"],
            step["upper_80"],
            step["lower_95"],
            step["upper_95"],
        )


def test_bars_are_served_the_models_own_quantiles(client, model, two_ticker_bars_module):  # noqa: F811
    r = client.post("/v1/forecast", json={"bars": bars_body(two_ticker_bars_module, n=40), "horizon": 3})
    expected = model.predict(two_ticker_bars_module[two_ticker_bars_module["ticker"] == "AAA"].tail(40))
    for step, row in zip(r.json()["steps"], expected.to_dict("records"), strict=True):
        assert step["quantiles"] == pytest.approx({k: row[f"quantile_{k}"] for k in LEVELS}, rel=1e-6)


def test_requested_levels_are_interpolated_inside_the_models_range(client):
    plain = client.post("/v1/forecast", json={"ticker": "BBB"}).json()
    r = client.post("/v1/forecast", json={"ticker": "BBB", "levels": [0.975, 0.5, 0.3, 0.025, 0.5]})
    assert r.status_code == 200, r.text
    for step, full in zip(r.json()["steps"], plain["steps"], strict=True):
        q = step["quantiles"]
        assert list(q) == ["0.025", "0.3", "0.5", "0.975"]  # sorted, once each
        assert q["0.5"] == full["quantiles"]["0.5"] and q["0.975"] == full["quantiles"]["0.975"]
        assert full["quantiles"]["0.25"] < q["0.3"] < full["quantiles"]["0.5"]
        assert step["lower_80"] == full["lower_80"]  # the bounds stay


@pytest.mark.parametrize(
    "levels, loc, message",
    [
        ([0.5, 0.995], ["body", "levels", 1], "level 0.995 is beyond this model's quantiles"),
        ([0.005], ["body", "levels", 0], "forecasts levels 0.01 to 0.99"),
        ([0.5, 1.0], ["body", "levels", 1], "less than 1"),
        ([0.0], ["body", "levels", 0], "greater than 0"),
        ([], ["body", "levels"], "at least 1"),
    ],
)
def test_a_level_the_model_cannot_give_is_422_naming_it(client, levels, loc, message):
    for path, body in (("/v1/forecast", {"ticker": "AAA"}), ("/v1/forecast/batch", {"tickers": ["AAA"]})):
        r = client.post(path, json={**body, "levels": levels})
        assert r.status_code == 422, r.text
        (error,) = r.json()["detail"]
        assert error["loc"] == loc and message in error["msg"]


def test_batch_answers_the_requested_levels_for_every_ticker(client):
    r = client.post("/v1/forecast/batch", json={"tickers": ["AAA", "BBB"], "levels": [0.05, 0.95]})
    assert r.status_code == 200
    assert [list(f["steps"][0]["quantiles"]) for f in r.json()["forecasts"]] == [["0.05", "0.95"]] * 2


def test_regime_label_and_shift_follow_the_tickers_memberships(client, model, two_ticker_bars_module):  # noqa: F811
    body = client.post("/v1/forecast", json={"ticker": "AAA"}).json()
    assert body["regime"] == int(np.argmax(body["memberships"]))
    assert body["regime_label"] == model.regime_labels_[body["regime"]]
    aaa = two_ticker_bars_module[two_ticker_bars_module["ticker"] == "AAA"]
    history = serving.trailing_memberships(model, aaa["adj_close"].to_numpy())
    assert history[-1] == pytest.approx(body["memberships"], rel=1e-5)
    assert (
        body["regime_shift"]
        is serving.regime_fields(history[-1], history, model.regime_labels_)["regime_shift"]
    )

    # Enough bars for the window, too few for 20 trailing days: the shift is unknown, the regime is not.
    short = client.post("/v1/forecast", json={"bars": bars_body(two_ticker_bars_module, n=20)}).json()
    assert short["regime_shift"] is None and short["regime_label"] in model.regime_labels_
    full = client.post("/v1/forecast", json={"bars": bars_body(two_ticker_bars_module, n=60)}).json()
    assert full["regime_shift"] is body["regime_shift"]


def test_a_regime_shift_is_flagged_when_today_leaves_the_trailing_regime(model):
    c = len(model.regime_labels_)
    calm = np.eye(c)[0] * 0.9 + 0.1 / c
    history = np.vstack([np.tile(calm, (20, 1)), np.roll(calm, 1)])  # 20 days in 0, today in 1
    fields = serving.regime_fields(history[-1], history, model.regime_labels_)
    assert fields == {"regime": 1, "regime_label": model.regime_labels_[1], "regime_shift": True}
    assert serving.regime_fields(calm, np.tile(calm, (21, 1)), model.regime_labels_)["regime_shift"] is False


def test_api_and_batch_serve_the_same_quantiles_for_the_same_bars(batched, registry, client):  # noqa: F811
    engine = forecast_store.connect(batched.forecast_store_url)
    state = forecast_store.load_aci_state(engine, "fcm-lstm", ["AAA"])
    assert state and any(r["working_level"] != r["level"] for r in state)  # ACI has learnt something
    for ticker in ("AAA", "BBB"):
        stored = forecast_store.latest_forecasts(engine, ticker)
        served = client.post("/v1/forecast", json={"ticker": ticker}).json()
        assert served["as_of"] == str(stored[0]["as_of"])
        for step, row in zip(served["steps"], stored, strict=True):
            assert step["quantiles"] == pytest.approx(row["quantiles"], rel=1e-6)
            assert step["upper_95"] == pytest.approx(row["upper_95"], rel=1e-6)
        assert (served["regime"], served["regime_label"], served["regime_shift"]) == (
            stored[0]["regime"],
            stored[0]["regime_label"],
            stored[0]["regime_shift"],
        )
    engine.dispose()


def test_stored_forecasts_return_quantiles_and_regime(batched, client):
    r = client.get("/v1/forecasts/AAA")
    assert r.status_code == 200
    rows = r.json()
    assert [row["horizon"] for row in rows] == [1, 2, 3]
    assert list(rows[0]["quantiles"]) == LEVELS and rows[0]["quantiles"]["0.1"] == rows[0]["lower_80"]
    assert isinstance(rows[0]["regime"], int) and rows[0]["regime_label"]
    assert isinstance(rows[0]["regime_shift"], bool)


def test_metrics_count_tickers_per_regime_from_the_store(batched, client):
    engine = forecast_store.connect(batched.forecast_store_url)
    labels = [forecast_store.latest_forecasts(engine, t)[0]["regime_label"] for t in ("AAA", "BBB")]
    engine.dispose()
    text = client.get("/metrics").text
    for label in set(labels):
        assert f'forecast_tickers_by_regime{{regime="{label}"}} {float(labels.count(label))}' in text


def test_model_info_lists_regime_labels_and_levels(client, model):
    info = client.get("/v1/model").json()
    assert info["regime_labels"] == list(model.regime_labels_)
    assert info["levels"] == [float(q) for q in LEVELS]


def test_the_quantiles_match_a_direct_serving_of_the_window(model, two_ticker_bars_module):  # noqa: F811
    """The helper the API and the batch job share, on a frame: nominal state = calibrated quantiles."""
    from forecaster.calibration.aci import ACIState

    windows = latest_windows(two_ticker_bars_module, model.config.window)
    pred = model.predict_windows(windows)
    served = serving.serve(pred, windows, ACIState(model.levels, 3), (0.8, 0.95))
    np.testing.assert_allclose(served.quantiles, pred.quantiles, rtol=1e-9, atol=1e-12)
    assert served.intervals.keys() == {0.8, 0.95}
