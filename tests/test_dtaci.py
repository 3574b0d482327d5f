"""DtACI: adapts after a break like ACI, costs far less on stationary data, keeps its state, reads no future."""

import datetime as dt

import numpy as np
import pytest
from scipy import stats

from forecaster import forecast_store, serving
from forecaster.calibration.aci import DTACI_GAMMAS, ACIState, outcome_level, run_aci
from forecaster.config import DEFAULT_LEVELS, ForecasterConfig
from forecaster.forecast_store import schema
from forecaster.metrics import pinball_loss

LEVELS = DEFAULT_LEVELS
LO, HI = LEVELS.index(0.1), LEVELS.index(0.9)


def series(scale: np.ndarray, tickers: int = 4, seed: int = 0):
    """N(0, scale_t^2) outcomes of `tickers` tickers, forecast at horizon 1 by N(0, 1) quantiles."""
    rng = np.random.default_rng(seed)
    n = len(scale)
    y = (rng.standard_normal((tickers, n)) * scale).reshape(-1, 1)  # [tickers * n, 1]
    quantiles = np.broadcast_to(stats.norm.ppf(LEVELS), (len(y), 1, len(LEVELS))).copy()
    days = np.arange(np.datetime64("2000-01-03"), np.datetime64("2000-01-03") + n)
    origins = np.tile(days, tickers)
    names = np.repeat([f"T{k}" for k in range(tickers)], n)
    return names, origins, origins[:, None] + 1, quantiles, y


def coverage_80(y, quantiles, rows) -> float:
    return float(((y[rows, 0] >= quantiles[rows, 0, LO]) & (y[rows, 0] <= quantiles[rows, 0, HI])).mean())


def test_dtaci_restores_coverage_after_a_volatility_break_where_static_quantiles_do_not():
    # 1000 days at the forecast volatility, then 500 at twice it: the 80% interval must widen
    # from +-1.28 to +-2.56, i.e. serve the levels 0.005 and 0.995 instead of 0.1 and 0.9.
    scale = np.r_[np.ones(1000), 2 * np.ones(500)]
    names, origins, targets, quantiles, y = series(scale)
    served = run_aci(names, origins, targets, quantiles, y, LEVELS, method="dtaci")
    day = np.tile(np.arange(len(scale)), 4)
    after, settled = day >= 1000, day >= 1250  # the 500 days after the break; the last 250 of them
    static = coverage_80(y, quantiles, after)
    assert static < 0.55  # far too narrow for the new volatility, and it stays so
    assert coverage_80(y, served, after) > static + 0.2  # most of the gap closed over the 500 days
    assert abs(coverage_80(y, served, settled) - 0.80) < 0.05, coverage_80(y, served, settled)
    aci = run_aci(names, origins, targets, quantiles, y, LEVELS)  # as quick as one gamma of 0.005
    assert coverage_80(y, served, after) > coverage_80(y, aci, after) - 0.01
    assert np.all(np.diff(served, axis=-1) >= 0)  # served quantiles never cross


def test_dtaci_stays_within_0_2_percent_of_static_pinball_on_stationary_data_where_aci_does_not():
    # The quantiles are right all along: any move of a level is noise. DtACI's weights settle on
    # its smallest steps; ACI's one gamma of 0.005 keeps its levels wandering.
    names, origins, targets, quantiles, y = series(np.ones(2500))
    static = pinball_loss(y, quantiles, LEVELS)
    dtaci = pinball_loss(y, run_aci(names, origins, targets, quantiles, y, LEVELS, method="dtaci"), LEVELS)
    aci = pinball_loss(y, run_aci(names, origins, targets, quantiles, y, LEVELS), LEVELS)
    assert dtaci / static - 1 < 0.002, dtaci / static - 1  # ~0.14% on this series
    assert aci / static - 1 > 0.003, aci / static - 1  # ~0.38%


def test_dtaci_with_one_step_size_is_aci():
    """One candidate is ACI itself: its weight is 1, its level moves by ACI's rule."""
    names, origins, targets, quantiles, y = series(np.ones(400), tickers=2, seed=3)
    state = ACIState(LEVELS, 1, method="dtaci", gammas=(0.002,))
    served = np.empty_like(quantiles)
    for day in np.unique(origins):  # horizon 1: yesterday's outcomes are known today
        rows = np.flatnonzero(origins == day)
        served[rows] = state.adjust(names[rows], quantiles[rows])
        state.update(names[rows], [1] * len(rows), y[rows, 0], served[rows, 0])
    aci = run_aci(names, origins, targets, quantiles, y, LEVELS, gamma=0.002)
    np.testing.assert_allclose(served, aci, rtol=0, atol=1e-9)


