"""The backtest from Python: `backtest_model(model, bars)` -> a `Backtest` of the report's tables.

The estimator cannot run its own backtest as a method: the backtest refits the model, so
evaluation sits above the model in the layers (pyproject.toml) and the model never imports it.
`forecaster.backtest_model` is this function.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd

from forecaster.config import ForecasterConfig
from forecaster.evaluation.backtest import BacktestResult, walk_forward
from forecaster.evaluation.charts import draw_error_by_horizon
from forecaster.evaluation.report import report_tables, write_report


@dataclass
class Backtest:
    """A walk-forward backtest and its report's tables (`report.report_tables`), by name.

    `summary` has one row per model (errors, coverage, pinball, CRPS, Diebold-Mariano p-values);
    `tables` also holds by_horizon, by_fold, by_ticker, dm_tests, reliability, conditional
    coverage and the evidence tables; `forecasts` is one row per model, ticker, origin and horizon.
    """

    result: BacktestResult
    tables: dict[str, pd.DataFrame]

    @property
    def summary(self) -> pd.DataFrame:
        return self.tables["summary"]

    @property
    def forecasts(self) -> pd.DataFrame:
        return self.result.forecasts

    @property
    def memberships(self) -> pd.DataFrame:
        return self.result.memberships

    def plot(self, axes=None):
        """Return-scale RMSE and Theil's U of every model against the horizon: (left, right) Axes."""
        if axes is None:
            axes = plt.subplots(1, 2, figsize=(12, 4.5))[1]
        draw_error_by_horizon(*axes, self.tables["by_horizon"])
        return tuple(axes)

    def write(self, folder: str | Path) -> dict[str, Path]:
        """The report's files (CSV and Markdown tables, PNG plots) in `folder`, as `forecaster backtest` writes."""
        return write_report(self.result, folder)


def backtest_model(
    model,
    bars: pd.DataFrame,
    *,
    start=None,
    end=None,
    refit_every: int = 250,
    models: Sequence[str] = ("naive", "fuzzy"),
    **options,
) -> Backtest:
    """Walk-forward backtest of a model's configuration against other `models` on `bars`.

    `model`: a `FuzzyLSTMForecaster` (fitted or not: only its `config` is read, every fold
    refits it on the past) or a `ForecasterConfig`. `models` are names of
    `backtest.competitors()`; `options` go to `backtest.walk_forward` (train_days, progress, engine, refit).
    """
    config = model if isinstance(model, ForecasterConfig) else model.config
    result = walk_forward(
        bars, config, start=start, end=end, refit_every=refit_every, models=tuple(models), **options
    )
    return Backtest(result, report_tables(result))
