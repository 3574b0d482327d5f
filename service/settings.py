"""Service settings: the forecaster's runtime Settings plus what only the HTTP service needs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import Field, field_validator
from pydantic_settings import NoDecode

from forecaster.config import Settings


class ServiceSettings(Settings):
    """`FORECASTER_*` variables, validated once at start-up (see `forecaster.config.Settings`)."""

    model_uri: str = "models:/fcm-lstm@champion"  # or a local model directory
    api_keys: Annotated[list[str], NoDecode] = []  # FORECASTER_API_KEYS="key1,key2"; empty = no auth
    api_keys_file: Path | None = None  # one key per line; joins api_keys
    max_batch_tickers: int = 50
    max_bars: int = 5000  # per request
    max_body_bytes: int = 2_000_000  # counted as received: chunked bodies too (413 past it)
    body_timeout_s: float = 10.0  # the whole body must arrive within this, else 408
    # A connection's request headers must arrive within this of its opening (or of the last
    # response), else it is closed (service.protocol; 408 when half a request came in).
    header_timeout_s: float = Field(10.0, gt=0)
    reload_interval_s: float = 30.0  # registry polling for a moved alias; 0 turns hot reload off
    # Without the registry (no model, or the cached champion): how often it is retried, reload or not.
    registry_retry_s: float = 5.0
    refresh_timeout_s: float = 3.0  # a request waits this long for a source refresh, then uses the cache
    refresh_retry_s: float = 30.0  # after a failed refresh, the ticker is served from the cache this long
    torch_threads: int = 1  # per worker: workers x threads should not exceed the cores
    # How long a worker reuses what it read from the forecast store: a ticker's ACI state (which
    # the batch job writes once a day) and the tickers-per-regime gauge of /metrics.
    store_cache_s: float = 60.0
    # POST /v1/risk and /v1/rank: simulated paths of the joint forecast (seeded), how many stored
    # tickers one request may name, and how many simulations (model, tickers, bars, horizon) a
    # worker keeps for the requests that ask again (0: none; 100 tickers x 10,000 paths: 8 MB each).
    joint_paths: int = Field(10_000, ge=100)
    max_joint_tickers: int = Field(500, ge=1)
    joint_cache_size: int = Field(4, ge=0)

    @field_validator("api_keys", mode="before")
    @classmethod
    def _split_keys(cls, value):
        if isinstance(value, str):
            return [k.strip() for k in value.split(",") if k.strip()]
        return value

    @property
    def serving_cache_dir(self) -> Path:
        """Copies of the registry models served, so a restart during a registry outage can serve."""
        return self.home / "serving-cache"

    def all_api_keys(self) -> list[str]:
        keys = list(self.api_keys)
        if self.api_keys_file:
            lines = self.api_keys_file.read_text().splitlines()
            keys += [line.strip() for line in lines if line.strip() and not line.startswith("#")]
        return keys
