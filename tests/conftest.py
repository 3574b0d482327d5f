"""Tiny seeded data shared by the tests: synthetic bars in the project's column contract."""

from __future__ import annotations

import contextlib
import os

import numpy as np
import pandas as pd
import pytest

from forecaster.config import (
    ClusterConfig,
    ExpertConfig,
    ForecasterConfig,
    TrainConfig,
    WindowConfig,
)


def bars_from_returns(
    returns: np.ndarray, ticker: str = "TEST", start: str = "2010-01-04", price: float = 100.0
) -> pd.DataFrame:
    """Valid daily bars whose adjusted close follows the given log returns (first bar at `price`)."""
    close = price * np.exp(np.concatenate([[0.0], np.cumsum(returns)]))
    open_ = np.concatenate([[price], close[:-1]])
    spread = 0.002 + np.abs(np.concatenate([[0.0], returns])) / 2
    return pd.DataFrame(
        {
            "ticker": ticker,
            "date": pd.bdate_range(start, periods=len(close)),
            "open": open_,
            "high": np.maximum(open_, close) * (1 + spread),
            "low": np.minimum(open_, close) * (1 - spread),
            "close": close,
            "adj_close": close,
            "volume": 1e6,
        }
    )


def random_walk_bars(n: int = 400, ticker: str = "TEST", seed: int = 0, vol: float = 0.01) -> pd.DataFrame:
    return bars_from_returns(np.random.default_rng(seed).normal(0.0, vol, n - 1), ticker)


def corrupted_after(bars: pd.DataFrame, cut, seed: int = 1) -> pd.DataFrame:
    """`bars` with every price after `cut` scrambled (still valid OHLC): a look-ahead check's input."""
    corrupted = bars.copy()
    later = corrupted["date"] > cut
    for column in ("open", "high", "low", "close", "adj_close"):
        corrupted.loc[later, column] *= np.exp(np.random.default_rng(seed).normal(0, 0.2, later.sum()))
    corrupted.loc[later, "high"] = corrupted.loc[later, ["open", "high", "low", "close"]].max(axis=1)
    corrupted.loc[later, "low"] = corrupted.loc[later, ["open", "high", "low", "close"]].min(axis=1)
    return corrupted


def regime_switching_returns(n: int = 3000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two clearly different regimes in blocks of 60-160 days: (returns [n], regime [n]).

    Calm regime: low volatility with momentum (r_t = +0.7 r_t-1 + e).
    Turbulent regime: 5x the volatility with mean reversion (r_t = -0.7 r_t-1 + e).
    One model must learn opposite dynamics; experts can each learn one.
    """
    rng = np.random.default_rng(seed)
    regime = np.empty(n, dtype=int)
    i, state = 0, 0
    while i < n:
        length = int(rng.integers(60, 160))
        regime[i : i + length] = state
        i, state = i + length, 1 - state
    phi = np.where(regime == 0, 0.7, -0.7)
    sigma = np.where(regime == 0, 0.004, 0.02)
    r = np.zeros(n)
    for t in range(1, n):
        r[t] = phi[t] * r[t - 1] + sigma[t] * rng.standard_normal()
    return r, regime


@pytest.fixture
def tiny_config() -> ForecasterConfig:
    """Small and fast: short windows, 2 clusters, tiny experts, 2 epochs on the CPU."""
    return ForecasterConfig(
        window=WindowConfig(window=10, horizon=3),
        cluster=ClusterConfig(n_clusters=2),
        expert=ExpertConfig(hidden_size=8),
        train=TrainConfig(epochs=2, batch_size=64, device="cpu", fine_tune_epochs=1),
    )


@pytest.fixture
def two_ticker_bars() -> pd.DataFrame:
    return pd.concat(
        [random_walk_bars(300, "AAA", seed=1), random_walk_bars(300, "BBB", seed=2)], ignore_index=True
    )


@contextlib.contextmanager
def mlflow_environment_restored():
    """`mlflow.set_tracking_uri` / `set_registry_uri` also export MLFLOW_*_URI: undo that."""
    names = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")
    saved = {name: os.environ.get(name) for name in names}
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@pytest.fixture(autouse=True)
def _restore_mlflow_environment():
    with mlflow_environment_restored():
        yield


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request, tmp_path):
    """A forecast store URL: a SQLite file, then a fresh database on the machine's PostgreSQL."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'forecasts.db'}"
    else:
        from servers import fresh_postgres_database

        with fresh_postgres_database() as url:
            yield url


def regime_switching_setup() -> tuple[pd.DataFrame, np.ndarray, ForecasterConfig]:
    """Bars of the two-regime series, the regime of each return, and a config that can learn it."""
    returns, regime = regime_switching_returns(2500, seed=0)
    config = ForecasterConfig(
        window=WindowConfig(window=20, horizon=1, features=("log_return",)),
        cluster=ClusterConfig(n_clusters=2, descriptors=("log_volatility", "cum_return")),
        # The nine levels 0.025 .. 0.975 this regime test was calibrated with (the default gained 0.01 / 0.99).
        expert=ExpertConfig(
            hidden_size=16, dropout=0.0, levels=(0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.975)
        ),
        train=TrainConfig(epochs=8, batch_size=64, lr=3e-3, patience=8, device="cpu"),
    )
    return bars_from_returns(returns[1:]), regime, config


@pytest.fixture(scope="session")
def ray_runtime(tmp_path_factory):
    """One local Ray for the whole session (2 CPUs, no dashboard), started on first use.

    Ray is a pinned dependency, so a missing install fails; a Ray that cannot start on this
    machine (no shared memory, no free ports, ...) skips the tests that need it, saying why.
    """
    from forecaster.runtime.engine import EngineUnavailable, start_ray

    try:
        import ray  # noqa: F401
    except ImportError as exc:
        pytest.fail(f"Ray is a pinned dependency but is not installed: {exc}")
    # Workers inherit this process's environment: keep yfinance's disk caches out of the user's.
    cache, saved = tmp_path_factory.mktemp("ray-worker-cache"), os.environ.get("XDG_CACHE_HOME")
    os.environ["XDG_CACHE_HOME"] = str(cache)
    try:
        ray = start_ray("", num_cpus=2)
    except EngineUnavailable as exc:
        pytest.skip(f"Ray cannot start on this machine: {exc}")
    finally:
        if saved is None:
            os.environ.pop("XDG_CACHE_HOME", None)
        else:
            os.environ["XDG_CACHE_HOME"] = saved
    yield ray
    ray.shutdown()
