"""The promotion decision alone: a plain function of two score sets, no MLflow store involved."""

import pytest

from forecaster.tracking.promotion import decide


def test_first_model_is_promoted_without_scores():
    decision = decide("rmse", "1", None)
    assert decision.promoted and decision.reason == "no champion yet"


def test_challenger_is_promoted_only_when_strictly_better():
    better = decide("rmse", "3", "2", {"rmse": 1.0}, {"rmse": 1.5}, "2018-01-02..2018-06-29")
    assert better.promoted and better.challenger_score == 1.0 and better.champion_score == 1.5
    assert better.window == "2018-01-02..2018-06-29"
    tie = decide("rmse", "3", "2", {"rmse": 1.5}, {"rmse": 1.5})
    assert not tie.promoted and ">=" in tie.reason


def test_the_champion_is_never_compared_with_itself():
    assert not decide("rmse", "2", "2").promoted


def test_unknown_metric_and_missing_scores_are_refused():
    with pytest.raises(ValueError, match="promotion metric"):
        decide("accuracy", "2", "1", {}, {})
    with pytest.raises(ValueError, match="both score sets"):
        decide("rmse", "2", "1")
