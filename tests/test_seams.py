"""The registries of `forecaster.config`: a toy gate, clusterer, head and calibrator, used by config name.

Each toy is registered the way a new implementation would be, then fitted, saved and loaded
through the forecaster with nothing but its name in the config.
"""

import json

import numpy as np
import pandas as pd
import pytest
import torch

from forecaster.config import CALIBRATORS, CLUSTERERS, GATES, HEADS, ClusterConfig, ExpertConfig, TrainConfig
from forecaster.features.scaler import FeatureScaler
from forecaster.features.volatility import horizon_scale, origin_volatility
from forecaster.features.windows import make_windows
from forecaster.model import FuzzyLSTMForecaster
from forecaster.persistence import pack_calibrations, unpack_calibrations


@GATES.register("toy_sharp")
class SharpGate:
    """Trains on plain memberships, forecasts with squared memberships renormalised."""

    trainable, calibrated_with = True, ("toy_first",)

    def n_experts(self, n_clusters):
        return n_clusters

    def training_weights(self, memberships, m):
        return (memberships / memberships.mean(axis=0, keepdims=True)).astype(np.float32)

    def fusion_weights(self, memberships):
        w = memberships.astype(np.float64) ** 2
        return (w / w.sum(axis=1, keepdims=True)).astype(np.float32)


@GATES.register("toy_first")
class FirstExpert:
    """Fusion only: every forecast from expert 0."""

    trainable, calibrated_with = False, ()

    def n_experts(self, n_clusters):
        return n_clusters

    def training_weights(self, memberships, m):
        raise ValueError("fusion only")

    def fusion_weights(self, memberships):
        w = np.zeros(memberships.shape, dtype=np.float32)
        w[:, 0] = 1.0
        return w


@CLUSTERERS.register("toy_split")
class VolatilitySplit:
    """Two clusters by the first descriptor: u_1 = sigmoid of its standardized value."""

    @classmethod
    def from_config(cls, config):
        return cls()

    def fit(self, descriptors):
        x = descriptors[:, 0]
        self.mean_, self.std_ = np.array(x.mean()), np.array(x.std())
        u = self.predict(descriptors)
        self.centers_ = (u.T @ descriptors) / u.sum(axis=0)[:, None]  # [c, D] membership-weighted means
        self.n_clusters_ = 2
        return self

    def predict(self, descriptors):
        high = 1 / (1 + np.exp(-(np.atleast_2d(descriptors)[:, 0] - self.mean_) / self.std_))
        return np.column_stack([1 - high, high])[:, getattr(self, "order_", [0, 1])]

    def descriptor_centers(self):
        return self.centers_

    def reorder(self, order):
        self.order_ = np.asarray(order)  # cluster k is the old cluster order[k]
        self.centers_ = self.centers_[self.order_]
        return self

    def summary(self):
        return {}

    def to_arrays(self):
        return {
            "mean": self.mean_,
            "std": self.std_,
            "centers": self.centers_,
            "order": getattr(self, "order_", np.arange(2)),
        }

    @classmethod
    def from_arrays(cls, arrays):
        split = cls()
        split.mean_, split.std_, split.centers_, split.order_ = (
            np.asarray(arrays[k]) for k in ("mean", "std", "centers", "order")
        )
        split.n_clusters_ = len(split.centers_)
        return split


@HEADS.register("toy_l1")
class AbsoluteErrorHead:
    """One output per horizon trained on the absolute error (a median), repeated over the levels."""

    def __init__(self, levels):
        self.levels, self.n_outputs, self.median_index = tuple(levels), 1, None

    def window_loss(self, outputs, y):
        return (outputs[..., 0] - y).abs().mean(dim=-1)

    def quantiles(self, outputs):
        return np.repeat(outputs, len(self.levels), axis=-1)

    def point(self, raw, calibrated):
        return raw[..., 0]


