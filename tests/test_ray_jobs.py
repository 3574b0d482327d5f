"""Ingest on the Ray engine: parallel tasks under one rate limit give what the local engine gives
(recorded Yahoo answers, no network)."""

from __future__ import annotations

import time

import pandas as pd
import pytest
import test_ingest as recorded
from data import conftest as data_fixtures

from forecaster.data import PriceStore
from forecaster.data.yahoo import RetryPolicy
from pipelines import ingest

yahoo = data_fixtures.yahoo

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
