"""Stock price forecasting with fuzzy-clustering-weighted LSTM experts (patent CN110348608A).

from forecaster import FuzzyLSTMForecaster, ForecasterConfig
from forecaster.data import load_sample

bars = load_sample()
model = FuzzyLSTMForecaster(ForecasterConfig()).fit(bars)
model.predict(bars)          # next 5 trading days per ticker, intervals, memberships, regime
forecaster.plot_fan(model.predict(bars), "^GSPC")   # matplotlib Axes; see docs "Python API"
"""

from forecaster._version import __version__
from forecaster.runtime.threads import passive_waiting

passive_waiting()  # before anything imports torch: OpenMP reads its wait policy once, at start

# Lazy, so `forecaster --version` pays for nothing and settings do not pay for torch: name -> module.
_LAZY = {
    **{
        name: "forecaster.config"
        for name in (
            "ClusterConfig",
            "ExpertConfig",
            "ForecasterConfig",
            "Settings",
            "TrainConfig",
            "WindowConfig",
        )
    },
    "ACIState": "forecaster.calibration.aci",
    "FuzzyLSTMForecaster": "forecaster.model",
    "FuzzyCMeans": "forecaster.regimes.fcm",
    "load_bars": "forecaster.data",
    "load_sample": "forecaster.data",
    "backtest_model": "forecaster.evaluation.api",
    "plot_fan": "forecaster.evaluation.charts",
    "plot_memberships": "forecaster.evaluation.charts",
}

__all__ = [
    "ACIState",
    "ClusterConfig",
    "ExpertConfig",
    "ForecasterConfig",
    "FuzzyCMeans",
    "FuzzyLSTMForecaster",
    "Settings",
    "TrainConfig",
    "WindowConfig",
    "__version__",
    "backtest_model",
    "load_bars",
    "load_sample",
    "plot_fan",
    "plot_memberships",
]


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'forecaster' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