@CALIBRATORS.register("toy_shift")
class LevelShift:
    """Shifts each level by one number for all horizons: the level's quantile of the residuals."""

    def __init__(self, levels):
        self.levels = tuple(levels)

    def fit(self, actual, quantiles, memberships=None):  # memberships [N, c]: this toy ignores them
        residual = actual[:, :, None] - quantiles  # [N, H, Q]
        self.shifts_ = np.array([np.quantile(residual[..., q], lv) for q, lv in enumerate(self.levels)])
        return self

    def transform(self, quantiles, memberships=None):
        return np.maximum.accumulate(quantiles + self.shifts_, axis=-1)

    def to_arrays(self):
        return {"levels": np.asarray(self.levels), "shifts": self.shifts_}

    @classmethod
    def from_arrays(cls, arrays):
        cal = cls(tuple(float(q) for q in arrays["levels"]))
        cal.shifts_ = np.asarray(arrays["shifts"])
        return cal


def fit_save_load(config, bars, path):
    model = FuzzyLSTMForecaster(config).fit(bars, progress=False)
    loaded = FuzzyLSTMForecaster.load(model.save(path))
    pd.testing.assert_frame_equal(loaded.predict(bars), model.predict(bars), check_exact=True)
    return model, loaded


def test_a_registered_gate_trains_fuses_and_calibrates_its_companion_rule(
    tiny_config, two_ticker_bars, tmp_path
):
    model, loaded = fit_save_load(
        tiny_config.with_(cluster={"gate": "toy_sharp"}), two_ticker_bars, tmp_path / "m"
    )
    windows = make_windows(two_ticker_bars, model.config.window)
    fused, experts, u = model._raw_fused(windows, "toy_sharp")
    w = u.astype(np.float64) ** 2
    np.testing.assert_allclose(
        fused, np.einsum("nk,nkhq->nhq", w / w.sum(1, keepdims=True), experts), atol=1e-5
    )
    # The fusion-only companion was calibrated in fit and comes back from the model directory.
    assert set(model.calibrators_) == set(loaded.calibrators_) == {"toy_sharp", "toy_first"}
    first = loaded.predict_windows(windows, combine="toy_first")
    np.testing.assert_allclose(first.quantiles, model.predict_windows(windows, combine="toy_first").quantiles)
    fused, experts, _ = model._raw_fused(windows, "toy_first")
    np.testing.assert_allclose(fused, experts[:, 0], atol=1e-6)


def test_fusion_only_and_unknown_rules_are_clear_errors(tiny_config, two_ticker_bars):
    for name in ("toy_first", "equal", "nope"):
        with pytest.raises(ValueError, match=rf"gate must be one of 'fuzzy', 'hard', 'single'.*got '{name}'"):
            ClusterConfig(gate=name)
    model = FuzzyLSTMForecaster(tiny_config).fit(two_ticker_bars, progress=False)
    windows = make_windows(two_ticker_bars, model.config.window)
    with pytest.raises(
        ValueError, match=r"combine='single' needs 1 expert\(s\); this model has gate 'fuzzy'"
    ):
        model.predict_windows(windows, combine="single", intervals=False)
    with pytest.raises(ValueError, match=r"unknown combine 'nope': choose fuzzy, hard, single, equal"):
        model.predict_windows(windows, combine="nope", intervals=False)
    with pytest.raises(ValueError, match=r"no calibration for combine='hard'"):
        model.predict_windows(windows, combine="hard")


def test_a_registered_clusterer_replaces_fuzzy_c_means(tiny_config, two_ticker_bars, tmp_path):
    model, loaded = fit_save_load(
        tiny_config.with_(cluster={"clusterer": "toy_split"}), two_ticker_bars, tmp_path / "m"
    )
    assert isinstance(loaded.clusterer_, VolatilitySplit) and model.experts_.n_experts == 2
    assert model.metrics_["n_clusters"] == 2 and "xie_beni" not in model.metrics_
    assert sorted(np.load(tmp_path / "m" / "fcm.npz")) == ["centers", "mean", "order", "std"]


def test_a_registered_head_sets_outputs_loss_and_point(tiny_config, two_ticker_bars, tmp_path):
    model, _ = fit_save_load(tiny_config.with_(expert={"head": "toy_l1"}), two_ticker_bars, tmp_path / "m")
    assert model.experts_.n_outputs == 1
    windows = make_windows(two_ticker_bars, model.config.window)
    pred = model.predict_windows(windows)
    fused, _, _ = model._raw_fused(windows, "fuzzy")
    scale = horizon_scale(origin_volatility(windows.returns), model.config.window.horizon)
    np.testing.assert_allclose(
        pred.log_return, fused[:, :, 0] * scale
    )  # the raw fused output, not calibrated
    assert (np.diff(pred.quantiles, axis=-1) >= 0).all()
    outputs, y = torch.tensor([[[1.0], [3.0]]]), torch.tensor([[2.0, 2.0]])
    assert AbsoluteErrorHead((0.5,)).window_loss(outputs, y).item() == 1.0


