"""Warm-started refits: fold k+1's fit starts from fold k's (forecaster.walkforward, evaluation.backtest)."""

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from conftest import corrupted_after, random_walk_bars
from forecaster import model as model_module
from forecaster.cli import app
from forecaster.config import ClusterConfig
from forecaster.evaluation.backtest import walk_forward
from forecaster.model import FuzzyLSTMForecaster
from forecaster.regimes.clusterer import fit_clusterer


def _weights(module) -> dict[str, np.ndarray]:
    return {k: v.detach().cpu().numpy().copy() for k, v in module.state_dict().items()}


def test_a_warm_fold_starts_from_the_previous_folds_weights(tiny_config, two_ticker_bars, monkeypatch):
    started, fitted = [], []
    train_experts, fit = model_module.train_experts, FuzzyLSTMForecaster.fit

    def recording_train_experts(module, data, config, progress=None):
        started.append((_weights(module), config.epochs))  # the weights before any training step
        return train_experts(module, data, config, progress)

    def recording_fit(self, bars, progress=None, **options):
        fitted.append(fit(self, bars, progress=progress, **options))
        return fitted[-1]

    monkeypatch.setattr(model_module, "train_experts", recording_train_experts)
    monkeypatch.setattr(FuzzyLSTMForecaster, "fit", recording_fit)
    config = tiny_config.with_(train={"warm_epochs": 1})
    dates = np.sort(two_ticker_bars["date"].unique())
    FuzzyLSTMForecaster(config).historical_forecasts(
        two_ticker_bars, start=dates[200], end=dates[260], refit_every=25, refit="warm"
    )

    assert len(fitted) == len(started) == 3
    assert [epochs for _, epochs in started] == [2, 1, 1]  # the first fold is cold
    for previous, (weights, _) in zip(fitted[:-1], started[1:], strict=True):
        trained = _weights(previous.experts_)
        assert weights.keys() == trained.keys()
        for name, value in trained.items():
            np.testing.assert_array_equal(weights[name], value)
    first = _weights(fitted[0].experts_)
    assert not all(np.array_equal(started[0][0][k], v) for k, v in first.items())  # fold 1: a fresh start
    later = [f.clusterer_.n_clusters_ for f in fitted]
    assert later == [2, 2, 2] and not np.allclose(fitted[0].scaler_.mean, fitted[1].scaler_.mean)


def test_a_warm_fit_without_epochs_keeps_the_start_but_refits_scaler_and_calibration(
    tiny_config, two_ticker_bars
):
    config = tiny_config.with_(train={"warm_epochs": 0, "fine_tune_epochs": 0})
    first = FuzzyLSTMForecaster(config).fit(two_ticker_bars[two_ticker_bars["date"] < "2010-11-01"])
    warm = FuzzyLSTMForecaster(config).fit(two_ticker_bars, init=first)

    for name, value in _weights(first.experts_).items():
        np.testing.assert_array_equal(_weights(warm.experts_)[name], value)
    assert warm.history_["experts"] == [] and warm.fingerprint_["end"] > first.fingerprint_["end"]
    assert not np.allclose(warm.calibrator_.to_arrays()["shifts"], first.calibrator_.to_arrays()["shifts"])
    with pytest.raises(
        ValueError, match="a warm start .init=. needs a fitted model of the same configuration"
    ):
        FuzzyLSTMForecaster(tiny_config).fit(two_ticker_bars, init=first)


def test_warm_refits_forecast_from_the_past_only(tiny_config):
    bars = random_walk_bars(300, "AAA", seed=5)
    kwargs = dict(start=bars["date"].iloc[200], refit_every=40, models=["naive", "fuzzy"], refit="warm")
    before = walk_forward(bars, tiny_config, **kwargs)
    cut = before.folds["refit_date"].iloc[1]  # fold 1 starts from fold 0's fit and reads bars up to here
    corrupted = corrupted_after(bars, cut)
    after = walk_forward(corrupted, tiny_config, **kwargs)

    made = lambda r: r.forecasts[r.forecasts["origin"] <= cut].reset_index(drop=True)  # noqa: E731
    assert (made(before)["origin"] == cut).any() and before.forecasts["fold"].max() == 2
    quantiles = [c for c in before.forecasts.columns if c.startswith("q_")]
    columns = ["forecast", "lower_80", "upper_80", *quantiles]
    pd.testing.assert_frame_equal(made(before)[columns], made(after)[columns], check_exact=True)
    assert not np.allclose(before.forecasts["forecast"], after.forecasts["forecast"])


