"""The promotion decision: a plain function of two score sets, no MLflow needed to test it."""

from __future__ import annotations

from dataclasses import dataclass

# Metrics a promotion may compare; all are "lower is better".
PROMOTION_METRICS = ("pinball", "winkler_80", "winkler_95", "rmse", "mae", "mape", "return_rmse", "theil_u")


@dataclass
class PromotionDecision:
    promoted: bool
    reason: str
    metric: str
    challenger_version: str
    champion_version: str | None  # registry versions are strings here, whatever the store returns
    challenger_score: float | None = None
    champion_score: float | None = None
    window: str | None = None


def decide(
    metric: str,
    challenger_version: str,
    champion_version: str | None,
    challenger_scores: dict[str, float] | None = None,
    champion_scores: dict[str, float] | None = None,
    window: str | None = None,
) -> PromotionDecision:
    """Promote the challenger when there is no champion, or when it scores strictly lower on `metric`.

    Both score sets must come from the same evaluation windows (`window` names them).
    """
    if metric not in PROMOTION_METRICS:
        raise ValueError(f"promotion metric must be one of {', '.join(PROMOTION_METRICS)}, got {metric!r}")
    if champion_version is None:
        return PromotionDecision(True, "no champion yet", metric, challenger_version, None)
    if champion_version == challenger_version:
        return PromotionDecision(
            False, "challenger is already champion", metric, challenger_version, champion_version
        )
    if challenger_scores is None or champion_scores is None:
        raise ValueError("both score sets are needed to compare a challenger with a champion")
    new, old = float(challenger_scores[metric]), float(champion_scores[metric])
    better = new < old
    return PromotionDecision(
        better,
        f"challenger {metric} {new:.6g} {'<' if better else '>='} champion {old:.6g}",
        metric,
        challenger_version,
        champion_version,
        new,
        old,
        window,
    )