def test_the_outcome_level_inverts_the_served_curve():
    levels = np.array([0.03, 0.2, 0.5, 0.82, 0.97])
    served = 0.01 * stats.norm.ppf(levels)
    for q, level in enumerate(levels):
        assert outcome_level(served[q], served, levels) == pytest.approx(level, abs=1e-12)
    between = outcome_level(0.5 * (served[1] + served[2]), served, levels)
    assert levels[1] < between < levels[2]
    assert outcome_level(1.0, served, levels) > 0.999 and outcome_level(-1.0, served, levels) < 0.001
    # Coinciding quantiles (a small model's tails): an outcome at them is under both, one beyond
    # them is above both.
    tied = np.r_[served[:-1], served[-2]]
    assert outcome_level(tied[-1], tied, levels) == pytest.approx(levels[-2], abs=1e-12)
    assert outcome_level(tied[-1] + 1e-4, tied, levels) > levels[-1]
    assert outcome_level(0.0, np.zeros(5), levels) == pytest.approx(levels[0], abs=1e-12)
    assert outcome_level(1e-4, np.zeros(5), levels) == 1.0


def test_no_outcome_after_an_origin_reaches_the_quantiles_dtaci_serves_at_it():
    names, origins, _, quantiles, y = series(np.ones(300), tickers=2)
    order = np.argsort(origins, kind="stable")  # day by day, both tickers
    names, origins, quantiles, y = names[order], origins[order], quantiles[order], y[order]
    horizon = 3
    quantiles = np.repeat(quantiles, horizon, axis=1) * np.sqrt([1, 2, 3])[None, :, None]
    actual = np.repeat(y, horizon, axis=1) * np.sqrt([1, 2, 3])
    targets = origins[:, None] + np.arange(1, horizon + 1)  # known 1..3 days after each origin
    served = run_aci(names, origins, targets, quantiles, actual, LEVELS, method="dtaci")
    cut = origins[400]
    corrupted = actual.copy()
    corrupted[targets > cut] = 10.0  # every outcome dated after the origin `cut`
    again = run_aci(names, origins, targets, quantiles, corrupted, LEVELS, method="dtaci")
    upto = origins <= cut
    np.testing.assert_array_equal(served[upto], again[upto])
    assert not np.array_equal(served[origins > cut + 5], again[origins > cut + 5])


def learnt_state(method: str = "dtaci") -> ACIState:
    names, origins, targets, quantiles, y = series(np.r_[np.ones(150), 2 * np.ones(150)], tickers=2)
    state = ACIState(LEVELS, horizon=2, method=method)
    served = state.adjust(names, np.repeat(quantiles, 2, axis=1))
    state.update(names, [1] * len(names), y[:, 0], served[:, 0])
    state.update(names, [2] * len(names), 1.4 * y[:, 0], served[:, 1])
    return state


def test_dtaci_state_survives_a_round_trip_through_records():
    state = learnt_state()
    records = state.to_records()
    assert {tuple(r["candidates"]["gammas"]) for r in records} == {DTACI_GAMMAS}
    again = ACIState.from_records(records, LEVELS, 2, method="dtaci")
    for ticker in state.working:
        np.testing.assert_array_equal(again.working[ticker], state.working[ticker])
        np.testing.assert_array_equal(again.candidates[ticker], state.candidates[ticker])
        np.testing.assert_array_equal(again.weights[ticker], state.weights[ticker])
    # The restored state goes on learning exactly as the one that never stopped.
    served = np.zeros((1, len(LEVELS)))
    for s in (state, again):
        s.update(["T0"], [1], np.array([0.7]), served)
    np.testing.assert_array_equal(again.working["T0"], state.working["T0"])
    # After the break every candidate moved, and the weights left uniform.
    assert not np.allclose(state.weights["T0"], 1 / len(DTACI_GAMMAS))


