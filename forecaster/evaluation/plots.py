"""PNG plots for people: forecasts against what happened, regimes over time, backtest errors."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; never needs a display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from forecaster.evaluation.charts import draw_error_by_horizon, draw_fan, draw_regimes  # noqa: E402
from forecaster.evaluation.plot_style import (  # noqa: E402
    DESCRIPTOR_NAMES,
    legend_outside,
    regime_colours,
    regime_names,
)
from forecaster.features.windows import WindowSet  # noqa: E402


def plot_forecast_vs_actual(
    windows: WindowSet,
    pred,
    ticker: str,
    path: Path,
    *,
    horizon: int | None = None,
    last_n: int = 250,
) -> Path:
    """Actual price and the h-step-ahead forecast with its conformal bands, on labelled windows."""
    h = (horizon or pred.price.shape[1]) - 1
    rows = np.flatnonzero(windows.ticker == ticker)[-last_n:]
    target_dates = pd.to_datetime(windows.target_dates[rows, h])
    actual = windows.target_prices()[rows, h]
    fig, ax = plt.subplots(figsize=(11, 4.5))
    for level, alpha in zip(sorted(pred.intervals, reverse=True), (0.15, 0.3), strict=False):
        lo, hi = pred.intervals[level]
        ax.fill_between(
            target_dates,
            lo[rows, h],
            hi[rows, h],
            alpha=alpha,
            color="tab:blue",
            label=f"{round(100 * level)}% interval",
            linewidth=0,
        )
    ax.plot(target_dates, actual, color="black", linewidth=1.2, label="actual")
    ax.plot(
        target_dates,
        pred.price[rows, h],
        color="tab:blue",
        linewidth=1,
        label=f"forecast ({h + 1}-day ahead)",
    )
    ax.set_title(f"{ticker}: {h + 1}-day-ahead forecast vs actual, held-out block")
    ax.set(ylabel="adjusted close", xlabel="target date")
    legend_outside(ax)
    ax.grid(alpha=0.3)
    return _save(fig, path)


def plot_memberships(
    windows: WindowSet,
    memberships: np.ndarray,
    ticker: str,
    path: Path,
    labels: list[str] | None = None,
) -> Path:
    """Price on top, the fuzzy regime memberships of each window as a stacked area below."""
    rows = np.flatnonzero(windows.ticker == ticker)
    return plot_regimes(
        pd.to_datetime(windows.origin[rows]),
        windows.last_price[rows],
        memberships[rows],
        ticker,
        path,
        labels,
    )


def plot_regimes(
    dates,
    prices: np.ndarray,
    memberships: np.ndarray,
    ticker: str,
    path: Path,
    labels: list[str] | None = None,
) -> Path:
    """Price (log scale) on top and memberships [N, c] as a stacked area below, on shared dates.

    `labels` name the regimes (the model's `regime_labels_`; without them the clusters, ordered
    calm first, are named by volatility); colours run from calm (blue) to turbulent (red).
    """
    return _save(regimes_figure(dates, prices, memberships, ticker, labels), path)


def regimes_figure(dates, prices: np.ndarray, memberships: np.ndarray, ticker: str, labels=None):
    """The figure of `plot_regimes`, not yet saved (`charts.draw_regimes`)."""
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(11, 6), sharex=True, height_ratios=(2, 1))
    draw_regimes(top, bottom, dates, prices, memberships, ticker, labels)
    return fig


def plot_fan_chart(
    history: pd.DataFrame,
    forecast: pd.DataFrame,
    path: Path,
    *,
    regime: str | None = None,
    last_n: int = 120,
) -> Path:
    """One ticker's recent adjusted close and the forecast just made, as a fan of quantile bands.

    `history`: that ticker's bars (date, adj_close); `forecast`: its rows of `model.predict`
    (as_of, last_price, target_date, forecast and `quantile_<level>` columns); see `charts.draw_fan`.
    """
    fig, ax = plt.subplots(figsize=(10, 4.8))
    draw_fan(ax, forecast, history, regime=regime, last_n=last_n)
    fig.autofmt_xdate()
    return _save(fig, path)


# ---- backtest (long frames from forecaster.evaluation.walk_forward) ---------------------------


def plot_backtest_forecast(
    forecasts: pd.DataFrame, model: str, ticker: str, horizon: int, path: Path
) -> Path:
    """Actual price and one model's h-step-ahead backtest forecast with its intervals, by target date."""
    rows = forecasts[
        (forecasts["model"] == model) & (forecasts["ticker"] == ticker) & (forecasts["horizon"] == horizon)
    ].sort_values("target_date")
    fig, ax = plt.subplots(figsize=(12, 4.5))
    levels = sorted((c.removeprefix("lower_") for c in rows.columns if c.startswith("lower_")), key=int)
    for pct, alpha in zip(reversed(levels), (0.15, 0.3), strict=False):
        if rows[f"lower_{pct}"].notna().any():
            ax.fill_between(
                rows["target_date"],
                rows[f"lower_{pct}"],
                rows[f"upper_{pct}"],
                alpha=alpha,
                color="tab:blue",
                linewidth=0,
                label=f"{pct}% interval",
            )
    ax.plot(rows["target_date"], rows["actual"], color="black", linewidth=1, label="actual")
    ax.plot(rows["target_date"], rows["forecast"], color="tab:blue", linewidth=0.8, label=f"{model} forecast")
    refits = forecasts.loc[forecasts["ticker"] == ticker].groupby("fold")["origin"].min().iloc[1:]
    for i, refit in enumerate(refits):  # dotted, and dark enough to see over the bands
        ax.axvline(refit, color="dimgrey", linewidth=1.2, linestyle=":", label="refit" if i == 0 else None)
    ax.set_title(f"{ticker}: walk-forward {horizon}-day-ahead forecast vs actual")
    legend_outside(ax)
    ax.grid(alpha=0.3)
    return _save(fig, path)


