"""Charts drawn on axes and returned, for notebooks and scripts; `plots` saves the same ones as PNGs.

- `plot_fan`: one ticker's forecast (a row per horizon of `model.predict`) as a fan of quantile
  bands around the point forecast, after its recent closes when given the bars;
- `plot_memberships`: price and fuzzy memberships over time (`model.regimes(bars)`, or any frame
  with ticker, as_of or origin, last_price and u_k columns, such as historical forecasts);
- `draw_*`: the drawing itself on given axes, which `plots` shares.

This module leaves matplotlib's backend alone (a notebook keeps its inline figures).
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.ticker import MaxNLocator

from forecaster.evaluation.plot_style import legend_outside, log_price_axis, regime_colours, regime_names


def plot_fan(frame: pd.DataFrame, ticker: str | None = None, bars: pd.DataFrame | None = None, *, ax=None,
             regime: str | None = None, last_n: int = 120):  # fmt: skip
    """The fan chart of `ticker`'s rows in a forecast table (the only ticker when None): Axes.

    `bars` (optional) adds its last `last_n` adjusted closes before the fan; `ax` draws on
    given axes instead of a new figure.
    """
    rows = _one_ticker(frame, ticker)
    history = None
    if bars is not None:
        history = bars.loc[bars["ticker"] == rows["ticker"].iloc[0], ["date", "adj_close"]]
    if ax is None:
        fig, ax = plt.subplots(figsize=(10, 4.8))
        fig.autofmt_xdate()  # slanted dates: on a figure of its own only, as it hides other rows' dates
    return draw_fan(ax, rows, history, regime=regime, last_n=last_n)


def plot_memberships(frame: pd.DataFrame, ticker: str | None = None, labels=None, *, axes=None):
    """Price (log scale) above and memberships as a stacked area below, for one ticker: (top, bottom).

    `labels` name the regimes (the model's `regime_labels_`); without them, the frame's
    `regime_label` column names those it holds, else clusters are named by volatility.
    """
    rows = _one_ticker(frame, ticker)
    date = "as_of" if "as_of" in rows else "origin"
    rows = rows.drop_duplicates(date).sort_values(date)  # a forecast table repeats a window per horizon
    u = rows[sorted((c for c in rows.columns if c.startswith("u_")), key=lambda c: int(c[2:]))].to_numpy()
    if labels is None and "regime_label" in rows:
        named = dict(zip(rows["regime"], rows["regime_label"], strict=True))
        labels = [named[k] for k in range(u.shape[1])] if len(named) == u.shape[1] else None
    if axes is None:
        axes = plt.subplots(2, 1, figsize=(11, 6), sharex=True, height_ratios=(2, 1))[1]
    top, bottom = axes
    draw_regimes(
        top,
        bottom,
        pd.to_datetime(rows[date]),
        rows["last_price"].to_numpy(),
        u,
        rows["ticker"].iloc[0],
        labels,
    )
    return top, bottom


def _one_ticker(frame: pd.DataFrame, ticker: str | None) -> pd.DataFrame:
    have = list(pd.unique(frame["ticker"]))
    if ticker is None and len(have) == 1:
        ticker = have[0]
    if ticker not in have:
        raise ValueError(f"ticker {ticker!r} is not in the frame; it has {', '.join(map(str, have[:10]))}")
    return frame[frame["ticker"] == ticker]


def draw_fan(
    ax, forecast: pd.DataFrame, history: pd.DataFrame | None = None, *, regime=None, last_n: int = 120
):
    """Draw one ticker's forecast rows as a fan of quantile bands on `ax`, after `history` (date, adj_close).

    Bands pair the levels q and 1 - q (e.g. 0.025 and 0.975: the central 95%); all start at the
    last close. Returns `ax`.
    """
    forecast = forecast.sort_values("horizon")
    ticker, as_of = forecast["ticker"].iloc[0], pd.Timestamp(forecast["as_of"].iloc[0])
    last = float(forecast["last_price"].iloc[0])
    dates = pd.DatetimeIndex([as_of, *pd.to_datetime(forecast["target_date"])])
    path_of = lambda column: np.concatenate([[last], forecast[column].to_numpy(np.float64)])  # noqa: E731
    columns = {float(c.removeprefix("quantile_")): c for c in forecast.columns if c.startswith("quantile_")}
    pairs = sorted((q, o) for q in columns for o in columns if q < 0.5 and abs(q + o - 1) < 1e-9)
    first = as_of
    if history is not None:
        history = history.sort_values("date").tail(last_n)
        first = history["date"].iloc[0]
        ax.plot(history["date"], history["adj_close"], color="black", linewidth=1.2, label="adjusted close")
    blues = plt.get_cmap("Blues")
    for i, (lo, hi) in enumerate(pairs):  # widest first, so narrower bands are drawn on top
        ax.fill_between(
            dates,
            path_of(columns[lo]),
            path_of(columns[hi]),
            color=blues(0.25 + 0.5 * i / max(len(pairs) - 1, 1)),
            linewidth=0,
            label=f"{round(100 * (hi - lo))}% band",
        )
    median = path_of("forecast")
    ax.plot(dates, median, color="tab:blue", linewidth=2, marker="o", markersize=3, label="forecast (median)")
    ax.axvline(as_of, color="grey", linewidth=0.8, linestyle=":")
    ax.annotate(
        f"{median[-1]:,.2f}",
        (dates[-1], median[-1]),
        xytext=(6, 0),
        textcoords="offset points",
        va="center",
        fontsize="small",
        color="tab:blue",
    )
    when = f"{len(forecast)} sessions after {as_of.date()}"
    ax.set_title(f"{ticker}: forecast of the next {when}" + (f"\nregime: {regime}" if regime else ""))
    ax.set(ylabel="adjusted close", xlabel="date")
    ax.grid(alpha=0.3)
    legend_outside(ax)
    ax.set_xlim(first, dates[-1] + (dates[-1] - first) * 0.08)
    return ax


def draw_regimes(top, bottom, dates, prices: np.ndarray, memberships: np.ndarray, ticker: str, labels=None):
    """Price (log scale) on `top`, memberships [N, c] as a stacked area on `bottom`, named by regime.

    Colours run from calm (blue) to turbulent (red).
    """
    u = np.nan_to_num(memberships)  # a fold with fewer clusters leaves its extra columns empty
    names = regime_names(labels, u.shape[1])
    top.plot(dates, prices, color="black", linewidth=1)
    log_price_axis(top, prices)
    top.set_ylabel("adjusted close (log scale)")
    top.set_title(f"{ticker}: price and fuzzy regime memberships")
    top.grid(alpha=0.3)
    bottom.stackplot(dates, u.T, labels=names, colors=regime_colours(names), alpha=0.85)
    bottom.set_ylim(0, 1)
    bottom.set_ylabel("membership")
    bottom.set_xlabel("window end date")
    legend_outside(bottom)


def draw_error_by_horizon(left, right, by_horizon: pd.DataFrame) -> None:
    """Return-scale RMSE (`left`) and Theil's U (`right`) of every model against the horizon."""
    for model, rows in by_horizon.groupby("model", sort=True, observed=True):
        style = {"linewidth": 2.2} if model == "fuzzy" else {"linewidth": 1.2}
        left.plot(rows["horizon"], rows["return_rmse"], marker="o", label=str(model), **style)
        right.plot(rows["horizon"], rows["return_theil_u"], marker="o", label=str(model), **style)
    left.set(title="RMSE of the cumulative log return", ylabel="RMSE (log return)")
    right.set(title="Theil's U (RMSE / naive RMSE; below 1 beats naive)", ylabel="Theil's U")
    right.axhline(1.0, color="black", linewidth=0.8)
    for ax in (left, right):
        ax.set_xlabel("horizon (trading days)")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    left.legend(fontsize="small")
