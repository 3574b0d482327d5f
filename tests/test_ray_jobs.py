"""The jobs on the Ray engine give what the local engine gives: ingest (parallel tasks under one rate
limit, recorded Yahoo answers, no network) and the batch forecast (ticker shards on Ray Data actors)."""

from __future__ import annotations

import time

import pandas as pd
import pytest
import test_batch_forecast as batch
import test_ingest as recorded
from data import conftest as data_fixtures

from forecaster import forecast_store
from forecaster.config import Settings
from forecaster.data import PriceStore
from forecaster.data.yahoo import RetryPolicy
from pipelines import batch_forecast, ingest

yahoo = data_fixtures.yahoo
bars, home = batch.bars, batch.home  # the random-walk universe and its tiny registered champion

pytestmark = pytest.mark.filterwarnings("ignore:.*inplace.*:DeprecationWarning:yfinance")


def test_ingest_on_ray_reports_what_the_local_engine_reports_under_one_rate_limit(
    yahoo, ray_runtime, tmp_path
):
    yahoo.charts |= {
        "GS": (200, recorded.GS_CHART),
        "EMPTY": (200, recorded.EMPTY_CHART),
        "NOCLOSE": (200, recorded.bad_close_chart()),
        "LIMITED": [recorded.TOO_MANY, recorded.TOO_MANY, (200, recorded.GS_CHART)],  # retried, then fine
    }
    # The fake Yahoo travels to the workers inside the session: by value, as tests/ is no package there.
    ray_runtime.cloudpickle.register_pickle_by_value(data_fixtures)
    tickers = ["GS", "EMPTY", "NOSUCH", "NOCLOSE", "LIMITED"]
    options = dict(end="2023-10-09", retry=RetryPolicy(attempts=2, backoff=0.01), batch_size=3)
    on_ray = PriceStore(tmp_path / "ray")
    started = time.perf_counter()
    # Each task gets its own copy of the session, with every recorded answer still to be served.
    distributed = ingest.ingest(on_ray, tickers, session=yahoo.session, engine="ray", max_rate=4, **options)
    seconds = time.perf_counter() - started
    local = ingest.ingest(PriceStore(tmp_path / "local"), tickers, session=yahoo.session, **options)

    # yfinance words an unknown symbol two ways (an HTTP 404, or "possibly delisted") from run to run,
    # so errors are compared by who failed, not by their wording.
    same = lambda o: (o.ticker, o.ok, o.new_rows, o.last_date, o.full, o.error is None)  # noqa: E731
    assert [same(o) for o in distributed.outcomes] == [same(o) for o in local.outcomes]
    assert [o.ticker for o in distributed.failed] == ["EMPTY", "NOSUCH", "NOCLOSE"]
    assert on_ray.tickers() == ["GS", "LIMITED"]
    pd.testing.assert_frame_equal(on_ray.read("GS"), PriceStore(tmp_path / "local").read("GS"))
    # 6 attempts (LIMITED's retry takes a slot too) at 4 per second across all workers.
    assert seconds >= 5 / 4


def test_batch_forecast_on_ray_stores_the_rows_of_the_local_engine(ray_runtime, home, tmp_path, monkeypatch):
    """Shards of one ticker each on Ray Data actors: the same stored rows, ACI state included."""
    batch.without_mlflow_env(monkeypatch)
    stored = {}
    for name in ("local", "ray"):
        settings = Settings(
            home=home,
            universe=["AAA", "BBB", "CCC"],
            forecast_store_url=f"sqlite:///{tmp_path / name}.db",
            engine=name,
            batch_shard_size=1,
        )
        store = forecast_store.connect(settings.forecast_store_url)
        # Two days, so the second serves quantiles at working levels learnt from the first's outcomes.
        first = batch_forecast.run(settings, "2011-02-17", engine=store)
        second = batch_forecast.run(settings, engine=store)
        again = batch_forecast.run(settings, engine=store)
        assert first.rows_written == second.rows_written == 2 * batch.HORIZON and again.rows_written == 0
        stored[name] = [
            {k: v for k, v in row.items() if k not in ("id", "created_at")}
            for row in batch.stored_rows(store)
        ]
        stored[name + " aci"] = forecast_store.load_aci_state(store, "fcm-lstm", ["AAA", "BBB"])
        store.dispose()

    assert len(stored["ray"]) == len(stored["local"]) == 4 * batch.HORIZON
    for on_ray, local in zip(stored["ray"], stored["local"], strict=True):
        assert on_ray.keys() == local.keys()
        for key, value in local.items():
            if isinstance(value, float):
                assert on_ray[key] == pytest.approx(value, rel=1e-6), key
            elif isinstance(value, dict):
                assert on_ray[key] == pytest.approx(value, rel=1e-6), key
            else:
                assert on_ray[key] == value, key
    assert stored["ray aci"] == stored["local aci"]
