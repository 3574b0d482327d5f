"""The pyfunc model: how a saved model directory is logged to and loaded from MLflow."""

from __future__ import annotations

import mlflow
import pandas as pd

from forecaster.data import validate_bars
from forecaster.model import FuzzyLSTMForecaster


class ForecasterPyfunc(mlflow.pyfunc.PythonModel):
    """Pyfunc wrapper: the artifact is a saved model directory; predict takes bars, returns forecasts.

    Input: a frame of daily bars (`ticker, date, open, high, low, close, adj_close, volume`), one or
    more tickers with at least `window + 1` bars each. Output: one row per ticker and horizon with
    target date, point forecast, interval bounds, memberships `u_k` and per-expert forecasts.
    """

    def load_context(self, context) -> None:
        self.model = FuzzyLSTMForecaster.load(context.artifacts["model_dir"])

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        return self.model.predict(validate_bars(pd.DataFrame(model_input)))


def load_model(uri: str) -> FuzzyLSTMForecaster:
    """The forecaster behind a pyfunc model URI (`models:/fcm-lstm@champion`, `runs:/...`)."""
    return mlflow.pyfunc.load_model(uri).unwrap_python_model().model
