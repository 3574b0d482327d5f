"""The pyfunc model: logged as MLflow models-from-code, checked against a checksum when loaded.

No pickle: the logged model is the code file `pyfunc_model.py` (MLflow copies it into the model
and runs it on load; it names the wrapper class below) plus the saved model directory as the
artifact `model_dir` (JSON, .npz, a state dict read with `weights_only=True`). Before serving a
registered version, `load_model` downloads it, compares the SHA-256 of every file with the
checksum recorded as the version's tag `model_sha256` at registration, and refuses it on any
difference (a replaced weights file, code file or MLmodel): anyone able to write the artifact
store could otherwise change what the API and the batch job run.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from pathlib import Path

import mlflow
import pandas as pd
from mlflow.models import ModelSignature, infer_signature
from mlflow.tracking import MlflowClient
from mlflow.types.schema import AnyType, ColSpec, Schema

from forecaster import serving
from forecaster.data import validate_bars
from forecaster.model import FuzzyLSTMForecaster

CODE_FILE = Path(__file__).with_name("pyfunc_model.py")  # the `python_model` argument of log_model
CHECKSUM_TAG = "model_sha256"
# Written by MLflow's client into every downloaded registered model (its name and version): not
# part of what was logged, so not part of the checksum.
_CLIENT_FILES = {"registered_model_meta"}


class ModelIntegrityError(ValueError):
    """A registered model version whose files are not the ones recorded at registration."""


class ForecasterPyfunc(mlflow.pyfunc.PythonModel):
    """Pyfunc wrapper: the artifact is a saved model directory; predict takes bars, returns forecasts.

    Input: a frame of daily bars (`ticker, date, open, high, low, close, adj_close, volume`), one or
    more tickers with at least `window + 1` bars each. Output: one row per ticker and horizon with
    target date, point forecast, every quantile, interval bounds, memberships `u_k`, per-expert
    forecasts and the regime (`regime`, `regime_label`, `regime_shift`; the shift needs 20 more
    bars than the window, else it is empty). Quantiles are at the nominal levels: adaptive
    conformal levels live in the forecast store, which a pyfunc does not read.
    """

    def load_context(self, context) -> None:
        self.model = FuzzyLSTMForecaster.load(context.artifacts["model_dir"])

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        return pyfunc_output(self.model, validate_bars(pd.DataFrame(model_input)))


def pyfunc_output(model: FuzzyLSTMForecaster, bars: pd.DataFrame) -> pd.DataFrame:
    """What the pyfunc returns for validated `bars`: the served forecast at the nominal levels."""
    return serving.forecast_frame(model, bars, serving.aci_state(model))


def signature(example: pd.DataFrame, output: pd.DataFrame) -> ModelSignature:
    """The model's signature, accepting the dtypes real sources give.

    yfinance and the bundled sample give `volume` as int64, which MLflow will not cast to double
    ("not safe"), and CSV files read with pandas give dates as strings: both columns are declared
    without a dtype (`AnyType`) and the wrapper's `validate_bars` checks them, naming ticker, date
    and row of a bad value. Prices stay double (int and float32 columns upcast).
    """
    types = {"ticker": "string", "date": AnyType(), "volume": AnyType()}
    inputs = Schema([ColSpec(types.get(c, "double"), c) for c in example.columns])
    return ModelSignature(inputs=inputs, outputs=infer_signature(example, output).outputs)


def model_checksum(path: str | Path) -> str:
    """SHA-256 over every file of a model directory: their relative paths and contents."""
    root = Path(path)
    lines = []
    for file in sorted(p for p in root.rglob("*") if p.is_file()):
        name = file.relative_to(root).as_posix()
        if name not in _CLIENT_FILES:
            lines.append(f"{hashlib.sha256(file.read_bytes()).hexdigest()}  {name}\n")
    return hashlib.sha256("".join(lines).encode()).hexdigest()


def record_checksum(name: str, version: str) -> str:
    """Tag a freshly registered version with the checksum of its files, as the registry holds them."""
    with tempfile.TemporaryDirectory() as tmp:
        digest = model_checksum(
            mlflow.artifacts.download_artifacts(f"models:/{name}/{version}", dst_path=tmp)
        )
    MlflowClient().set_model_version_tag(name, version, CHECKSUM_TAG, digest)
    return digest


def _version_of(uri: str):
    """The registry version a `models:/name/version` or `models:/name@alias` URI points at now."""
    spec = uri.removeprefix("models:/").split("/")
    client = MlflowClient()
    if "@" in spec[0]:
        name, alias = spec[0].split("@", 1)
        return client.get_model_version_by_alias(name, alias)
    return client.get_model_version(spec[0], spec[1])


@contextlib.contextmanager
def _no_pickle():
    """MLflow refuses pickled models while this holds (we log none; a replaced model might be one)."""
    key = "MLFLOW_ALLOW_PICKLE_DESERIALIZATION"
    before = os.environ.get(key)
    os.environ[key] = "false"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = before


def load_model(uri: str) -> FuzzyLSTMForecaster:
    """The forecaster behind a pyfunc model URI (`models:/fcm-lstm/3`, `models:/fcm-lstm@champion`,
    `runs:/...`); a registered version only when its files match the checksum of its registration.

    Raises ModelIntegrityError naming the version when they differ, or when no checksum was
    recorded (a version registered before checksums, which holds a pickle: register it again).
    """
    expected = None
    if uri.startswith("models:/"):
        version = _version_of(uri)
        uri = f"models:/{version.name}/{version.version}"  # an alias moving meanwhile cannot mix versions
        expected = version.tags.get(CHECKSUM_TAG)
        if expected is None:
            raise ModelIntegrityError(
                f"{version.name} v{version.version} has no recorded checksum (tag {CHECKSUM_TAG}): it was "
                "registered before models were checksummed and logged without pickle; refusing to load it. "
                "Register it again (python -m pipelines.train, or forecaster quickstart)"
            )
    with tempfile.TemporaryDirectory() as tmp:
        local = mlflow.artifacts.download_artifacts(uri, dst_path=tmp)
        if expected is not None and (actual := model_checksum(local)) != expected:
            raise ModelIntegrityError(
                f"{version.name} v{version.version}: its files changed since registration (SHA-256 "
                f"{actual[:16]}..., recorded {expected[:16]}...); refusing to load it"
            )
        with _no_pickle():
            return mlflow.pyfunc.load_model(local).unwrap_python_model().model
