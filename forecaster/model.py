"""FuzzyLSTMForecaster: windows -> fuzzy c-means gate -> K LSTM experts -> membership-weighted sum.

The method of patent CN110348608A: cluster the training windows with fuzzy c-means, train one
LSTM expert per cluster, and forecast with y = sum_k u_k * y_k where u are the memberships of
the new window. Intervals come from split-conformal calibration on the validation block.

`ClusterConfig.gate` switches the same machinery to the baselines of the backtest: `hard`
(experts trained on their own cluster only, forecast from the argmax expert) and `single` (one
LSTM with the parameters of all K experts). `predict_windows(combine="equal")` weighs the fitted
experts 1/K instead of by memberships, which isolates what the memberships add.
"""

from __future__ import annotations

import hashlib
import logging
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from forecaster.clustering import FuzzyCMeans
from forecaster.config import ForecasterConfig
from forecaster.evaluation.metrics import summarize
from forecaster.experts import ExpertEnsemble, fuse, matched_hidden_size
from forecaster.gating import fusion_weights, training_weights
from forecaster.intervals import ConformalCalibrator, window_scale
from forecaster.persistence import ModelFiles, read_model_dir, write_model_dir
from forecaster.prediction import Prediction, prediction_frame
from forecaster.training import device_name, fine_tune, resolve_device, train_experts
from forecaster.windows import (
    FeatureScaler,
    WindowSet,
    latest_windows,
    make_windows,
    regime_descriptors,
    split_windows,
)

log = logging.getLogger(__name__)


def data_fingerprint(bars: pd.DataFrame) -> dict:
    """What the model was trained on: tickers, dates, row counts and a content hash."""
    digest = hashlib.sha256(pd.util.hash_pandas_object(bars, index=False).to_numpy().tobytes()).hexdigest()
    return {
        "tickers": sorted(bars["ticker"].unique().tolist()),
        "start": str(bars["date"].min().date()),
        "end": str(bars["date"].max().date()),
        "rows": int(len(bars)),
        "rows_per_ticker": {str(t): int(n) for t, n in bars.groupby("ticker").size().items()},
        "sha256": digest,
    }