def plot_error_by_horizon(by_horizon: pd.DataFrame, path: Path) -> Path:
    """Return-scale RMSE and Theil's U of every model against the horizon (rows of `score`)."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    draw_error_by_horizon(left, right, by_horizon)
    return _save(fig, path)


def plot_backtest_memberships(
    forecasts: pd.DataFrame, memberships: pd.DataFrame, ticker: str, path: Path
) -> Path:
    """The price at each backtest origin and the fuzzy memberships the model gave that window."""
    members = memberships[memberships["ticker"] == ticker].sort_values("origin")
    prices = (
        forecasts[(forecasts["ticker"] == ticker) & (forecasts["horizon"] == 1)]
        .drop_duplicates("origin")
        .set_index("origin")["last_price"]
    )
    u = members[[c for c in members.columns if c.startswith("u_")]].to_numpy()
    return plot_regimes(members["origin"], prices.reindex(members["origin"]).to_numpy(), u, ticker, path)


def _save(fig, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_cluster_profiles(
    centers: np.ndarray, descriptors: tuple[str, ...], path: Path, labels: list[str] | None = None
) -> Path:
    """Each fuzzy cluster center as a profile over the regime descriptors (standardized units)."""
    n_clusters, n_desc = centers.shape
    names = regime_names(labels, n_clusters)
    colours = regime_colours(names)
    fig, ax = plt.subplots(figsize=(9, 4))
    width = 0.8 / n_clusters
    for k in range(n_clusters):
        ax.bar(np.arange(n_desc) + k * width, centers[k], width, label=names[k], color=colours[k])
    ax.set_xticks(np.arange(n_desc) + 0.4 - width / 2, [DESCRIPTOR_NAMES.get(d, d) for d in descriptors])
    ax.set_xlabel("regime descriptor of a window")
    ax.axhline(0, color="black", linewidth=0.8)
    ax.set_ylabel("standard deviations from the mean window")
    ax.set_title("Fuzzy cluster centers: what each regime looks like")
    legend_outside(ax)
    ax.grid(alpha=0.3, axis="y")
    return _save(fig, path)


# ---- distributional forecasts (tables from forecaster.evaluation.scoring) -----------------------


def plot_reliability(table: pd.DataFrame, path: Path) -> Path:
    """Nominal quantile level against the observed share of outcomes below it, per model.

    Left: the reliability diagram (on the diagonal = calibrated). Right: observed minus nominal in
    percentage points, where the differences between models are visible.
    """
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.8))
    for model, rows in table.groupby("model", sort=True, observed=True):
        style = {"linewidth": 2.4} if model == "fuzzy" else {"linewidth": 1.2}
        left.plot(rows["level"], rows["observed"], marker="o", markersize=3, label=str(model), **style)
        right.plot(rows["level"], 100 * (rows["observed"] - rows["level"]), marker="o", markersize=3, **style)
    left.plot([0, 1], [0, 1], color="black", linewidth=0.8, linestyle="--", label="calibrated")
    left.set(
        title="Reliability of the quantiles",
        xlabel="nominal quantile level",
        ylabel="share of outcomes at or below the quantile",
        xlim=(0, 1),
        ylim=(0, 1),
    )
    right.axhline(0, color="black", linewidth=0.8, linestyle="--")
    right.set(
        title="Observed minus nominal (above 0: quantile too high)",
        xlabel="nominal quantile level",
        ylabel="percentage points",
    )
    for ax in (left, right):
        ax.grid(alpha=0.3)
    left.legend(fontsize="small")
    return _save(fig, path)


def plot_conditional_coverage(
    table: pd.DataFrame, path: Path, conditions: tuple[str, ...] = ("vol_tercile", "regime")
) -> Path:
    """Coverage of the 80% and 95% intervals per group of each condition, one marker line per model.

    `table` is `scoring.conditional_coverage`; the dashed line is the nominal level. Points, not
    bars: coverages sit in a narrow band, and bars on a cut axis would mislead.
    """
    conditions = tuple(c for c in conditions if c in set(table["condition"])) or ("",)
    levels = [
        pct for pct in (80, 95) if f"coverage_{pct}" in table and table[f"coverage_{pct}"].notna().any()
    ]
    levels = levels or [80]
    titles = {"vol_tercile": "volatility tercile (per ticker)", "regime": "dominant regime (0 = calmest)"}
    fig, axes = plt.subplots(
        len(levels), len(conditions), figsize=(6 * len(conditions), 4 * len(levels)), squeeze=False
    )
    models = [str(m) for m in pd.unique(table["model"])]
    offsets = np.linspace(-0.2, 0.2, len(models)) if len(models) > 1 else [0.0]
    for j, condition in enumerate(conditions):
        rows = table[table["condition"] == condition]
        groups = list(pd.unique(rows["group"]))
        name = titles.get(condition, condition)
        for i, pct in enumerate(levels):
            ax = axes[i, j]
            for model, dx in zip(models, offsets, strict=True):
                one = rows[rows["model"].astype(str) == model].set_index("group")[f"coverage_{pct}"]
                style = {"linewidth": 2.2, "markersize": 7} if model == "fuzzy" else {"linewidth": 1}
                ax.plot(
                    np.arange(len(groups)) + dx,
                    100 * one.reindex(groups).to_numpy(np.float64),
                    marker="o",
                    label=model,
                    **style,
                )
            ax.axhline(pct, color="black", linewidth=1, linestyle="--")
            ax.set_xticks(np.arange(len(groups)), groups)
            ax.set(title=f"{pct}% interval coverage by {name}", xlabel=name, ylabel="coverage (%)")
            ax.grid(alpha=0.3, axis="y")
    axes[0, -1].legend(fontsize="small", loc="center left", bbox_to_anchor=(1.01, 0.5))
    return _save(fig, path)


def plot_traffic_light(shares: pd.DataFrame, path: Path) -> Path:
    """Share of rolling 250-day windows in the Basel green / yellow / red zone, one bar per model."""
    fig, ax = plt.subplots(figsize=(8, 0.5 + 0.45 * len(shares)))
    left = np.zeros(len(shares))
    for zone, color in (("green", "#2e7d32"), ("yellow", "#f9a825"), ("red", "#c62828")):
        ax.barh(shares["model"].astype(str), shares[zone], left=left, color=color, label=zone)
        left += shares[zone].to_numpy()
    ax.axvline(0.9, color="black", linewidth=0.8, linestyle="--", label="90% green")
    ax.set(title="Basel traffic light of the 99% 1-day VaR", xlabel="share of 250-day windows", xlim=(0, 1))
    ax.invert_yaxis()
    ax.legend(fontsize="small", loc="lower left", bbox_to_anchor=(1.0, 0.0))
    return _save(fig, path)


def plot_portfolio_loss(losses, var, es, path: Path, alphas=None) -> Path:
    """Histogram of simulated portfolio losses (% of value) with each alpha's VaR (dashed) and ES."""
    var, es = np.atleast_1d(var), np.atleast_1d(es)
    names = [f" {a:g}" for a in alphas] if alphas is not None else [""] * len(var)
    fig, ax = plt.subplots(figsize=(9, 4.5))
    ax.hist(100 * np.asarray(losses, dtype=np.float64), bins=120, color="#90a4ae")
    for k, (v, e, name) in enumerate(zip(var, es, names, strict=True)):
        ax.axvline(100 * v, color=f"C{k}", linestyle="--", label=f"VaR{name}: {100 * v:.2f}%")
        ax.axvline(100 * e, color=f"C{k}", label=f"ES{name}: {100 * e:.2f}%")
    ax.set(title="Simulated portfolio loss over the horizon", xlabel="loss (% of value)", ylabel="paths")
    ax.legend(fontsize="small")
    return _save(fig, path)


def plot_rank_heatmap(table: pd.DataFrame, path: Path) -> Path:
    """Each ticker's probability of each quintile (M6's `ID,Rank1..Rank5`): tickers x quintiles."""
    ranks = [c for c in table.columns if c.startswith("Rank")]
    p = table[ranks].to_numpy(np.float64)  # [N, 5]
    fig, ax = plt.subplots(figsize=(6.5, 1.6 + 0.22 * len(table)))
    image = ax.imshow(p, cmap="viridis", vmin=0, vmax=max(float(p.max()), 0.4), aspect="auto")
    ax.set_xticks(np.arange(len(ranks)), ranks)
    ax.set_yticks(np.arange(len(table)), table["ID"].astype(str), fontsize=7 if len(table) > 30 else 9)
    if len(table) <= 40:  # numbers stay legible
        for (i, k), value in np.ndenumerate(p):
            ax.text(k, i, f"{value:.2f}", ha="center", va="center", fontsize="x-small", color="white")
    ax.set(title="Quintile rank probabilities (Rank1: lowest returns)")
    fig.colorbar(image, ax=ax, label="probability")
    return _save(fig, path)
