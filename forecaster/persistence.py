"""The saved-model directory format: what is written where, its version, and reading it back.

A model directory holds `config.json`, `weights.pt` (a plain state dict), `fcm.npz`, `scaler.npz`,
`calibration.npz` and `metadata.json`. Arrays go to .npz and weights to a state dict loaded with
`weights_only=True`, so loading never unpickles code; `map_location="cpu"` lets a model trained on
a GPU serve anywhere. This module knows the files, not the model: `FuzzyLSTMForecaster.save/load`
map their fitted state to and from a `ModelFiles`.

`calibration.npz` holds the calibrator of the configured gate under its own array names (all a
format-2 directory had), and the calibrator of every other fusion rule under "<rule>.<name>".
"""

from __future__ import annotations

import json
import platform
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

# Of the saved model directory; bump when a reader of the old one would break.
# 2: quantile experts as one block-diagonal LSTM, calibration.npz (format 1: K separate MSE experts).
FORMAT_VERSION = 2


@dataclass
class ModelFiles:
    """The contents of a model directory, as plain data."""

    config: dict[str, Any]  # ForecasterConfig.to_dict()
    weights: dict[str, torch.Tensor]  # the experts' state dict
    fcm: dict[str, np.ndarray]  # the clusterer's to_arrays() (FuzzyCMeans by default)
    scaler: dict[str, np.ndarray]  # FeatureScaler.to_arrays()
    calibration: dict[str, np.ndarray]  # calibrators' to_arrays(), see `pack_calibrations`
    metadata: dict[str, Any]  # fingerprint, metrics, history, sizes; versions are added on write


def write_model_dir(path: str | Path, files: ModelFiles) -> Path:
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    (path / "config.json").write_text(json.dumps(files.config, indent=2))
    torch.save(files.weights, path / "weights.pt")
    np.savez(path / "fcm.npz", **files.fcm)
    np.savez(path / "scaler.npz", **files.scaler)
    np.savez(path / "calibration.npz", **files.calibration)
    metadata = {
        "format_version": FORMAT_VERSION,
        **files.metadata,
        "versions": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "numpy": np.__version__,
        },
    }
    (path / "metadata.json").write_text(json.dumps(metadata, indent=2, default=float))
    return path


def read_model_dir(path: str | Path) -> ModelFiles:
    """Read a model directory on the CPU; refuse a format newer than this code reads."""
    path = Path(path)
    if not (path / "metadata.json").is_file():
        raise FileNotFoundError(f"{path} is not a model directory (no metadata.json)")
    metadata = json.loads((path / "metadata.json").read_text())
    version = metadata.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise ValueError(
            f"{path} was saved in model format {version!r}; this version of forecaster reads "
            f"format {FORMAT_VERSION}. Upgrade forecaster to load it."
        )
    if version < FORMAT_VERSION:
        raise ValueError(
            f"{path} was saved in model format {version} (point-forecast experts); this version of "
            f"forecaster reads format {FORMAT_VERSION} (quantile experts). Retrain the model "
            "(forecaster train, or python -m pipelines.train) to serve it with this version."
        )
    arrays = lambda name: dict(np.load(path / name))  # noqa: E731
    return ModelFiles(
        config=json.loads((path / "config.json").read_text()),
        weights=torch.load(path / "weights.pt", map_location="cpu", weights_only=True),
        fcm=arrays("fcm.npz"),
        scaler=arrays("scaler.npz"),
        calibration=arrays("calibration.npz"),
        metadata=metadata,
    )


def pack_calibrations(calibrations: dict[str, dict[str, np.ndarray]], gate: str) -> dict[str, np.ndarray]:
    """{rule: arrays} -> the arrays of calibration.npz: the gate's as they are, others prefixed."""
    packed = dict(calibrations[gate])
    for rule, arrays in calibrations.items():
        if rule != gate:
            packed.update({f"{rule}.{name}": a for name, a in arrays.items()})
    return packed


def unpack_calibrations(packed: dict[str, np.ndarray], gate: str) -> dict[str, dict[str, np.ndarray]]:
    """The arrays of calibration.npz -> {rule: arrays}; an old file gives the gate's alone."""
    calibrations: dict[str, dict[str, np.ndarray]] = {gate: {}}
    for key, a in packed.items():
        rule, dot, name = key.partition(".")
        rule, name = (rule, name) if dot else (gate, key)
        calibrations.setdefault(rule, {})[name] = a
    return calibrations