class FuzzyLSTMForecaster:
    """Global forecaster over a universe of tickers (windows of every ticker pooled).

    Parameters
    ----------
    config : ForecasterConfig
        Window, clustering, expert and training settings.

    Attributes (after `fit`)
    ------------------------
    clusterer_ : FuzzyCMeans on the regime descriptors of training windows
    experts_ : ExpertEnsemble with one LSTM per cluster, or one in all for gate "single" (on the CPU)
    scaler_ : FeatureScaler fitted on training windows
    calibrator_ : ConformalCalibrator fitted on validation windows, for the configured gate
    calibrators_ : {combine: ConformalCalibrator}, every fusion rule `predict_windows` accepts
    history_ : per-epoch losses of every expert (and of the fused model when fine-tuned)
    metrics_ : validation (and test) metrics of the model and of the naive forecast
    fingerprint_ : the training data's tickers, dates, rows and content hash
    """

    def __init__(self, config: ForecasterConfig | None = None):
        self.config = config or ForecasterConfig()

    # ---- fitting -------------------------------------------------------------------------

    def fit(self, bars: pd.DataFrame, progress: bool | None = None) -> FuzzyLSTMForecaster:
        """Fit on validated bars: split by date, cluster, train experts, calibrate intervals."""
        cfg = self.config
        torch.manual_seed(cfg.train.seed)
        splits = split_windows(make_windows(bars, cfg.window), cfg.window)
        train, val = splits["train"], splits["val"]
        self.scaler_ = FeatureScaler().fit(train)
        self.clusterer_ = FuzzyCMeans(
            cfg.cluster.n_clusters,
            cfg.cluster.m,
            cfg.cluster.error,
            cfg.cluster.maxiter,
            cfg.cluster.random_state,
        ).fit(self._descriptors(train))
        n_clusters = self.clusterer_.n_clusters_
        log.info("fuzzy c-means: c=%d, %s", n_clusters, self.clusterer_.diagnostics_)

        device = resolve_device(cfg.train.device)
        self.device_ = device_name(device)
        n_features = train.x.shape[-1]
        self.experts_ = self._build_experts(n_clusters, n_features).to(device)
        u_train, u_val = self._memberships(train), self._memberships(val)
        as_tensors = lambda ws, extra: tuple(  # noqa: E731
            torch.as_tensor(a, device=device)
            for a in (self.scaler_.transform_x(ws.x), self.scaler_.transform_y(ws.y), extra)
        )
        self.history_ = {
            "experts": train_experts(
                self.experts_,
                as_tensors(train, self._training_weights(u_train)),
                as_tensors(val, self._training_weights(u_val)),
                cfg.train,
                progress,
            )
        }
        if cfg.train.fine_tune_epochs > 0:
            gate = cfg.cluster.gate
            self.history_["fine_tune"] = fine_tune(
                self.experts_,
                as_tensors(train, self._fusion_weights(u_train, gate)),
                as_tensors(val, self._fusion_weights(u_val, gate)),
                cfg.train,
                progress,
            )
        self.experts_ = self.experts_.cpu().eval()  # serve from the CPU; training device is recorded

        # One calibration per fusion rule: each rule's errors have their own spread.
        combines = ["single"] if cfg.cluster.gate == "single" else [cfg.cluster.gate, "equal"]
        self.calibrators_ = {}
        for combine in combines:
            val_pred = self.predict_windows(val, intervals=False, combine=combine)
            self.calibrators_[combine] = ConformalCalibrator(cfg.train.coverage).fit(
                np.cumsum(val.y, axis=1), val_pred.log_return, window_scale(val.returns)
            )
        self.calibrator_ = self.calibrators_[cfg.cluster.gate]
        self.metrics_ = {
            "n_clusters": n_clusters,
            "xie_beni": self.clusterer_.xie_beni_[n_clusters],
            **{f"cluster_{k}": v for k, v in self.clusterer_.diagnostics_.items()},
            **{f"n_windows_{name}": len(ws) for name, ws in splits.items()},
        }
        for name, ws in splits.items():
            if len(ws):
                self.metrics_.update({f"{name}_{k}": v for k, v in self.evaluate(ws).items()})
        self.fingerprint_ = data_fingerprint(bars)
        self.fitted_at_ = datetime.now(UTC).isoformat(timespec="seconds")
        return self

    def _build_experts(self, n_clusters: int, n_features: int) -> ExpertEnsemble:
        e, horizon = self.config.expert, self.config.window.horizon
        hidden, n_experts = e.hidden_size, n_clusters
        if self.config.cluster.gate == "single":
            hidden = matched_hidden_size(n_clusters, n_features, horizon, e.hidden_size, e.num_layers)
            n_experts = 1
        return ExpertEnsemble(
            n_experts, n_features, horizon, hidden_size=hidden, num_layers=e.num_layers, dropout=e.dropout
        )

    def _training_weights(self, memberships: np.ndarray) -> np.ndarray:
        return training_weights(memberships, self.config.cluster.gate, self.config.cluster.m)

    _fusion_weights = staticmethod(fusion_weights)

    def _descriptors(self, windows: WindowSet) -> np.ndarray:
        return regime_descriptors(windows.returns, self.config.cluster.descriptors)

    def _memberships(self, windows: WindowSet) -> np.ndarray:
        return self.clusterer_.predict(self._descriptors(windows)).astype(np.float32)

    # ---- prediction ----------------------------------------------------------------------

    @torch.inference_mode()
    def predict_windows(
        self,
        windows: WindowSet,
        *,
        intervals: bool = True,
        batch_size: int = 4096,
        combine: str | None = None,
    ) -> Prediction:
        """Forecast every window: memberships, per-expert and fused paths, conformal intervals.

        `combine` picks the expert weights: None follows the configured gate (memberships for
        "fuzzy", the argmax expert for "hard"); "equal" weighs the K experts 1/K.
        """
        combine = combine or self.config.cluster.gate
        if (combine == "single") != (self.config.cluster.gate == "single"):
            raise ValueError(
                f"combine={combine!r} needs K experts; this model has gate {self.config.cluster.gate!r}"
            )
        if intervals and combine not in self.calibrators_:
            raise ValueError(
                f"no intervals calibrated for combine={combine!r}; this model has {sorted(self.calibrators_)}"
            )
        u = self._memberships(windows)  # [N, c]
        weights = self._fusion_weights(u, combine)  # [N, K]
        x = torch.as_tensor(self.scaler_.transform_x(windows.x))
        outputs = [self.experts_.infer(x[i : i + batch_size]) for i in range(0, len(x), batch_size)]
        expert_scaled = (
            torch.cat(outputs)
            if outputs
            else torch.zeros(0, len(self.experts_.experts), self.config.window.horizon)
        )
        fused_scaled = fuse(torch.as_tensor(weights), expert_scaled)  # [N, K] x [N, K, H] -> [N, H]
        # Experts predict daily log returns; cumulate them into log price paths.
        fused = np.cumsum(self.scaler_.inverse_y(fused_scaled.numpy().astype(np.float64)), axis=1)
        experts = np.cumsum(self.scaler_.inverse_y(expert_scaled.numpy().astype(np.float64)), axis=2)
        base = windows.last_price[:, None]
        bounds = {}
        if intervals:
            scale = window_scale(windows.returns)
            calibrator = self.calibrators_[combine]
            for level in calibrator.coverage:
                lo, hi = calibrator.interval(fused, scale, level)
                bounds[level] = (base * np.exp(lo), base * np.exp(hi))
        return Prediction(
            log_return=fused,
            expert_log_return=experts,
            memberships=u,
            price=base * np.exp(fused),
            expert_price=base[:, :, None] * np.exp(experts),
            intervals=bounds,
        )

    def evaluate(self, windows: WindowSet) -> dict[str, float]:
        """Metrics of the model and of the naive last-price forecast on labelled windows."""
        pred = self.predict_windows(windows)
        return summarize(windows.target_prices(), pred.price, windows.last_price, pred.intervals)

    def predict(self, bars: pd.DataFrame) -> pd.DataFrame:
        """Forecast the next H trading days from the latest window of every ticker in `bars`.

        Returns one row per ticker and horizon: as_of, target_date, forecast, interval bounds,
        the memberships `u_k` and per-expert forecasts `expert_k`. Target dates are the next
        sessions of the configured exchange calendar (`WindowConfig.calendar`, NYSE by default).
        """
        windows = latest_windows(bars, self.config.window)
        return self.to_frame(windows, self.predict_windows(windows))

    def to_frame(self, windows: WindowSet, pred: Prediction) -> pd.DataFrame:
        """One row per window and horizon (see `prediction.prediction_frame`)."""
        return prediction_frame(windows, pred, self.config.window.calendar)

    # ---- persistence ---------------------------------------------------------------------

    def save(self, path: str | Path) -> Path:
        """Write the model directory (format in `forecaster.persistence`; no pickle anywhere)."""
        metadata = {
            "n_clusters": self.clusterer_.n_clusters_,
            "n_experts": len(self.experts_.experts),
            "n_features": int(len(self.scaler_.mean)),
            "fitted_at": self.fitted_at_,
            "device": self.device_,
            "fingerprint": self.fingerprint_,
            "metrics": self.metrics_,
            "history": self.history_,
        }
        files = ModelFiles(
            config=self.config.to_dict(),
            weights=self.experts_.state_dict(),
            fcm=self.clusterer_.to_arrays(),
            scaler=self.scaler_.to_arrays(),
            conformal=self.calibrator_.to_arrays(),
            metadata=metadata,
        )
        return write_model_dir(path, files)

    @classmethod
    def load(cls, path: str | Path) -> FuzzyLSTMForecaster:
        """Load a model directory on the CPU, whatever device trained it."""
        files = read_model_dir(path)
        metadata = files.metadata
        model = cls(ForecasterConfig.from_dict(files.config))
        model.clusterer_ = FuzzyCMeans.from_arrays(files.fcm)
        model.scaler_ = FeatureScaler.from_arrays(files.scaler)
        model.calibrator_ = ConformalCalibrator.from_arrays(files.conformal)
        model.calibrators_ = {model.config.cluster.gate: model.calibrator_}  # only the gate's is saved
        model.experts_ = model._build_experts(metadata["n_clusters"], metadata["n_features"])
        model.experts_.load_state_dict(files.weights)
        model.experts_.eval()
        model.fingerprint_, model.metrics_ = metadata["fingerprint"], metadata["metrics"]
        model.history_, model.fitted_at_, model.device_ = (
            metadata["history"],
            metadata["fitted_at"],
            metadata["device"],
        )
        return model