def test_aci_records_are_read_as_dtaci_with_every_candidate_at_their_level_and_back():
    aci, dtaci = learnt_state("aci"), learnt_state("dtaci")
    as_dtaci = ACIState.from_records(aci.to_records(), LEVELS, 2, method="dtaci")
    for ticker, working in aci.working.items():
        np.testing.assert_array_equal(as_dtaci.working[ticker], working)  # serves the same
        np.testing.assert_array_equal(as_dtaci.candidates[ticker], np.repeat(working[..., None], 7, axis=-1))
        np.testing.assert_array_equal(as_dtaci.weights[ticker], 1 / 7)
    # Candidates of other step sizes than the state's: the same fresh start from the served level.
    other = ACIState.from_records(dtaci.to_records(), LEVELS, 2, method="dtaci", gammas=(0.01, 0.02))
    np.testing.assert_array_equal(
        other.candidates["T0"], np.repeat(dtaci.working["T0"][..., None], 2, axis=-1)
    )
    # And a DtACI record read by plain ACI serves its level.
    back = ACIState.from_records(dtaci.to_records(), LEVELS, 2, method="aci")
    np.testing.assert_array_equal(back.working["T0"], dtaci.working["T0"])


def test_the_model_config_names_the_rule_the_batch_job_and_the_api_use():
    def model(method: str):
        config = ForecasterConfig().with_(window={"horizon": 2}, train={"aci_method": method})
        return type("Model", (), {"levels": LEVELS, "config": config})()

    state = serving.aci_state(model("dtaci"), learnt_state().to_records())
    assert state.method == "dtaci" and state.candidates.keys() == {"T0", "T1"}
    assert serving.aci_state(model("dtaci")).method == "dtaci"
    assert serving.aci_state(model("aci")).method == "aci"
    assert ForecasterConfig().train.aci_method == "aci"  # saved models without the field: ACI as before
    with pytest.raises(ValueError, match="aci_method must be one of aci, dtaci"):
        ForecasterConfig().with_(train={"aci_method": "pid"})


def test_dtaci_state_round_trips_through_the_forecast_store(store_url):
    engine = forecast_store.connect(store_url)
    state = learnt_state()
    day = dt.date(2024, 1, 2)
    forecast_store.write_batch(
        engine, [], aci_state=forecast_store.aci_records(state.to_records(), "fcm-lstm", day)
    )
    stored = forecast_store.load_aci_state(engine, "fcm-lstm")
    again = ACIState.from_records(stored, LEVELS, 2, method="dtaci")
    for ticker in state.working:
        np.testing.assert_array_equal(again.working[ticker], state.working[ticker])
        np.testing.assert_array_equal(again.candidates[ticker], state.candidates[ticker])
        np.testing.assert_array_equal(again.weights[ticker], state.weights[ticker])
    # A later plain-ACI state replaces the candidates too: none are left behind.
    plain = forecast_store.aci_records(learnt_state("aci").to_records(), "fcm-lstm", day + dt.timedelta(1))
    forecast_store.write_batch(engine, [], aci_state=plain)
    assert all(r["candidates"] is None for r in forecast_store.load_aci_state(engine, "fcm-lstm"))
    engine.dispose()


def test_upgrading_a_0004_store_keeps_its_aci_state_readable_as_dtaci(store_url):
    forecast_store.connect(store_url).dispose()
    engine = schema._create_engine(store_url)
    with schema._schema_lock(engine) as conn:
        schema._alembic("downgrade", conn, "0004")
    row = {"ticker": "AAA", "model_name": "fcm-lstm", "horizon": 1, "level": 0.9, "working_level": 0.93,
           "updated_through": dt.date(2024, 1, 2), "updated_at": dt.datetime(2024, 1, 2, 22)}  # fmt: skip
    with engine.begin() as conn:
        conn.execute(forecast_store.aci_state.insert().values(row))  # the old table: no candidates
    engine.dispose()

    assert forecast_store.upgrade(store_url) == ("0004", "0005")
    engine = forecast_store.connect(store_url)
    (stored,) = forecast_store.load_aci_state(engine, "fcm-lstm")
    assert stored["candidates"] is None and stored["working_level"] == 0.93
    state = ACIState.from_records([stored], LEVELS, 1, method="dtaci")
    assert state.working["AAA"][0, LEVELS.index(0.9)] == 0.93
    np.testing.assert_array_equal(state.candidates["AAA"][0, LEVELS.index(0.9)], 0.93)
    engine.dispose()
