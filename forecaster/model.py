"""FuzzyLSTMForecaster: windows -> fuzzy c-means gate -> K LSTM experts -> membership-weighted sum.

The method of patent CN110348608A: cluster the training windows with fuzzy c-means, train one
LSTM expert per cluster, and forecast with y = sum_k u_k * y_k where u are the memberships of
the new window. Since wave 2 the experts forecast distributions: every expert gives quantiles of
the next H cumulative log returns in units of the origin's volatility (`forecaster.features.volatility`),
the fusion rule is applied to every quantile, the median is the point forecast, and the fused
quantiles are calibrated on a block of their own (`calibration.cqr.QuantileCalibrator`).

Each part is a name in a registry of `forecaster.config`, so a variant is one class and one
registration: `ClusterConfig.clusterer` (descriptors -> memberships: "fcm", or "learned", FCM as a
network the fine-tune trains with the experts), `ClusterConfig.gate`
(memberships -> expert weights: "fuzzy", and the backtest's baselines "hard", the argmax expert
trained on its own cluster, and "single", one LSTM with the parameters of all K experts),
`ExpertConfig.head` ("quantile" or "mse") and `TrainConfig.calibrator` ("cqr", or "cqr_regime" per regime).
`predict_windows(combine="equal")` weighs the fitted experts 1/K instead of by memberships,
which isolates what the memberships add.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from forecaster import products, pyapi
from forecaster.calibration.calibrator import load_calibrator, make_calibrator
from forecaster.calibration.cqr import interval_levels
from forecaster.config import ForecasterConfig
from forecaster.experts.devices import device_name, resolve_device
from forecaster.experts.heads import Head, make_head
from forecaster.experts.network import ExpertEnsemble, fuse, matched_hidden_size
from forecaster.experts.training import TrainingData, fine_tune, fine_tune_gated, train_experts
from forecaster.features.scaler import FeatureScaler
from forecaster.features.splits import split_windows
from forecaster.features.volatility import horizon_scale, origin_volatility
from forecaster.features.windows import WindowSet, make_windows, standardized_targets
from forecaster.metrics import quantile_summary, summarize
from forecaster.persistence import (
    ModelFiles,
    data_fingerprint,
    pack_calibrations,
    read_model_dir,
    unpack_calibrations,
    write_model_dir,
)
from forecaster.prediction import Prediction, prediction_frame
from forecaster.regimes.clusterer import fit_clusterer, load_clusterer
from forecaster.regimes.descriptors import window_descriptors
from forecaster.regimes.gates import Gate, make_gate
from forecaster.regimes.labels import cluster_labels
from forecaster.walkforward import historical_forecasts

log = logging.getLogger(__name__)


class FuzzyLSTMForecaster:
    """Global forecaster over a universe of tickers (windows of every ticker pooled).

    Parameters
    ----------
    config : ForecasterConfig
        Window, clustering, expert and training settings.

    Attributes (after `fit`)
    ------------------------
    clusterer_ : the `Clusterer` of the training windows' regime descriptors (FuzzyCMeans by default)
    regime_labels_ : a readable name per cluster ("calm, rising", "turbulent, falling", ...)
    regime_shares_ : share of training windows whose dominant regime is each cluster
    experts_ : ExpertEnsemble, one LSTM block per cluster (one in all for gate "single"), on the CPU
    scaler_ : FeatureScaler fitted on training windows
    calibrator_ : the `Calibrator` of the configured gate, fitted on the calibration block
    calibrators_ : {combine: Calibrator}, the gate's and those of the rules it is calibrated with
    history_ : per-epoch losses of every expert (and of the fused model when fine-tuned)
    metrics_ : validation, calibration and test metrics of the model and of the naive forecast
    fingerprint_ : the training data's tickers, dates, rows and content hash
    """

    def __init__(self, config: ForecasterConfig | None = None):
        self.config = config or ForecasterConfig()

    @property
    def levels(self) -> tuple[float, ...]:
        return self.config.expert.levels

    @property
    def head(self) -> Head:
        return make_head(self.config.expert.head, self.levels)

    @property
    def gate(self) -> Gate:
        return make_gate(self.config.cluster.gate)

    # ---- fitting -------------------------------------------------------------------------

    def fit(
        self, bars: pd.DataFrame, progress: bool | None = None, *, verbose: bool | None = None, init=None
    ) -> FuzzyLSTMForecaster:
        """Fit on validated bars: split by date, cluster, train experts, fine-tune, calibrate, score.

        Training shows its progress (a bar on a terminal or in a notebook, periodic lines on stderr
        or in the log elsewhere: `forecaster.runtime.progress`); `verbose=False` or
        `progress=False` trains quietly. `init`, a fitted forecaster of the same configuration (the
        previous fold's, in a warm walk-forward), warm-starts the fit: the clustering starts from its
        centers and keeps its c, the experts from its weights and train `train.warm_epochs` epochs
        (`TrainConfig.warm`); the scaler and the calibration are fitted afresh on `bars`.
        """
        progress = False if False in (progress, verbose) else None
        if init is not None and init.config != self.config:
            raise ValueError("a warm start (init=) needs a fitted model of the same configuration")
        torch.manual_seed(self.config.train.seed)
        splits = split_windows(make_windows(bars, self.config.window), self.config.window)
        train, val = splits["train"], splits["val"]
        self.scaler_ = FeatureScaler().fit(train)
        u_train, u_val = self._fit_regimes(train, val, None if init is None else init.clusterer_)
        self._fit_experts(train, val, u_train, u_val, progress, init)
        self._calibrate(splits["calib"] if len(splits["calib"]) else val)
        self.metrics_ = self._score(splits)
        self.experts_ = self.experts_.cpu()  # serve from the CPU; the training device is recorded
        self.fingerprint_ = data_fingerprint(bars)
        self.fitted_at_ = datetime.now(UTC).isoformat(timespec="seconds")
        return self

    def _fit_regimes(self, train: WindowSet, val: WindowSet, start=None) -> tuple[np.ndarray, np.ndarray]:
        """Cluster the training windows (calmest first; from `start`'s centers) and name the regimes;
        memberships of train and val."""
        cluster = self.config.cluster
        self.clusterer_ = fit_clusterer(cluster, self._descriptors(train), start=start)
        n_clusters = self.clusterer_.n_clusters_
        self.regime_labels_ = cluster_labels(self.clusterer_.descriptor_centers(), cluster.descriptors)
        u_train, u_val = self._memberships(train), self._memberships(val)
        self.regime_shares_ = np.bincount(u_train.argmax(axis=1), minlength=n_clusters) / len(u_train)
        log.info(
            "clusterer %s: c=%d, regimes %s", cluster.clusterer, n_clusters, " | ".join(self.regime_labels_)
        )
        return u_train, u_val

    def _fit_experts(self, train: WindowSet, val: WindowSet, u_train, u_val, progress, init=None) -> None:
        """Build the experts on the training device (from `init`'s weights), train them under the gate,
        then fine-tune them fused."""
        cfg, rule = self.config, self.gate
        device = resolve_device(cfg.train.device)
        self.device_ = device_name(device)
        self.experts_ = self._build_experts(self.clusterer_.n_clusters_, train.features.shape[-1]).to(device)
        if init is not None:  # expert k of both fits is the k-th calmest cluster's (`fit_clusterer`)
            self.experts_.load_state_dict(init.experts_.state_dict())
        data = self._training_data(train, val, device)
        module, m, prior = self._train_module(self.experts_), cfg.cluster.m, rule.fusion_weights(u_train)
        experts_data = data(rule.training_weights(u_train, m), rule.training_weights(u_val, m), prior)
        budget = cfg.train if init is None else cfg.train.warm()  # a warm refit: a few epochs a stage
        self.history_ = {"experts": train_experts(module, experts_data, budget, progress)}
        learned = hasattr(self.clusterer_, "network") and cfg.cluster.gate == "fuzzy"  # the gate trains too
        if budget.fine_tune_epochs > 0 and learned:  # its inputs, the descriptors, replace fixed u
            d = (self._descriptors(ws).astype(np.float32) for ws in (train, val))
            self.history_["fine_tune"] = fine_tune_gated(module, self.clusterer_, data(*d), budget, progress)
        elif budget.fine_tune_epochs > 0:
            fused_data = data(rule.fusion_weights(u_train), rule.fusion_weights(u_val))
            self.history_["fine_tune"] = fine_tune(module, fused_data, budget, progress)
        self.experts_.eval()  # calibration and metrics run on the training device, then it moves to the CPU

    def _training_data(self, train: WindowSet, val: WindowSet, device: torch.device):
        """The loops' tensors on the device, for given weights: (train [N, K], val [M, K]) -> TrainingData.

        One process trains on every window; under distributed training (forecaster.scale.distributed)
        each worker gets its share of the rows (and `_train_module`, a DDP wrapper).
        """
        # Windows stay lazy on the device too: one scaled [T, F] array, batches gathered by index.
        features = torch.as_tensor(self.scaler_.transform_x(train.features), device=device)
        offsets = torch.arange(1 - self.config.window.window, 1, device=device)
        gather = lambda end: features[end[:, None] + offsets]  # noqa: E731  [B] -> [B, L, F]
        rows, loss = self._train_share(len(train)), self.head.window_loss  # one head, one levels tensor

        def tensors(ws: WindowSet, weights: np.ndarray, rows=slice(None)):
            z = standardized_targets(ws)[0].astype(np.float32)
            return tuple(torch.as_tensor(a[rows], device=device) for a in (ws.end, z, weights))

        return lambda w_train, w_val, prior=None: TrainingData(
            tensors(train, w_train, rows), tensors(val, w_val), gather, loss,
            None if prior is None else torch.as_tensor(prior[rows], device=device),
        )  # fmt: skip

    def _calibrate(self, calib: WindowSet) -> None:
        """One calibration per fusion rule (the gate's and its companions'): each rule's errors differ."""
        gate_name = self.config.cluster.gate
        z_calib, self.calibrators_ = standardized_targets(calib)[0], {}
        for combine in (gate_name, *self.gate.calibrated_with):
            fused, _, u = self._raw_fused(calib, combine)  # u [N, c]: a calibrator may shift by regime
            calibrator = make_calibrator(self.config.train.calibrator, self.levels)
            self.calibrators_[combine] = calibrator.fit(z_calib, fused, memberships=u)
        self.calibrator_ = self.calibrators_[gate_name]

    def _score(self, splits: dict[str, WindowSet]) -> dict:
        """The clusterer's summary and the metrics of every non-empty split."""
        metrics = {
            "n_clusters": self.clusterer_.n_clusters_,
            **self.clusterer_.summary(),
            **{f"n_windows_{name}": len(ws) for name, ws in splits.items()},
        }
        for name, ws in splits.items():
            if len(ws):
                metrics.update({f"{name}_{k}": v for k, v in self.evaluate(ws).items()})
        return metrics

    def _build_experts(self, n_clusters: int, n_features: int) -> ExpertEnsemble:
        e, horizon, head = self.config.expert, self.config.window.horizon, self.head
        hidden, n_experts = e.hidden_size, self.gate.n_experts(n_clusters)
        if n_experts < n_clusters:  # fewer experts ("single") get the parameters of the c they stand for
            hidden = matched_hidden_size(
                n_clusters // n_experts, n_features, horizon, e.hidden_size, e.num_layers, head.n_outputs
            )
        return ExpertEnsemble(
            n_experts,
            n_features,
            horizon,
            n_outputs=head.n_outputs,
            median_index=head.median_index,
            hidden_size=hidden,
            num_layers=e.num_layers,
            dropout=e.dropout,
        )

    def _train_share(self, n_windows: int):
        """Rows of the training windows this process trains on: all of them."""
        return slice(None)

    def _train_module(self, experts: ExpertEnsemble) -> torch.nn.Module:
        """The module the training loops run: the ensemble itself."""
        return experts

    def _descriptors(self, windows: WindowSet) -> np.ndarray:
        return window_descriptors(windows, self.config.cluster.descriptors)

    def _memberships(self, windows: WindowSet) -> np.ndarray:
        return self.clusterer_.predict(self._descriptors(windows)).astype(np.float32)

    # ---- prediction ----------------------------------------------------------------------

    @torch.inference_mode()
    def _raw_fused(self, windows: WindowSet, combine: str, batch_size: int = 4096):
        """Uncalibrated forecasts in volatility units: fused [N, H, Q], experts [N, K, H, Q], u [N, c].

        The head turns the experts' outputs into quantiles (the MSE head repeats its Q' = 1 output
        over the levels, so calibration turns the point forecast into residual quantiles around it).
        """
        rule, e = make_gate(combine, "combine"), self.experts_
        if (needs := rule.n_experts(self.clusterer_.n_clusters_)) != e.n_experts:
            raise ValueError(
                f"combine={combine!r} needs {needs} expert(s); this model has gate "
                f"{self.config.cluster.gate!r} with {e.n_experts}"
            )
        u = self._memberships(windows)  # [N, c]
        weights = torch.as_tensor(rule.fusion_weights(u))  # [N, K]
        device = e.head_bias.device  # the training device until `fit` ends, then the CPU
        batch = lambda i: self.scaler_.transform_x(windows.gather(slice(i, i + batch_size)))  # noqa: E731
        starts = range(0, len(windows), batch_size)
        outputs = [e.infer(torch.as_tensor(batch(i), device=device)).float().cpu() for i in starts]
        experts = torch.cat(outputs) if outputs else torch.zeros(0, e.n_experts, e.horizon, e.n_outputs)
        fused = fuse(weights, experts)  # [N, K] x [N, K, H, Q'] -> [N, H, Q']
        return self.head.quantiles(fused.double().numpy()), self.head.quantiles(experts.double().numpy()), u

    def predict_windows(
        self, windows: WindowSet, *, intervals: bool = True, combine: str | None = None
    ) -> Prediction:
        """Forecast every window: memberships, calibrated fused quantiles, per-expert points, intervals.

        `combine` picks the expert weights, a rule of `forecaster.config.GATES`: None follows the
        configured gate (memberships for "fuzzy", the argmax expert for "hard"); "equal" weighs the
        K experts 1/K.
        """
        combine = combine or self.config.cluster.gate
        calibrator = self.calibrators_.get(combine)
        if calibrator is None and intervals:
            raise ValueError(
                f"no calibration for combine={combine!r}; this model has {sorted(self.calibrators_)}"
            )
        fused, experts, u = self._raw_fused(windows, combine)
        scale = horizon_scale(origin_volatility(windows.returns), self.config.window.horizon)  # [N, H]
        # No intervals asked and no calibrator for this rule: the raw quantiles do.
        calibrated = calibrator.transform(fused, memberships=u) if calibrator is not None else fused
        quantiles = calibrated * scale[:, :, None]  # [N, H, Q] cumulative log returns
        point = self.head.point(fused, calibrated) * scale  # [N, H]
        expert_point = self.head.point(experts, experts) * scale[:, None, :]  # [N, K, H]
        base = windows.last_price[:, None]
        bounds = {}
        if intervals:
            for coverage in self.config.train.coverage:
                lo, hi = (self.levels.index(q) for q in interval_levels(coverage))
                bounds[coverage] = (base * np.exp(quantiles[:, :, lo]), base * np.exp(quantiles[:, :, hi]))
        return Prediction(
            log_return=point,
            expert_log_return=expert_point,
            memberships=u,
            price=base * np.exp(point),
            expert_price=base[:, :, None] * np.exp(expert_point),
            intervals=bounds,
            levels=self.levels,
            quantiles=quantiles,
        )

    def evaluate(self, windows: WindowSet) -> dict[str, float]:
        """Point and distribution metrics of the model, and of the naive forecast, on labelled windows."""
        pred = self.predict_windows(windows)
        actual = np.cumsum(windows.y.astype(np.float64), axis=1)
        return {
            **summarize(windows.target_prices(), pred.price, windows.last_price, pred.intervals),
            **quantile_summary(actual, pred.quantiles, self.levels),
        }

    def predict(self, bars: pd.DataFrame, horizon=None, levels=None, adaptive=None) -> pd.DataFrame:
        """Forecast the next H trading days (or `horizon`) from each ticker's latest window in `bars`.

        One row per ticker and horizon: as_of, target_date, the point forecast (median), the
        quantiles (the model's, or at `levels`), interval bounds, memberships `u_k`, per-expert
        forecasts `expert_k` and the regime; `adaptive`: an `ACIState` (`forecaster.pyapi.predict`).
        """
        return pyapi.predict(self, bars, horizon, levels, adaptive)

    def to_frame(self, windows: WindowSet, pred: Prediction) -> pd.DataFrame:
        """One row per window and horizon (see `prediction.prediction_frame`)."""
        return prediction_frame(windows, pred, self.config.window.calendar)

    def historical_forecasts(
        self, bars: pd.DataFrame, *, start=None, end=None, refit_every: int | None = 250, **options
    ) -> pd.DataFrame:
        """What this configuration would have forecast at every past origin, refitted on the past only.

        A long frame (ticker, origin, horizon, target_date, forecast, quantiles, actual, ...); the
        options (`train_days`, `progress`, `refit="cold"|"warm"`) and the refit rules are in
        `forecaster.walkforward`.
        """
        return historical_forecasts(self, bars, start=start, end=end, refit_every=refit_every, **options)

    # Joint products of several tickers (`forecaster.products`): VaR / ES, and M6 quintile ranks.
    risk = products.risk  # (bars, tickers, weights, horizon, alphas, n_paths, seed) -> (tickers, portfolio)
    rank = products.rank  # (bars, tickers, horizon, n_paths, seed) -> ID, Rank1..Rank5
    # The Python API (`forecaster.pyapi`): scores on new bars, regimes over time, adaptive intervals.
    score, regimes = pyapi.score, pyapi.regimes  # (bars | WindowSet) -> Series; bars -> u_k, regime
    aci_state, update_aci = pyapi.aci_state, pyapi.update_aci  # (gamma) -> ACIState; learn from outcomes

    # ---- persistence ---------------------------------------------------------------------

    def save(self, path: str | Path) -> Path:
        """Write the model directory (format in `forecaster.persistence`; no pickle anywhere)."""
        metadata = {
            "n_clusters": self.clusterer_.n_clusters_,
            "n_experts": self.experts_.n_experts,
            "n_features": int(len(self.scaler_.mean)),
            "regimes": {"labels": self.regime_labels_, "shares": [float(s) for s in self.regime_shares_]},
            "fitted_at": self.fitted_at_,
            "device": self.device_,
            "fingerprint": self.fingerprint_,
            "metrics": self.metrics_,
            "history": self.history_,
        }
        calibrations = {combine: c.to_arrays() for combine, c in self.calibrators_.items()}
        files = ModelFiles(
            config=self.config.to_dict(),
            weights=self.experts_.state_dict(),
            fcm=self.clusterer_.to_arrays(),
            scaler=self.scaler_.to_arrays(),
            calibration=pack_calibrations(calibrations, self.config.cluster.gate),
            metadata=metadata,
        )
        return write_model_dir(path, files)

    @classmethod
    def load(cls, path: str | Path) -> FuzzyLSTMForecaster:
        """Load a model directory on the CPU, whatever device trained it."""
        files = read_model_dir(path)
        metadata = files.metadata
        model = cls(ForecasterConfig.from_dict(files.config))
        gate_name, calibrator = model.config.cluster.gate, model.config.train.calibrator
        model.clusterer_ = load_clusterer(model.config.cluster, files.fcm)
        model.scaler_ = FeatureScaler.from_arrays(files.scaler)
        # A directory written before every rule's calibration was saved holds the gate's alone.
        model.calibrators_ = {
            combine: load_calibrator(calibrator, arrays)
            for combine, arrays in unpack_calibrations(files.calibration, gate_name).items()
        }
        model.calibrator_ = model.calibrators_[gate_name]
        model.experts_ = model._build_experts(metadata["n_clusters"], metadata["n_features"])
        model.experts_.load_state_dict(files.weights)
        model.experts_.eval()
        model.regime_labels_ = metadata["regimes"]["labels"]
        model.regime_shares_ = np.asarray(metadata["regimes"]["shares"])
        model.fingerprint_, model.metrics_ = metadata["fingerprint"], metadata["metrics"]
        model.history_, model.fitted_at_, model.device_ = (
            metadata[k] for k in ("history", "fitted_at", "device")
        )
        return model
