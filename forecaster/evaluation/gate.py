"""Is the gate decorative? What the memberships change, against the experts' own room to improve.

On windows with known outcomes, in the model's volatility units (sigma) and before calibration:
- `shift_q05`, `shift_q95`: mean |fused - equal-weight| of the 5% and 95% quantiles, how far the
  gate moves the forecast away from weighing the experts 1/K;
- `oracle_gap_pct`: how much lower the pinball loss would be with the best expert of every
  window in hindsight than with equal weights (the room a perfect gate would have);
- `captured_pct`: the share of that room the gate's fusion captures, (equal - fused) / (equal -
  oracle); 0 is decorative, negative is worse than equal weights;
- `expert_spread`: mean |expert median - equal-weight median| (how much the experts disagree).
"""

from __future__ import annotations

import numpy as np

from forecaster.features.windows import WindowSet, standardized_targets


def pinball_per_window(z: np.ndarray, quantiles: np.ndarray, levels) -> np.ndarray:
    """Pinball per window (mean over horizons and levels): [N, H], [N, ..., H, Q] -> [N, ...]."""
    q = np.asarray(levels)
    z = z.reshape(z.shape[:1] + (1,) * (quantiles.ndim - 3) + z.shape[1:])
    diff = z[..., None] - quantiles
    return np.maximum(q * diff, (q - 1) * diff).mean(axis=(-2, -1))


def gate_figures(model, windows: WindowSet) -> dict[str, float]:
    """The figures of the module docstring for a fitted fuzzy model on labelled `windows`."""
    fused, experts, _ = model._raw_fused(windows, model.config.cluster.gate)  # [N, H, Q], [N, K, H, Q]
    equal = experts.mean(axis=1)  # weighing the K experts 1/K
    levels = list(model.levels)
    z = standardized_targets(windows)[0]
    loss_fused = pinball_per_window(z, fused, levels).mean()
    loss_equal = pinball_per_window(z, equal, levels).mean()
    loss_oracle = pinball_per_window(z, experts, levels).min(axis=1).mean()
    lo, hi, mid = levels.index(0.05), levels.index(0.95), levels.index(0.5)
    gap = loss_equal - loss_oracle
    return {
        "shift_q05": float(np.abs(fused[..., lo] - equal[..., lo]).mean()),
        "shift_q95": float(np.abs(fused[..., hi] - equal[..., hi]).mean()),
        "oracle_gap_pct": float(100 * gap / loss_equal),
        "captured_pct": float(100 * (loss_equal - loss_fused) / gap) if gap > 0 else float("nan"),
        "expert_spread": float(np.abs(experts[..., mid] - equal[:, None, :, mid]).mean()),
    }
