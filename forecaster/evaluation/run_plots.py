"""The plots of a training run, written to one folder (quickstart and the retrain job log it to MLflow).

Per ticker: `fan_<ticker>.png`, the forecast just made over the recent closes with its quantile
bands and the regime; `regimes_<ticker>.png`, the price and the memberships over time, named by
regime; `test_<ticker>.png`, the h-day-ahead forecast against what happened on the held-out
block. For the run: `error_by_horizon.png` (held-out block, model against naive) and
`cluster_profiles.png` (what each regime looks like).
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import numpy as np
import pandas as pd

from forecaster.evaluation import plots
from forecaster.evaluation.plot_style import regime_title
from forecaster.features.splits import split_windows
from forecaster.features.windows import make_windows
from forecaster.model import FuzzyLSTMForecaster

log = logging.getLogger(__name__)

MAX_DEFAULT_TICKERS = 10  # a universe of hundreds gets plots of its first tickers unless asked


def plot_tickers(bars: pd.DataFrame, wanted: list[str] | None = None) -> list[str]:
    """The tickers to plot: `wanted` (each must be in `bars`), else the first few of the run."""
    have = sorted(bars["ticker"].unique())
    if wanted:
        missing = [t for t in wanted if t not in have]
        if missing:
            raise ValueError(
                f"--plot-tickers: {', '.join(missing)} not in the data ({', '.join(have[:10])}...)"
            )
        return list(wanted)
    if len(have) > MAX_DEFAULT_TICKERS:
        log.info("plotting %d of %d tickers; --plot-tickers chooses others", MAX_DEFAULT_TICKERS, len(have))
    return have[:MAX_DEFAULT_TICKERS]


def write_run_plots(
    model: FuzzyLSTMForecaster, bars: pd.DataFrame, folder: Path, tickers: list[str] | None = None
) -> list[Path]:
    """Write the run's plots for `tickers` (see `plot_tickers`) into `folder`; returns the paths."""
    folder = Path(folder)
    tickers = plot_tickers(bars, tickers)
    labels = model.regime_labels_
    chosen = bars[bars["ticker"].isin(tickers)]
    forecast = model.predict(chosen)
    # Split on every ticker's windows, as `fit` did, then keep the plotted ones.
    windows = make_windows(bars, model.config.window)
    test = split_windows(windows, model.config.window)["test"]
    test = test.subset(np.isin(test.ticker, tickers))
    windows = windows.subset(np.isin(windows.ticker, tickers))
    memberships = model.predict_windows(windows, intervals=False).memberships
    test_pred = model.predict_windows(test) if len(test) else None

    paths = []
    for ticker in tickers:
        name = _file_name(ticker)
        rows = forecast[forecast["ticker"] == ticker]
        u = rows[sorted(c for c in rows.columns if c.startswith("u_"))].to_numpy()[0]
        regime = regime_title(u, labels) if len(u) else None  # "no clear regime" when near uniform
        paths.append(
            plots.plot_fan_chart(
                chosen[chosen["ticker"] == ticker], rows, folder / f"fan_{name}.png", regime=regime
            )
        )
        paths.append(
            plots.plot_memberships(windows, memberships, ticker, folder / f"regimes_{name}.png", labels)
        )
        if test_pred is not None and (test.ticker == ticker).any():
            paths.append(plots.plot_forecast_vs_actual(test, test_pred, ticker, folder / f"test_{name}.png"))
    if test_pred is not None:
        by_horizon = _error_by_horizon(test, test_pred, model.config.cluster.gate)
        paths.append(plots.plot_error_by_horizon(by_horizon, folder / "error_by_horizon.png"))
    paths.append(
        plots.plot_cluster_profiles(
            model.clusterer_.centers_,
            model.config.cluster.descriptors,
            folder / "cluster_profiles.png",
            labels,
        )
    )
    return paths


def _error_by_horizon(test, pred, name: str) -> pd.DataFrame:
    """RMSE of the cumulative log return per horizon, the model's and the naive (zero) forecast's."""
    actual = np.cumsum(test.y.astype(np.float64), axis=1)  # [N, H]
    model_rmse = np.sqrt(np.mean((pred.log_return - actual) ** 2, axis=0))
    naive_rmse = np.sqrt(np.mean(actual**2, axis=0))
    horizon = np.arange(1, actual.shape[1] + 1)
    return pd.DataFrame(
        {
            "model": np.repeat([name, "naive"], len(horizon)),
            "horizon": np.tile(horizon, 2),
            "return_rmse": np.concatenate([model_rmse, naive_rmse]),
            "return_theil_u": np.concatenate([model_rmse / naive_rmse, np.ones_like(naive_rmse)]),
        }
    )


def _file_name(ticker: str) -> str:
    """`^GSPC` -> `GSPC`, `BRK/B` -> `BRK_B`: a ticker as part of a file name."""
    return re.sub(r"[^\w.-]", "_", ticker.replace("^", ""))
