"""Market context: causal, shared by every ticker on a date, read by the gate and (optionally) the experts."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from test_service import bars_body
from typer.testing import CliRunner

from conftest import bars_from_returns
from forecaster import serving
from forecaster.calibration.aci import ACIState
from forecaster.cli import app
from forecaster.cli.common import build_config, with_market_ticker
from forecaster.config import CONTEXT, CONTEXT_DESCRIPTORS, ClusterConfig, ForecasterConfig, WindowConfig
from forecaster.data import PriceStore
from forecaster.features.market import market_context
from forecaster.features.windows import latest_windows, make_windows, window_from_arrays
from forecaster.model import FuzzyLSTMForecaster
from forecaster.regimes.descriptors import window_descriptors
from pipelines import batch_forecast
from service.main import create_app
from service.settings import ServiceSettings


def factor_universe(n_days: int = 400, n_tickers: int = 4, seed: int = 0) -> pd.DataFrame:
    """Tickers driven by one market factor whose volatility triples halfway, with their own betas."""
    rng = np.random.default_rng(seed)
    vol = np.where(np.arange(n_days - 1) < n_days // 2, 0.006, 0.018)
    market = vol * rng.standard_normal(n_days - 1)
    parts = []
    for i in range(n_tickers):
        beta = 0.5 + 0.5 * i
        r = beta * market + 0.005 * rng.standard_normal(n_days - 1)
        parts.append(bars_from_returns(r, f"T{i}"))
    index = bars_from_returns(market, "^MKT")
    return pd.concat([*parts, index], ignore_index=True)


def column(context: dict, ticker: str, name: str) -> np.ndarray:
    return context[ticker][:, CONTEXT.index(name)]


@pytest.mark.parametrize("market", ["universe", "^MKT"])
def test_market_context_is_causal_adding_future_bars_changes_no_past_value(market):
    bars = factor_universe()
    cut = bars[bars["date"] <= bars["date"].iloc[250]]
    full, past = market_context(bars, market), market_context(cut, market)
    for ticker, values in past.items():
        assert np.isfinite(values).all()
        np.testing.assert_array_equal(full[ticker][: len(values)], values)


def test_market_context_measures_what_it_says():
    bars = factor_universe(n_days=600)
    context = market_context(bars, "^MKT")
    late = slice(-150, None)  # the turbulent half, long after every rolling start
    # Betas 0.5, 1.0, 1.5, 2.0 are recovered; the market against itself has beta 1.
    betas = [np.median(column(context, f"T{i}", "beta")[late]) for i in range(4)]
    np.testing.assert_allclose(betas, [0.5, 1.0, 1.5, 2.0], atol=0.12)
    assert np.median(column(context, "^MKT", "beta")[late]) == pytest.approx(1.0)
    # The market's volatility tripled: log EWMA volatility rises by about log 3.
    mkt_vol = column(context, "T0", "mkt_vol")
    assert np.median(mkt_vol[late]) - np.median(mkt_vol[100:250]) == pytest.approx(np.log(3), abs=0.3)
    # Shared columns are the same for every ticker on a date; breadth and R^2 are shares.
    np.testing.assert_array_equal(column(context, "T0", "dispersion"), column(context, "T3", "dispersion"))
    for name in ("breadth", "avg_corr"):
        values = column(context, "T1", name)
        assert ((values >= 0) & (values <= 1)).all(), name
    # Idiosyncratic volatility is the residual's: about log 0.005 for every stock.
    assert np.median(column(context, "T2", "idio_vol")[late]) == pytest.approx(np.log(0.005), abs=0.25)


def test_unknown_market_ticker_is_named():
    with pytest.raises(ValueError, match=r"market '\^NOPE' is not in the bars"):
        market_context(factor_universe(), "^NOPE")


def test_context_features_and_descriptors_need_a_market():
    with pytest.raises(ValueError, match="market context: set a market"):
        WindowConfig(features=(*WindowConfig.features, "beta"))
    with pytest.raises(ValueError, match=r"descriptor\(s\) \['mkt_vol'\] are market context"):
        ForecasterConfig(cluster=ClusterConfig(descriptors=("log_volatility", "mkt_vol")))


def test_windows_carry_context_and_experts_read_only_what_is_asked():
    bars = factor_universe()
    plain = make_windows(bars, WindowConfig(window=10, horizon=3, market="universe"))
    inputs = make_windows(bars, WindowConfig(window=10, horizon=3, market="universe", features=(
        *WindowConfig.features, "mkt_vol", "beta")))  # fmt: skip
    assert plain.features.shape[1] == len(WindowConfig.features)  # the gate's context only
    assert inputs.features.shape[1] == len(WindowConfig.features) + 2
    np.testing.assert_array_equal(inputs.features[:, -2:], inputs.context[:, [1, 7]])
    # The gate's descriptors: own statistics first, then context on the window's last day.
    d = window_descriptors(plain, ("log_volatility", "mkt_vol", "beta"))
    np.testing.assert_array_equal(d[:, 1:], plain.context[plain.end][:, [1, 7]])
    # A forecast made today reads the same context as the full history's last window.
    config = WindowConfig(window=10, horizon=3, market="universe")
    latest = latest_windows(bars, config)
    every = make_windows(bars, config, labelled=False)
    last = np.append(every.ticker[1:] != every.ticker[:-1], True)
    np.testing.assert_allclose(latest.origin_context, every.origin_context[last], rtol=1e-5, atol=1e-6)


def test_one_tickers_bars_cannot_make_context_and_the_error_says_so():
    one = factor_universe()
    one = one[one["ticker"] == "T0"]
    arrays = {c: one[c].to_numpy() for c in ("date", "adj_close", "high", "low", "volume")}
    with pytest.raises(ValueError, match="reads market context"):
        window_from_arrays("T0", arrays, WindowConfig(window=10, horizon=3, market="^MKT"))


def test_a_context_model_fits_forecasts_and_round_trips(tiny_config, tmp_path, monkeypatch):
    bars = factor_universe()
    config = tiny_config.with_(
        window={"market": "^MKT", "features": (*tiny_config.window.features, "mkt_vol", "beta")},
        cluster={"descriptors": (*ClusterConfig.descriptors, *CONTEXT_DESCRIPTORS)},
    )
    model = FuzzyLSTMForecaster(config).fit(bars, progress=False)
    # The gate clusters on market state: the calm and turbulent halves get different regimes.
    windows = make_windows(bars, config.window)
    u = model._memberships(windows)
    calm, turbulent = (
        windows.origin < np.datetime64("2010-08-01"),
        windows.origin > np.datetime64("2010-12-01"),
    )
    assert u[calm].argmax(axis=1).mean() != pytest.approx(u[turbulent].argmax(axis=1).mean(), abs=0.5)
    table = model.predict(bars)
    model.save(tmp_path / "m")
    loaded = FuzzyLSTMForecaster.load(tmp_path / "m")
    pd.testing.assert_frame_equal(table, loaded.predict(bars))
    # `forecaster forecast -t T0` loads the market's bars too, so T0's context is the training's.
    bars.to_csv(tmp_path / "all.csv", index=False)
    out = tmp_path / "t0.csv"
    args = ["forecast", str(tmp_path / "m"), "--csv", str(tmp_path / "all.csv"), "-t", "T0", "-o", str(out)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    mine = pd.read_csv(out)
    assert set(mine["ticker"]) == {"T0"}
    np.testing.assert_allclose(
        mine["quantile_0.9"], table.loc[table["ticker"] == "T0", "quantile_0.9"], rtol=1e-9
    )
    # The batch job has the universe's bars: it serves the same numbers.
    batch = serving.forecast_frame(loaded, bars, ACIState(loaded.levels, 3))
    np.testing.assert_allclose(batch["quantile_0.9"], table["quantile_0.9"], rtol=1e-12)
    # A batch universe of T0 alone reads the rest of the training's tickers from the price store as
    # context, and keeps them whole even on Ray (no shards): T0's numbers are the full universe's.
    store = PriceStore(tmp_path / "prices")
    store.write(bars[bars["ticker"] != "T2"])  # T2 never ingested: a warning, fewer context tickers
    context = serving.read_context(store, loaded, ["T0"])
    assert sorted(context["ticker"].unique()) == ["T1", "T3", "^MKT"]
    store.write(bars[bars["ticker"] == "T2"])
    context = serving.read_context(store, loaded, ["T0"])
    t0_bars = bars[bars["ticker"] == "T0"]
    rows, _ = batch_forecast.forecast(
        loaded, t0_bars, model_name="m", model_version="1", compute="ray", context=context
    )
    assert {r["ticker"] for r in rows} == {"T0"}
    np.testing.assert_allclose(
        [r["forecast"] for r in rows], table.loc[table["ticker"] == "T0", "forecast"], rtol=1e-9
    )
    with pytest.raises(ValueError, match="market '\\^MKT' is not in the bars"):  # no context: no guess
        batch_forecast.forecast(loaded, t0_bars, model_name="m", model_version="1")
    # The API gets one ticker's bars: a 422 that says why, not a 500 and not a context-free guess.
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    settings = ServiceSettings(
        home=tmp_path / "home", source="cache", reload_interval_s=0, model_uri=str(tmp_path / "m")
    )
    t0 = bars[bars["ticker"] == "T0"].assign(ticker="AAA")  # what bars_body sends
    with TestClient(create_app(settings)) as client:
        r = client.post("/v1/forecast", json={"bars": bars_body(t0, n=40), "horizon": 3})
    assert r.status_code == 422 and "reads market context" in r.text, r.text


def test_market_option_adds_context_descriptors_and_loads_the_index():
    config = build_config(market="^GSPC", context_inputs=True)
    assert config.window.market == "^GSPC"
    assert set(CONTEXT_DESCRIPTORS) <= set(config.cluster.descriptors)
    assert set(CONTEXT) <= set(config.window.features)
    assert build_config(market="universe").window.features == WindowConfig.features  # gate only
    assert with_market_ticker(["AAPL"], "^GSPC") == ["AAPL", "^GSPC"]
    assert with_market_ticker(["AAPL"], "universe") == ["AAPL"]
    assert with_market_ticker(None, "^GSPC") is None  # every ticker of the source is loaded anyway
