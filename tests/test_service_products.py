"""POST /v1/risk and /v1/rank against a real uvicorn: a tiny champion, seven tickers in the price store."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
import requests
from test_service_edges import uvicorn

from conftest import mlflow_environment_restored, random_walk_bars
from forecaster import forecast_store, products, serving, tracking
from forecaster.config import (
    ClusterConfig,
    ExpertConfig,
    ForecasterConfig,
    Settings,
    TrainConfig,
    WindowConfig,
)
from forecaster.data import PriceStore
from forecaster.features.windows import latest_windows
from forecaster.model import FuzzyLSTMForecaster

TICKERS = ["AAA", "BBB", "CCC", "DDD", "EEE", "FFF"]
PATHS = 2000


@pytest.fixture(scope="module")
def bars() -> pd.DataFrame:
    """Six tickers up to 2010-12-31, calm to wild; OLD stops 10 sessions earlier."""
    vols = np.linspace(0.005, 0.03, len(TICKERS))
    frames = [
        random_walk_bars(260, t, seed=i, vol=v) for i, (t, v) in enumerate(zip(TICKERS, vols, strict=True))
    ]
    return pd.concat([*frames, random_walk_bars(250, "OLD", seed=9)], ignore_index=True)


@pytest.fixture(scope="module")
def server(tmp_path_factory, bars):
    """A uvicorn serving a tiny registered champion, with the bars in its price store."""
    home = tmp_path_factory.mktemp("joint") / "home"
    config = ForecasterConfig(
        window=WindowConfig(window=10, horizon=3),
        cluster=ClusterConfig(n_clusters=2),
        expert=ExpertConfig(hidden_size=8),
        train=TrainConfig(epochs=1, batch_size=64, device="cpu", fine_tune_epochs=0),
    )
    train = bars[bars["ticker"] != "OLD"]
    with mlflow_environment_restored(), pytest.MonkeyPatch.context() as mp:
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        settings = Settings(home=home)
        tracking.log_training_run(FuzzyLSTMForecaster(config).fit(train, progress=False), train, settings)
        tracking.promote(settings, train)
    PriceStore(settings.price_dir).write(bars)
    # Store reads uncached (FORECASTER_STORE_CACHE_S=0): a test's ACI state is seen at once.
    with uvicorn(home, FORECASTER_JOINT_PATHS=str(PATHS), FORECASTER_STORE_CACHE_S="0") as (url, _):
        yield url, home


def post(server, path: str, body) -> requests.Response:
    return requests.post(f"{server[0]}{path}", json=body, timeout=60)


@pytest.fixture(scope="module")
def champion(server):
    with mlflow_environment_restored(), pytest.MonkeyPatch.context() as mp:
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        return tracking.load_registered(Settings(home=server[1])).model


def test_risk_gives_each_tickers_and_the_portfolios_var_and_es_as_the_library_does(server, champion, bars):
    body = {"tickers": ["aaa", "FFF", "CCC"], "weights": {"AAA": 0.5, "fff": 0.5}, "levels": [0.05, 0.01]}
    r = post(server, "/v1/risk", body)
    assert r.status_code == 200, r.text
    out = r.json()
    assert (
        out["as_of"] == "2010-12-31"
        and out["stale"] is True
        and out["horizon"] == 3
        and out["paths"] == PATHS
    )
    assert out["model"] == {"name": "fcm-lstm", "version": "1", "alias": "champion"}
    assert [t["ticker"] for t in out["tickers"]] == ["AAA", "FFF", "CCC"]
    assert [t["weight"] for t in out["tickers"]] == [0.5, 0.5, 0.0]
    # The library on the same bars, model, horizon, paths and seed: the same numbers (it simulates
    # in sorted ticker order, as the API does whatever the order asked).
    joint = products.joint_draws(champion, bars, tickers=["AAA", "FFF", "CCC"], n_paths=PATHS, seed=0)
    tickers, portfolio = products.risk_tables(joint, weights={"AAA": 0.5, "FFF": 0.5}, alphas=(0.01, 0.05))
    assert [p["level"] for p in out["portfolio"]] == [0.01, 0.05]
    assert [p["es"] for p in out["portfolio"]] == pytest.approx(portfolio["es"].tolist(), rel=1e-6)
    fff = tickers[tickers["ticker"] == "FFF"]
    assert [x["var"] for x in out["tickers"][1]["risk"]] == pytest.approx(fff["var"].tolist(), rel=1e-6)
    for j, level in enumerate(out["portfolio"]):
        components = sum(t["risk"][j]["component_es"] for t in out["tickers"])
        assert components == pytest.approx(level["es"]) and level["es"] >= level["var"] > 0
    assert out["tickers"][0]["last_price"] == pytest.approx(
        bars[bars["ticker"] == "AAA"]["adj_close"].iloc[-1]
    )
    assert post(server, "/v1/risk", body).json() == out  # asked again: the same answer


def test_rank_gives_m6_rows_in_request_order_as_the_model_does(server, champion, bars):
    r = post(server, "/v1/rank", {"tickers": TICKERS[::-1], "horizon": 2})
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["horizon"] == 2 and [row["ID"] for row in out["ranks"]] == TICKERS[::-1]
    assert list(out["ranks"][0]) == ["ID", "Rank1", "Rank2", "Rank3", "Rank4", "Rank5"]
    got = pd.DataFrame(out["ranks"])
    assert got.iloc[:, 1:].sum(axis=1).to_numpy() == pytest.approx(1.0)
    expected = (
        champion.rank(bars, tickers=TICKERS, horizon=2, n_paths=PATHS).set_index("ID").loc[TICKERS[::-1]]
    )
    assert got.iloc[:, 1:].to_numpy() == pytest.approx(expected.to_numpy(), abs=1e-12)


@pytest.mark.parametrize(
    "path, body, status, loc, message",
    [
        ("/v1/risk", {"tickers": ["AAA"], "horizon": 4}, 422, ["body", "horizon"], "beyond this model's 3"),
        ("/v1/risk", {"tickers": ["AAA", "OLD"]}, 422, ["body", "tickers", 1], "OLD: last bar 2010-12-17"),
        (
            "/v1/risk",
            {"tickers": ["AAA"], "weights": {"ZZZ": 1.0}},
            422,
            ["body", "weights", "ZZZ"],
            "not one of",
        ),
        (
            "/v1/risk",
            {"tickers": ["AAA"], "weights": {"AAA": 0}},
            422,
            ["body", "weights"],
            "every weight is 0",
        ),
        (
            "/v1/risk",
            {"tickers": ["AAA"], "weights": {"AAA": True}},
            422,
            ["body", "weights", "AAA"],
            "valid number",
        ),
        (
            "/v1/risk",
            {"tickers": ["AAA"], "levels": [0.7]},
            422,
            ["body", "levels", 0],
            "less than or equal to 0.5",
        ),
        ("/v1/risk", {"tickers": []}, 422, ["body", "tickers"], "at least 1 item"),
        ("/v1/rank", {"tickers": TICKERS[:4]}, 422, ["body", "tickers"], "at least 5 items"),
        ("/v1/rank", {"tickers": ["AAA", "aaa", "BBB", "CCC", "DDD"]}, 422, ["body", "tickers"], "got 4"),
        ("/v1/rank", {"tickers": [*TICKERS[:4], "ZZZ"]}, 404, None, "ZZZ: no bars in the price store"),
    ],
)
def test_bad_requests_name_the_field_and_never_500(server, path, body, status, loc, message):
    r = post(server, path, body)
    assert r.status_code == status, r.text
    detail = r.json()["detail"]
    if loc is None:
        assert message in detail
    else:
        (error,) = detail
        assert error["loc"] == loc and message in error["msg"], error


def test_the_routes_are_in_the_openapi_document(server):
    doc = requests.get(f"{server[0]}/openapi.json", timeout=10).json()
    for path in ("/v1/risk", "/v1/rank"):
        assert {"401", "404", "422", "503"} <= set(doc["paths"][path]["post"]["responses"])
    assert doc["components"]["schemas"]["RankRequest"]["properties"]["tickers"]["minItems"] == 5


def test_a_revised_bar_in_the_price_store_is_read_again(server, bars):
    body = {"tickers": ["AAA", "BBB"], "levels": [0.05]}
    before = post(server, "/v1/risk", body).json()
    store = PriceStore(Settings(home=server[1]).price_dir)
    last = bars[bars["ticker"] == "AAA"].tail(1)
    try:
        store.upsert(
            last.assign(**{c: last[c] * 1.01 for c in ("open", "high", "low", "close", "adj_close")})
        )
        after = post(server, "/v1/risk", body).json()
        assert after["tickers"][0]["last_price"] == pytest.approx(1.01 * before["tickers"][0]["last_price"])
        assert after["tickers"][1]["last_price"] == before["tickers"][1]["last_price"]
    finally:
        store.upsert(last)
    assert post(server, "/v1/risk", body).json() == before  # the original bars: the cached answer again


def test_risk_simulates_from_the_stored_aci_levels_that_forecast_serves(server, champion, bars):
    """The batch job's learnt working levels reach /v1/risk as they reach /v1/forecast: FFF served
    narrower gives FFF a smaller VaR and the library's numbers at that state; AAA is unchanged."""
    body = {"tickers": ["AAA", "FFF", "CCC"], "levels": [0.05]}
    before = post(server, "/v1/risk", body).json()
    state = serving.aci_state(champion)
    state.working["FFF"] = 0.5 + 0.5 * (state.levels_of("FFF") - 0.5)
    rows = forecast_store.aci_records(
        [r for r in state.to_records() if r["ticker"] == "FFF"], "fcm-lstm", dt.date(2010, 12, 31)
    )
    engine = forecast_store.connect(Settings(home=server[1]).forecast_store_url)
    forecast_store.write_batch(engine, [], aci_state=rows)
    try:
        after = post(server, "/v1/risk", body).json()
    finally:
        with engine.begin() as conn:
            conn.execute(forecast_store.aci_state.delete())
        engine.dispose()
    var = lambda out, t: next(x for x in out["tickers"] if x["ticker"] == t)["risk"][0]["var"]  # noqa: E731
    assert var(after, "AAA") == var(before, "AAA") and var(after, "FFF") < 0.8 * var(before, "FFF")
    selected = bars[bars["ticker"].isin(["AAA", "CCC", "FFF"])]
    windows = latest_windows(selected, champion.config.window)
    joint = products.simulate_joint(
        champion, windows, products.daily_returns(selected), n_paths=PATHS, seed=0, state=state
    )
    tickers, _ = products.risk_tables(joint, alphas=(0.05,))
    assert var(after, "FFF") == pytest.approx(tickers.set_index("ticker").loc["FFF", "var"], rel=1e-6)
