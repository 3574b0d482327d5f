"""The served model: loaded once at start-up, swapped atomically when the registry alias moves.

Requests read `state.current` once and keep that reference, so a swap never changes the model
under a request in flight; the old model is freed when the last such request finishes.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from forecaster.model import FuzzyLSTMForecaster
from forecaster.sessions import future_sessions

log = logging.getLogger("service.model")


@dataclass(frozen=True)
class LoadedModel:
    forecaster: FuzzyLSTMForecaster
    uri: str
    name: str
    version: str | None
    alias: str | None
    run_id: str | None
    loaded_at: datetime = field(default_factory=lambda: datetime.now(UTC))


def load(uri: str, default_name: str) -> LoadedModel:
    """A local model directory, or a registry URI (`models:/name@alias`, `models:/name/3`)."""
    if Path(uri).is_dir():
        model = FuzzyLSTMForecaster.load(uri)
        loaded = LoadedModel(model, uri, default_name, None, None, None)
    else:
        from forecaster import tracking

        ref = tracking.resolve_model_uri(uri)
        # Load the exact version the alias points at, so the version we report is the one we serve.
        model = tracking.load_model(f"models:/{ref.name}/{ref.version}")
        loaded = LoadedModel(model, uri, ref.name, ref.version, ref.alias, ref.run_id)
    warm_up(loaded.forecaster)
    return loaded


def warm_up(model: FuzzyLSTMForecaster) -> None:
    """One prediction on a synthetic window: first-call costs (allocations, the calendar) happen now."""
    from forecaster.windows import window_from_arrays

    n = model.config.window.window + 1
    rng = np.random.default_rng(0)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    arrays = {
        "date": np.arange(np.datetime64("2024-01-02"), np.datetime64("2024-01-02") + n),
        "adj_close": close, "high": close * 1.01, "low": close * 0.99, "volume": np.full(n, 1e6),
    }  # fmt: skip
    window = window_from_arrays("WARMUP", arrays, model.config.window)
    model.predict_windows(window)
    future_sessions(window.origin, model.config.window.horizon, model.config.window.calendar)


class ModelState:
    """Holds the current model and polls the registry for a moved alias."""

    def __init__(self, uri: str, default_name: str):
        self.uri, self.default_name = uri, default_name
        self.current: LoadedModel | None = None
        self.registry = "not polled"
        self.registry_checked_at: datetime | None = None

    @property
    def polls_registry(self) -> bool:
        return self.uri.startswith("models:/") and "@" in self.uri

    def load_initial(self) -> None:
        try:
            self.current = load(self.uri, self.default_name)
            self.registry = "ok" if self.polls_registry else "not polled"
            log.info("serving %s v%s from %s", self.current.name, self.current.version, self.uri)
        except Exception as exc:  # the service still starts; /readyz says why it is not ready
            self.registry = f"unreachable or no model: {exc}"
            log.error("could not load %s: %s", self.uri, exc)
        self.registry_checked_at = datetime.now(UTC)

    def check_once(self) -> bool:
        """Load and swap in the version the alias points at, if it moved. Blocking; True on swap."""
        from forecaster import tracking

        try:
            ref = tracking.resolve_model_uri(self.uri)
        except Exception as exc:
            self.registry = f"unreachable: {type(exc).__name__}: {str(exc)[:200]}"
            self.registry_checked_at = datetime.now(UTC)
            log.warning("registry check failed, keeping the current model: %s", self.registry)
            return False
        self.registry, self.registry_checked_at = "ok", datetime.now(UTC)
        if self.current is not None and self.current.version == ref.version:
            return False
        fresh = load(self.uri, self.default_name)  # loaded and warmed beside the old one
        old, self.current = self.current, fresh  # one reference assignment: atomic for readers
        log.info("alias moved: now serving v%s (was v%s)", fresh.version, old.version if old else None)
        return True
