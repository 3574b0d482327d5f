"""Plots people can read: labelled price axes, regimes by name, and no regime claimed from noise."""

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from forecaster.evaluation.plot_style import log_price_ticks, regime_title
from forecaster.evaluation.plots import plot_backtest_memberships, regimes_figure


def labelled_ticks(ax, low: float, high: float) -> list[str]:
    """The visible labels of the y axis's ticks inside [low, high], after drawing."""
    ax.figure.canvas.draw()
    return [
        t.get_text()
        for t, value in zip(ax.get_yticklabels(), ax.get_yticks(), strict=True)
        if low <= value <= high and t.get_text()
    ]


@pytest.mark.parametrize("low, high", [(700.0, 2900.0), (1200.0, 2200.0), (20.0, 3000.0), (95.0, 130.0)])
def test_log_price_axis_labels_its_whole_range(low, high):
    dates = pd.bdate_range("2007-01-01", periods=300)
    prices = np.geomspace(low, high, 300)
    fig = regimes_figure(dates, prices, np.full((300, 3), 1 / 3), "TEST", ["calm", "normal", "turbulent"])
    top = fig.axes[0]
    labels = labelled_ticks(top, low, high)
    plt.close(fig)
    assert len(labels) >= 4, labels
    # Labels spread over the range: the largest gap between neighbours is under half of it (in log).
    ticks = log_price_ticks(low, high)
    gaps = np.diff(np.log([low, *ticks, high]))
    assert gaps.max() < 0.5 * np.log(high / low), (ticks, gaps)
    assert all("10^" not in label and "$" not in label for label in labels)


def test_backtest_memberships_are_named_by_regime_not_cluster_number(tmp_path):
    # The backtest's memberships carry no labels: clusters ordered calm first are named by volatility.
    origins = pd.bdate_range("2018-01-01", periods=40)
    fig = regimes_figure(origins, np.linspace(100, 120, 40), np.tile([0.6, 0.3, 0.1], (40, 1)), "AAA")
    legend = [t.get_text() for ax in fig.axes if ax.get_legend() for t in ax.get_legend().get_texts()]
    plt.close(fig)
    assert legend == ["calm", "normal", "turbulent"]
    members = pd.DataFrame({"ticker": "AAA", "origin": origins, "fold": 0})
    members[["u_0", "u_1", "u_2"]] = np.tile([0.6, 0.3, 0.1], (40, 1))
    forecasts = pd.DataFrame({"ticker": "AAA", "horizon": 1, "origin": origins, "last_price": 100.0})
    assert plot_backtest_memberships(forecasts, members, "AAA", tmp_path / "m.png").stat().st_size > 10_000


def test_a_near_uniform_membership_names_no_regime():
    labels = ["calm, rising", "normal, falling", "turbulent, falling"]
    assert regime_title([0.34, 0.33, 0.33], labels).startswith("no clear regime (largest membership 0.34")
    assert regime_title([0.42, 0.30, 0.28], labels).startswith("no clear regime")
    assert regime_title([0.45, 0.30, 0.25], labels) == "calm, rising (membership 0.45)"
    assert regime_title([0.2, 0.8], None) == "turbulent (membership 0.80)"
