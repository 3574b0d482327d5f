"""Stock price forecasting with fuzzy-clustering-weighted LSTM experts (patent CN110348608A).

from forecaster import FuzzyLSTMForecaster, ForecasterConfig
from forecaster.data import load_sample

bars = load_sample()
model = FuzzyLSTMForecaster(ForecasterConfig()).fit(bars)
model.predict(bars)          # next 5 trading days per ticker, intervals, memberships
"""

from forecaster.config import (
    ClusterConfig,
    ExpertConfig,
    ForecasterConfig,
    Settings,
    TrainConfig,
    WindowConfig,
)

__all__ = [
    "ClusterConfig",
    "ExpertConfig",
    "ForecasterConfig",
    "FuzzyCMeans",
    "FuzzyLSTMForecaster",
    "Settings",
    "TrainConfig",
    "WindowConfig",
]


def __getattr__(name: str):
    # Lazy, so `forecaster --help` and settings do not pay for importing torch.
    if name == "FuzzyLSTMForecaster":
        from forecaster.model import FuzzyLSTMForecaster

        return FuzzyLSTMForecaster
    if name == "FuzzyCMeans":
        from forecaster.clustering import FuzzyCMeans

        return FuzzyCMeans
    raise AttributeError(name)
