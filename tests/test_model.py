import json
import warnings

import numpy as np
import pandas as pd
import pytest

from conftest import regime_switching_setup
from forecaster.model import FuzzyLSTMForecaster
from forecaster.training import train_experts
from forecaster.windows import make_windows, split_windows


def test_forecast_table_has_paths_intervals_and_memberships(tiny_config, two_ticker_bars):
    model = FuzzyLSTMForecaster(tiny_config).fit(two_ticker_bars, progress=False)
    table = model.predict(two_ticker_bars)
    assert list(table["ticker"].unique()) == ["AAA", "BBB"] and len(table) == 2 * 3
    assert (table["as_of"] == two_ticker_bars["date"].max()).all()
    assert (table["target_date"] > table["as_of"]).all()
    assert (
        (table["lower_95"] <= table["lower_80"])
        & (table["lower_80"] <= table["forecast"])
        & (table["forecast"] <= table["upper_80"])
        & (table["upper_80"] <= table["upper_95"])
    ).all()
    np.testing.assert_allclose(table[["u_0", "u_1"]].sum(axis=1), 1.0, rtol=1e-6)
    # The fused forecast lies between the experts' forecasts (a convex combination of returns).
    experts = table[["expert_0", "expert_1"]]
    assert (
        (table["forecast"] >= experts.min(axis=1) - 1e-6) & (table["forecast"] <= experts.max(axis=1) + 1e-6)
    ).all()
    assert {"val_rmse", "val_naive_rmse", "val_theil_u", "val_coverage_80"} <= set(model.metrics_)


def test_same_seed_same_data_identical_forecasts(tiny_config, two_ticker_bars):
    a = FuzzyLSTMForecaster(tiny_config).fit(two_ticker_bars, progress=False).predict(two_ticker_bars)
    b = FuzzyLSTMForecaster(tiny_config).fit(two_ticker_bars, progress=False).predict(two_ticker_bars)
    pd.testing.assert_frame_equal(a, b, check_exact=True)


def test_save_load_round_trip_gives_identical_forecasts(tiny_config, two_ticker_bars, tmp_path):
    model = FuzzyLSTMForecaster(tiny_config).fit(two_ticker_bars, progress=False)
    model.save(tmp_path / "m")
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == [
        "config.json",
        "conformal.npz",
        "fcm.npz",
        "metadata.json",
        "scaler.npz",
        "weights.pt",
    ]
    loaded = FuzzyLSTMForecaster.load(tmp_path / "m")
    pd.testing.assert_frame_equal(
        loaded.predict(two_ticker_bars), model.predict(two_ticker_bars), check_exact=True
    )
    assert loaded.fingerprint_["tickers"] == ["AAA", "BBB"] and len(loaded.fingerprint_["sha256"]) == 64


def test_loading_a_newer_format_is_a_clear_error(tiny_config, two_ticker_bars, tmp_path):
    FuzzyLSTMForecaster(tiny_config).fit(two_ticker_bars, progress=False).save(tmp_path / "m")
    meta = json.loads((tmp_path / "m" / "metadata.json").read_text())
    meta["format_version"] = 99
    (tmp_path / "m" / "metadata.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="model format 99.*Upgrade forecaster"):
        FuzzyLSTMForecaster.load(tmp_path / "m")
    with pytest.raises(FileNotFoundError, match="not a model directory"):
        FuzzyLSTMForecaster.load(tmp_path)


def test_joint_fine_tune_records_fused_history(tiny_config, two_ticker_bars):
    tiny_config.train.fine_tune_epochs = 1
    model = FuzzyLSTMForecaster(tiny_config).fit(two_ticker_bars, progress=False)
    assert [set(r) for r in model.history_["fine_tune"]] == [{"epoch", "fused/train_loss", "fused/val_loss"}]


def test_regimes_separate_and_fused_model_beats_single_lstm_of_same_size():
    bars, regime, config = regime_switching_setup()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # memberships must not be near uniform here
        model = FuzzyLSTMForecaster(config).fit(bars, progress=False)

    windows = make_windows(bars, config.window)
    val = split_windows(windows, config.window)["val"]
    pred = model.predict_windows(val)
    # Regime of the day each window ends on (bars are offset by one from `returns`).
    day_regime = pd.Series(regime[1:], index=bars["date"].iloc[1:].to_numpy("datetime64[D]"))
    val_regime = day_regime.loc[val.origin].to_numpy()
    turbulent_cluster = int(np.argmax(model.clusterer_.centers_[:, 0]))  # higher log volatility
    agreement = (pred.memberships.argmax(axis=1) == turbulent_cluster) == (val_regime == 1)
    assert agreement.mean() > 0.85

    # A single LSTM of the same size, trained the same way on the same windows (all weights 1).
    import torch

    from forecaster.experts import ExpertEnsemble

    torch.manual_seed(0)
    train = split_windows(windows, config.window)["train"]
    single = ExpertEnsemble(1, 1, 1, hidden_size=16, dropout=0.0)
    s = model.scaler_
    tensors = lambda ws: (  # noqa: E731
        torch.as_tensor(s.transform_x(ws.x)),
        torch.as_tensor(s.transform_y(ws.y)),
        torch.ones(len(ws), 1),
    )
    train_experts(single, tensors(train), tensors(val), config.train, progress=False)
    with torch.no_grad():
        single_pred = s.inverse_y(single(torch.as_tensor(s.transform_x(val.x)))[:, 0].numpy())
    fused_mse = float(((pred.log_return - val.y) ** 2).mean())
    single_mse = float(((single_pred - val.y) ** 2).mean())
    print(f"agreement {agreement.mean():.3f} fused {fused_mse:.3e} single {single_mse:.3e}")
    assert fused_mse < single_mse
