"""Stock price forecasting with fuzzy-clustering-weighted LSTM experts (patent CN110348608A).

from forecaster import FuzzyLSTMForecaster, ForecasterConfig
from forecaster.data import load_sample

bars = load_sample()
model = FuzzyLSTMForecaster(ForecasterConfig()).fit(bars)
model.predict(bars)          # next 5 trading days per ticker, intervals, memberships
"""

from importlib import metadata as _metadata

from forecaster.config import (
    ClusterConfig,
    ExpertConfig,
    ForecasterConfig,
    Settings,
    TrainConfig,
    WindowConfig,
)
from forecaster.runtime.threads import passive_waiting

passive_waiting()  # before anything imports torch: OpenMP reads its wait policy once, at start

try:
    __version__ = _metadata.version("fcm-lstm-forecaster")
except _metadata.PackageNotFoundError:  # a source tree that was never installed
    __version__ = "0+unknown"

# Lazy, so `forecaster --help` and settings do not pay for importing torch: name -> module.
_LAZY = {
    "FuzzyLSTMForecaster": "forecaster.model",
    "FuzzyCMeans": "forecaster.regimes.fcm",
    "load_bars": "forecaster.data",
    "load_sample": "forecaster.data",
}

__all__ = [
    "ClusterConfig",
    "ExpertConfig",
    "ForecasterConfig",
    "FuzzyCMeans",
    "FuzzyLSTMForecaster",
    "Settings",
    "TrainConfig",
    "WindowConfig",
    "__version__",
    "load_bars",
    "load_sample",
]


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'forecaster' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