def test_warm_backtest_keeps_the_first_fold_and_the_baselines_of_the_cold_one(tiny_config, two_ticker_bars):
    kwargs = dict(
        start=two_ticker_bars["date"].iloc[200], refit_every=40, models=["naive", "fuzzy", "equal_weight"]
    )
    cold = walk_forward(two_ticker_bars, tiny_config, **kwargs)
    warm = walk_forward(two_ticker_bars, tiny_config.with_(train={"warm_epochs": 1}), refit="warm", **kwargs)

    rows = lambda r, keep: r.forecasts[keep(r.forecasts)].reset_index(drop=True)  # noqa: E731
    first, naive = (lambda f: f["fold"] == 0), (lambda f: f["model"] == "naive")
    pd.testing.assert_frame_equal(rows(cold, first), rows(warm, first))
    pd.testing.assert_frame_equal(rows(cold, naive), rows(warm, naive))
    later = lambda f: (f["fold"] > 0) & (f["model"] == "fuzzy")  # noqa: E731
    assert not np.allclose(rows(cold, later)["forecast"], rows(warm, later)["forecast"])
    assert list(warm.folds["fold"]) == [0, 1, 2] and warm.folds["fuzzy_seconds"].notna().all()


def test_an_unknown_refit_mode_is_a_clear_error(tiny_config, two_ticker_bars):
    with pytest.raises(ValueError, match="refit must be one of cold, warm .--refit., got 'hot'"):
        walk_forward(two_ticker_bars, tiny_config, models=["naive"], refit="hot")
    with pytest.raises(ValueError, match="refit must be one of cold, warm"):
        FuzzyLSTMForecaster(tiny_config).historical_forecasts(two_ticker_bars, refit="Warm")
    with pytest.raises(ValueError, match="refit='warm' needs refits to start from"):
        FuzzyLSTMForecaster(tiny_config).historical_forecasts(two_ticker_bars, refit_every=None, refit="warm")


def test_backtest_cli_runs_warm_refits_and_refuses_an_unknown_mode(tmp_path, monkeypatch):
    monkeypatch.setenv("FORECASTER_HOME", str(tmp_path / "home"))
    options = ["backtest", "-t", "^GSPC", "--start", "2018-09-01", "--end", "2018-12-14", "--refit-every", "40",
               "--models", "naive,fuzzy", "--epochs", "1", "--hidden", "4", "--clusters", "2", "--no-track",
               "-o", str(tmp_path / "bt")]  # fmt: skip
    runner = CliRunner()
    result = runner.invoke(app, [*options, "--refit", "warm", "--warm-epochs", "1"])
    assert result.exit_code == 0, result.output
    assert "Walk-forward backtest" in result.output and "2 folds in" in result.output
    assert (tmp_path / "bt" / "report.md").is_file()
    refused = runner.invoke(app, [*options, "--refit", "lukewarm"])
    assert refused.exit_code == 2 and "lukewarm" in refused.output and "cold" in refused.output


def test_clustering_started_from_previous_centers_keeps_their_c_and_order():
    rng = np.random.default_rng(0)
    calm, wild = rng.normal(0, 0.5, (150, 2)), rng.normal((3, 3), 0.5, (150, 2))
    descriptors = np.vstack([calm, wild])
    config = ClusterConfig(n_clusters=3, descriptors=("cum_return", "log_volatility"))
    previous = fit_clusterer(config, descriptors)
    auto = ClusterConfig(n_clusters="auto", descriptors=config.descriptors)
    again = fit_clusterer(auto, descriptors, start=previous)
    # Started at a converged solution of the same rows, c-means stays there: same c, same centers.
    assert again.n_clusters_ == 3 and fit_clusterer(auto, descriptors).n_clusters_ == 2
    np.testing.assert_allclose(again.descriptor_centers(), previous.descriptor_centers(), atol=1e-4)
