"""Scale-free daily features of one ticker's bars; row t uses bars up to and including day t.

Row j of `daily_features` is the day of bar j + 1 (the first bar has no return). Features:

- `log_return`: log change of the adjusted close (always first: targets and regime
  descriptors read column 0);
- `log_range`: log(high / low), the day's range;
- `log_volume_change`: log change of 1 + volume;
- `ewma_vol`: log RiskMetrics EWMA volatility (lambda 0.94) of returns up to day t;
- `rv_5`, `rv_22`, `rv_66`: log realised volatility over the last 5 / 22 / 66 days (HAR's
  week, month and quarter);
- `norm_return`: the return divided by the previous day's EWMA volatility (sigma_{t-1}
  forecasts r_t), so calm utilities and volatile chip makers share one scale.

The volatility features warm up on a ticker's first days as `forecaster.features.volatility` explains.
"""

from __future__ import annotations

import numpy as np

from forecaster.features.volatility import LOOKBACK, PRIOR_VOL, ewma_volatility, realized_volatility

VOLATILITY_FEATURES = ("ewma_vol", "rv_5", "rv_22", "rv_66", "norm_return")


def daily_features(bars, features: tuple[str, ...]) -> np.ndarray:
    """Features of one ticker's bars, one row per day from the second bar on: [T-1, F] float64.

    `bars` is a frame or any mapping of column name -> array (the service passes arrays, so
    its request path needs no pandas). Columns come in the order of `features`, except that
    `log_return` is always first.
    """
    column = lambda name: np.asarray(bars[name], dtype=np.float64)  # noqa: E731
    r = np.diff(np.log(column("adj_close")))
    columns = {"log_return": lambda: r}
    columns["log_range"] = lambda: np.log(column("high") / column("low"))[1:]
    # +1 keeps days with zero volume (some indices report none) finite.
    columns["log_volume_change"] = lambda: np.diff(np.log1p(column("volume")))
    sigma = None
    if "ewma_vol" in features or "norm_return" in features:
        sigma = ewma_volatility(r)  # [T-1]; sigma[t] is known at the close of day t
    columns["ewma_vol"] = lambda: np.log(sigma)
    for days in (5, 22, 66):
        columns[f"rv_{days}"] = lambda days=days: np.log(realized_volatility(r, days))
    # Day t is scaled by the forecast made the day before; day 0 by the prior alone.
    columns["norm_return"] = lambda: r / np.concatenate([[PRIOR_VOL], sigma[:-1]])
    order = ["log_return"] + [f for f in features if f != "log_return"]
    return np.column_stack([columns[f]() for f in order])


def history_needed(features: tuple[str, ...], window: int, *, context: bool = False) -> int:
    """Bars whose features a window of `window` days needs: the last window of that many bars
    equals the last window of the full history (to float32 precision). Market `context` has
    exponentially weighted columns too (`forecaster.features.market`)."""
    extra = LOOKBACK if context or any(f in VOLATILITY_FEATURES for f in features) else 0
    return window + 1 + extra