def test_a_registered_calibrator_is_fitted_saved_and_loaded(tiny_config, two_ticker_bars, tmp_path):
    model, loaded = fit_save_load(
        tiny_config.with_(train={"calibrator": "toy_shift"}), two_ticker_bars, tmp_path / "m"
    )
    assert all(isinstance(c, LevelShift) for c in loaded.calibrators_.values())
    np.testing.assert_array_equal(loaded.calibrator_.shifts_, model.calibrator_.shifts_)
    assert model.calibrator_.shifts_.shape == (len(model.levels),)
    for bad in (lambda: TrainConfig(calibrator="nope"), lambda: ExpertConfig(head="nope")):
        with pytest.raises(ValueError, match="must be one of .*got 'nope'"):
            bad()


def test_every_rules_calibration_survives_save_and_load(tiny_config, two_ticker_bars, tmp_path):
    model = FuzzyLSTMForecaster(tiny_config).fit(two_ticker_bars, progress=False)
    loaded = FuzzyLSTMForecaster.load(model.save(tmp_path / "m"))
    windows = make_windows(two_ticker_bars, model.config.window)
    np.testing.assert_array_equal(
        loaded.predict_windows(windows, combine="equal").quantiles,
        model.predict_windows(windows, combine="equal").quantiles,
    )


def test_a_format_2_directory_of_the_previous_code_still_loads(tiny_config, two_ticker_bars, tmp_path):
    """Written before the seams: no clusterer/calibrator keys, the gate's calibration alone, a target_std."""
    model = FuzzyLSTMForecaster(tiny_config).fit(two_ticker_bars, progress=False)
    path = model.save(tmp_path / "m")
    config = json.loads((path / "config.json").read_text())
    del config["cluster"]["clusterer"], config["train"]["calibrator"]
    (path / "config.json").write_text(json.dumps(config))
    np.savez(path / "calibration.npz", **model.calibrator_.to_arrays())
    np.savez(path / "scaler.npz", **model.scaler_.to_arrays(), target_std=np.array(0.01))
    loaded = FuzzyLSTMForecaster.load(path)
    pd.testing.assert_frame_equal(
        loaded.predict(two_ticker_bars), model.predict(two_ticker_bars), check_exact=True
    )
    assert set(loaded.calibrators_) == {"fuzzy"}
    with pytest.raises(ValueError, match=r"no calibration for combine='equal'; this model has \['fuzzy'\]"):
        loaded.predict_windows(make_windows(two_ticker_bars, loaded.config.window), combine="equal")


def test_a_name_registered_twice_is_an_error():
    with pytest.raises(
        ValueError, match=r"gate 'fuzzy' is already registered to forecaster.regimes.gates:FuzzyGate"
    ):
        GATES.register("fuzzy")(SharpGate)
    GATES.register("toy_sharp")(SharpGate)  # the same class again (a re-import) is fine


def test_calibrations_pack_the_gates_under_plain_names_and_the_others_prefixed():
    calibrations = {"fuzzy": {"shifts": np.ones(2)}, "equal": {"shifts": np.zeros(2), "levels": np.ones(1)}}
    packed = pack_calibrations(calibrations, "fuzzy")
    assert sorted(packed) == ["equal.levels", "equal.shifts", "shifts"]
    assert {rule: sorted(a) for rule, a in unpack_calibrations(packed, "fuzzy").items()} == {
        "fuzzy": ["shifts"],
        "equal": ["levels", "shifts"],
    }


def test_the_scaler_reads_old_arrays_with_a_target_scale():
    scaler = FeatureScaler.from_arrays({"mean": np.zeros(2), "std": np.ones(2), "target_std": np.array(0.5)})
    assert sorted(scaler.to_arrays()) == ["mean", "std"]
