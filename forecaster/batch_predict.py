"""The latest forecast of every ticker, in this process or over ticker shards on Ray Data.

`predict_latest(model, bars, "local")` is `model.predict(bars)`: one batched call. With
`"ray"` the tickers are cut into contiguous shards (one per CPU of the cluster by default),
each shard's bars become one block of a Ray Dataset, and a pool of actors forecasts them: each
actor receives the model once (from the object store) and keeps it for every shard it gets.
A ticker's forecast reads only its own bars, so the rows are the same as the local call's;
they come back in the local order (ticker, horizon). Writing them stays with the caller (one
transaction in the driver).
"""

from __future__ import annotations

import logging

import pandas as pd
import pyarrow as pa

from forecaster.engine import check_engine, cluster_cpus, shards, start_ray


def predict_latest(model, bars: pd.DataFrame, engine: str = "local", *, n_shards: int | None = None):
    """`model.predict(bars)`, here or over ticker shards on Ray (see the module docstring)."""
    if check_engine(engine) == "local":
        return model.predict(bars)
    ray = start_ray()
    from ray.data import ActorPoolStrategy, DataContext

    DataContext.get_current().enable_progress_bars = False
    logging.getLogger("ray.data").setLevel(logging.WARNING)  # no per-dataset chatter in job logs
    tickers = sorted(bars["ticker"].unique())
    parts = [bars[bars["ticker"].isin(part)] for part in shards(tickers, n_shards or cluster_cpus("ray"))]
    dataset = ray.data.from_pandas(parts)  # one block per shard: a ticker never straddles two batches
    forecasts = dataset.map_batches(
        ShardForecaster,
        fn_constructor_args=(ray.put(model),),
        batch_size=None,  # a whole block (shard) per call
        batch_format="pandas",
        compute=ActorPoolStrategy(min_size=1, max_size=len(parts)),
        num_cpus=1,
    )
    # Through Arrow tables: Dataset.to_pandas would hand back Arrow-backed dtypes, not the local ones.
    frames = pa.concat_tables(ray.get(forecasts.to_arrow_refs())).to_pandas()
    return frames.sort_values(["ticker", "horizon"], kind="stable").reset_index(drop=True)


class ShardForecaster:
    """A Ray Data actor: the model once, then `model.predict` for every shard it is given."""

    def __init__(self, model):
        import ray

        self.model = ray.get(model) if isinstance(model, ray.ObjectRef) else model

    def __call__(self, bars: pd.DataFrame) -> pd.DataFrame:
        return self.model.predict(bars)
