"""What the plots share: readable price axes, legends beside the data, names for regimes."""

from __future__ import annotations

import matplotlib
import numpy as np
from matplotlib.ticker import FixedLocator, FuncFormatter, MaxNLocator, NullFormatter

from forecaster.regimes.labels import volatility_words

PLAIN = FuncFormatter(lambda value, _: f"{value:,.0f}" if value >= 10 else f"{value:,.4g}")
# Tick steps within a decade, coarse to fine: the first that puts enough ticks on the axis wins.
_STEPS = ((1, 2, 5), (1, 1.5, 2, 3, 5, 7), (1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 7, 8, 9))
# A description of each regime descriptor for axes (DESIGN.md: "relative to volatility").
DESCRIPTOR_NAMES = {
    "cum_return": "cumulative return",
    "log_volatility": "volatility (log)",
    "last5_return": "last-5-day return",
    "max_abs_move": "largest move\nrelative to volatility",
    "trend_strength": "trend: return\nrelative to volatility",
}


def log_price_ticks(low: float, high: float, at_least: int = 4) -> list[float]:
    """Round prices for a log axis from `low` to `high`: 1-2-5 per decade, finer when it is narrow.

    Matplotlib's log axis labels only the powers of ten: a price from 700 to 2,900 would get one
    label (1,000) and unlabelled minor ticks everywhere else.
    """
    if not (np.isfinite(low) and np.isfinite(high)) or low <= 0 or high <= low:
        return []
    decades = range(int(np.floor(np.log10(low))), int(np.ceil(np.log10(high))) + 1)
    for steps in _STEPS:
        ticks = [s * 10.0**d for d in decades for s in steps if low <= s * 10.0**d <= high]
        if len(ticks) >= at_least:
            return ticks
    # Narrower than the finest steps cover (1,200 to 2,200): evenly spaced round prices.
    return [t for t in MaxNLocator(at_least + 1).tick_values(low, high) if low <= t <= high]


def log_price_axis(ax, prices) -> None:
    """A log-scale price axis whose labels cover its range (not one label per decade)."""
    prices = np.asarray(prices, dtype=np.float64)
    prices = prices[np.isfinite(prices) & (prices > 0)]
    ax.set_yscale("log")
    if len(prices) == 0:
        return
    ax.yaxis.set_major_locator(FixedLocator(log_price_ticks(prices.min(), prices.max())))
    ax.yaxis.set_major_formatter(PLAIN)  # 2,000 rather than 2 x 10^3
    ax.yaxis.set_minor_formatter(NullFormatter())


def legend_outside(ax, **options) -> None:
    """The legend to the right of the axes, so it never covers a line (the first month, say)."""
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0, fontsize="small", **options)


def regime_names(labels: list[str] | None, n: int) -> list[str]:
    """The model's regime labels; without them, the volatility words of clusters ordered calm first."""
    if labels is not None and len(labels) == n:
        return list(labels)
    return list(volatility_words(n))


def regime_colours(names: list[str]) -> list:
    """Blue for calm through red for turbulent (by the labels' words); the default cycle otherwise."""
    order = ("calm", "normal", "moderate", "turbulent")
    ranks = [next((i for i, w in enumerate(order) if name.startswith(w)), None) for name in names]
    if any(r is None for r in ranks):
        return [f"C{k}" for k in range(len(names))]
    cmap = matplotlib.colormaps["coolwarm"]
    return [cmap(0.1 + 0.8 * r / (len(order) - 1)) for r in ranks]


def regime_title(memberships, labels: list[str] | None) -> str:
    """The regime of one forecast for a title: its name, or "no clear regime" near uniform.

    Near uniform: the largest membership under 1/c + 0.1, where the experts are weighted about
    equally and naming one regime would claim more than the model knows.
    """
    u = np.asarray(memberships, dtype=np.float64)
    names, top = regime_names(labels, len(u)), int(u.argmax())
    if u[top] < 1 / len(u) + 0.1:
        return f"no clear regime (largest membership {u[top]:.2f}, uniform {1 / len(u):.2f})"
    return f"{names[top]} (membership {u[top]:.2f})"
