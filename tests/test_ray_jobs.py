"""The jobs on the Ray engine: batch forecast over ticker shards and ingest in parallel tasks
give what the local engine gives (recorded Yahoo answers, no network)."""

from __future__ import annotations

import time

import pandas as pd
import pytest
import test_ingest as recorded
from data import conftest as data_fixtures

from conftest import random_walk_bars
from forecaster import forecast_store
from forecaster.data import PriceStore
from forecaster.data.yahoo import RetryPolicy
from forecaster.model import FuzzyLSTMForecaster
from pipelines import batch_forecast, ingest

yahoo = data_fixtures.yahoo

pytestmark = pytest.mark.filterwarnings("ignore:.*inplace.*:DeprecationWarning:yfinance")


def test_batch_forecast_on_ray_writes_the_rows_of_the_local_engine(ray_runtime, tiny_config, tmp_path):
    bars = pd.concat([random_walk_bars(300, f"T{i}", seed=i) for i in range(5)], ignore_index=True)
    stale = random_walk_bars(250, "OLD", seed=9)
    model = FuzzyLSTMForecaster(tiny_config).fit(bars, progress=False)
    universe = pd.concat([bars, stale], ignore_index=True)

    names = dict(model_name="fcm-lstm", model_version="1")
    local_rows, local = batch_forecast.forecast(model, universe, **names)
    ray_rows, distributed = batch_forecast.forecast(model, universe, engine="ray", **names)

    assert distributed.forecast == local.forecast == [f"T{i}" for i in range(5)]
    assert distributed.skipped == local.skipped and "OLD" in local.skipped
    # Same keys, dates, versions; values equal to the network's float32 rounding: the LSTM's
    # kernels round a shard of 2-3 windows a hair differently from one batch of 5.
    key = lambda rows: [
        tuple(v for k, v in r.items() if not isinstance(v, float) and k != "created_at") for r in rows
    ]  # noqa: E731
    assert key(ray_rows) == key(local_rows)
    values = lambda rows: pd.DataFrame(rows).select_dtypes("float")  # noqa: E731
    pd.testing.assert_frame_equal(values(ray_rows), values(local_rows), rtol=1e-6, check_exact=False)
    # The driver writes them in one idempotent transaction, as locally: the local rows are already there.
    engine = forecast_store.connect(f"sqlite:///{tmp_path / 'forecasts.db'}")
    assert forecast_store.write_forecasts(engine, ray_rows) == len(ray_rows) == 5 * 3
    assert forecast_store.write_forecasts(engine, local_rows) == 0


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

    assert distributed.outcomes == local.outcomes
    assert [o.ticker for o in distributed.failed] == ["EMPTY", "NOSUCH", "NOCLOSE"]
    assert on_ray.tickers() == ["GS", "LIMITED"]
    pd.testing.assert_frame_equal(on_ray.read("GS"), PriceStore(tmp_path / "local").read("GS"))
    # 6 attempts (LIMITED's retry takes a slot too) at 4 per second across all workers.
    assert seconds >= 5 / 4
