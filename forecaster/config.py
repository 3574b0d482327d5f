"""Configuration: model hyperparameters as small frozen dataclasses, runtime settings in one class.

Hyperparameters travel with a saved model (`config.json`); runtime settings (paths, URIs)
belong to the machine and come from `FORECASTER_*` environment variables or a config file.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from forecaster.registry import Registry

# Per-day inputs, see forecaster/features/daily.py; the volatility ones (ewma_vol .. norm_return) are causal.
FEATURES = (
    "log_return",
    "log_range",
    "log_volume_change",
    "ewma_vol",
    "rv_5",
    "rv_22",
    "rv_66",
    "norm_return",
)
# Quantile levels the experts forecast by default; the 80% and 95% intervals are read off them, and
# 0.01 / 0.99 give the 1% VaR the Basel traffic light backtests.
DEFAULT_LEVELS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.975, 0.99)
DESCRIPTORS = ("cum_return", "log_volatility", "last5_return", "max_abs_move", "trend_strength")
# Market context on a window's last day (forecaster.features.market): usable as expert inputs (in
# `WindowConfig.features`) and as gate descriptors (in `ClusterConfig.descriptors`); needs a market.
CONTEXT = (
    "mkt_return", "mkt_vol", "mkt_rv_66", "mkt_trend", "dispersion", "avg_corr", "breadth", "beta", "idio_vol",
)  # fmt: skip
# What `--market` adds to the gate's descriptors: the market's risk and direction, how far the
# cross-section spreads and how much it moves together (what one ticker's window cannot show).
CONTEXT_DESCRIPTORS = ("mkt_vol", "mkt_trend", "dispersion", "avg_corr")
# Online recalibration of the served quantiles (forecaster.calibration.aci): adaptive conformal
# inference with one step size, or DtACI, which tunes its step size online.
ACI_METHODS = ("aci", "dtaci")


# Gates and fusion rules: how memberships weigh the experts (forecaster.regimes.gates).
GATES = Registry(
    "gate",
    {
        "fuzzy": "forecaster.regimes.gates:FuzzyGate",
        "hard": "forecaster.regimes.gates:HardGate",
        "single": "forecaster.regimes.gates:SingleGate",
        "equal": "forecaster.regimes.gates:EqualWeights",
    },
)
# What turns regime descriptors into memberships [N, c] (forecaster.regimes.fcm).
# "learned": FCM's memberships as a network the fused loss trains (forecaster.regimes.learned).
CLUSTERERS = Registry(
    "clusterer",
    {"fcm": "forecaster.regimes.fcm:FuzzyCMeans", "learned": "forecaster.regimes.learned:LearnedGate"},
)
# Expert heads: outputs per horizon, their loss, and how they become quantiles (forecaster.experts.heads).
HEADS = Registry(
    "head", {"quantile": "forecaster.experts.heads:QuantileHead", "mse": "forecaster.experts.heads:MSEHead"}
)
# Calibrators of the fused quantiles (forecaster.calibration.cqr, .regime).
CALIBRATORS = Registry(
    "calibrator",
    {
        "cqr": "forecaster.calibration.cqr:QuantileCalibrator",
        "cqr_regime": "forecaster.calibration.regime:RegimeQuantileCalibrator",
    },
)


@dataclass(frozen=True)
class WindowConfig:
    window: int = 30  # L: trading days of history the experts read
    horizon: int = 5  # H: trading days forecast ahead (direct multi-output)
    stride: int = 1  # step between consecutive window origins
    # Per-day inputs (FEATURES, see features.py). The volatility state (vol-normalised return, EWMA
    # and 5/22/66-day realised volatility, HAR-style; all causal) measured better than returns and
    # ranges alone: 20 universe stocks, 2012-2013, mean pinball x1e4 42.90 against 43.19 (GARCH 43.41).
    features: tuple[str, ...] = (
        "log_return",
        "log_range",
        "norm_return",
        "ewma_vol",
        "rv_5",
        "rv_22",
        "rv_66",
    )
    val_fraction: float = 0.1  # share of the calendar for validation (early stopping)
    calib_fraction: float = 0.1  # share after validation for calibrating the quantiles (0: use validation)
    test_fraction: float = 0.15  # share held out for the final report; 0 trains on everything else
    gap: int | None = None  # trading days between splits; None means `horizon`
    calendar: str = "XNYS"  # exchange calendar (exchange_calendars code) for future target dates
    # Where market context comes from (forecaster.features.market): None, no context (the model of
    # waves 1-2); "universe", the equal-weight average of the tickers trained on; or a ticker of
    # the same source, an index ("^GSPC"), whose bars then travel with the universe's.
    market: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "features", tuple(self.features))  # frozen: set once, here
        unknown = set(self.features) - set(FEATURES) - set(CONTEXT)
        if unknown:
            raise ValueError(f"unknown feature(s) {sorted(unknown)}; choose from {FEATURES + CONTEXT}")
        if self.market is None and set(self.features) & set(CONTEXT):
            raise ValueError(
                f"feature(s) {sorted(set(self.features) & set(CONTEXT))} are market context: set a market"
            )
        if "log_return" not in self.features:
            raise ValueError("features must include 'log_return' (the target is built from it)")
        if self.window < 5 or self.horizon < 1 or self.stride < 1:
            raise ValueError("window must be >= 5, horizon and stride >= 1")
        if not (0 < self.val_fraction < 1 and 0 <= self.test_fraction < 1 and 0 <= self.calib_fraction < 1):
            raise ValueError("val_fraction must be in (0, 1), calib_fraction and test_fraction in [0, 1)")
        if self.val_fraction + self.calib_fraction + self.test_fraction >= 0.9:
            raise ValueError("val_fraction + calib_fraction + test_fraction leaves too little training data")

    @property
    def split_gap(self) -> int:
        return self.horizon if self.gap is None else self.gap


@dataclass(frozen=True)
class ClusterConfig:
    n_clusters: int | Literal["auto"] = 3  # c, or "auto": 2..6 chosen by the Xie-Beni index
    m: float = 2.0  # fuzzifier; 1 would be hard k-means, larger blurs the regimes
    descriptors: tuple[str, ...] = ("cum_return", "log_volatility", "last5_return", "max_abs_move")
    error: float = 1e-6  # cmeans stopping tolerance
    maxiter: int = 1000
    random_state: int = 0
    # How windows reach the experts. fuzzy: expert k trains on every window weighted by u_ik^m and
    # the forecast is sum_k u_k y_k (the method). hard: expert k trains only on the windows whose
    # largest membership is k and the forecast comes from the argmax expert. single: one LSTM with
    # about as many parameters as the K experts together, trained on every window (a baseline).
    # Any trainable rule of `GATES` (not "equal": it only re-weighs experts a gate trained).
    gate: str = "fuzzy"
    clusterer: str = "fcm"  # what turns descriptors into memberships: a name in `CLUSTERERS`

    def __post_init__(self) -> None:
        object.__setattr__(self, "descriptors", tuple(self.descriptors))
        trainable = [name for name in GATES.names() if GATES.get(name).trainable]
        if self.gate not in trainable:
            raise ValueError(f"gate must be one of {', '.join(map(repr, trainable))}, got {self.gate!r}")
        CLUSTERERS.check(self.clusterer, "clusterer")
        unknown = set(self.descriptors) - set(DESCRIPTORS) - set(CONTEXT)
        if unknown:
            raise ValueError(f"unknown descriptor(s) {sorted(unknown)}; choose from {DESCRIPTORS + CONTEXT}")
        if self.n_clusters != "auto" and not (isinstance(self.n_clusters, int) and self.n_clusters >= 2):
            raise ValueError(f"n_clusters must be an integer >= 2 or 'auto', got {self.n_clusters!r}")
        if self.m <= 1:
            raise ValueError(f"fuzzifier m must be > 1, got {self.m}")


@dataclass(frozen=True)
class ExpertConfig:
    hidden_size: int = 64
    num_layers: int = 1
    dropout: float = 0.1  # between LSTM layers (when > 1) and before the linear head
    # quantile: each expert forecasts these quantiles of the next H cumulative log returns (in units
    # of the origin's volatility), trained with the pinball loss; mse: one point forecast per horizon
    # (the patent's literal forecast), with quantiles from calibration residuals. A name in `HEADS`.
    head: str = "quantile"
    levels: tuple[float, ...] = DEFAULT_LEVELS

    def __post_init__(self) -> None:
        object.__setattr__(self, "levels", tuple(float(q) for q in self.levels))
        HEADS.check(self.head, "head")
        if list(self.levels) != sorted(set(self.levels)) or not all(0 < q < 1 for q in self.levels):
            raise ValueError(f"levels must be distinct, increasing and inside (0, 1), got {self.levels}")
        if 0.5 not in self.levels:
            raise ValueError("levels must include 0.5: the median is the point forecast")


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 30
    batch_size: int = 256
    lr: float = 1e-3
    weight_decay: float = 0.0
    patience: int = 5  # epochs without validation improvement before stopping
    grad_clip: float = 1.0
    fine_tune_epochs: int = 3  # joint fine-tune of the fused output after the experts (0: off)
    fine_tune_lr: float = 3e-4
    # Epochs of each stage of a warm-started refit (`fit(init=...)`, a walk-forward's `refit="warm"`):
    # it starts from the previous fold's trained weights, so a few do (`warm`).
    warm_epochs: int = 3
    coverage: tuple[float, ...] = (0.8, 0.95)  # conformal interval levels
    calibrator: str = "cqr"  # calibration of the fused quantiles, in `CALIBRATORS`: "cqr", "cqr_regime"
    # How the batch job and the API adapt served quantiles to each ticker's outcomes
    # (forecaster.calibration.aci): "aci" (one step size) or "dtaci" (step size tuned online). The
    # backtest scores both whatever this says (fuzzy_aci, fuzzy_dtaci).
    aci_method: str = "aci"
    device: str = "auto"  # auto | cpu | cuda | cuda:N | mps
    warmup_steps: int = 0  # linear learning-rate warm-up; use a few hundred with batches of 16k+
    precision: Literal["auto", "bf16", "fp32"] = "auto"  # auto: bf16 autocast on CUDA, float32 elsewhere
    seed: int = 0
    # What expert k learns from (forecaster.experts.competition). membership: every window weighted
    # by the gate's u_ik^m, fixed (the method). competitive (Jacobs et al. 1991): by its
    # responsibility r_ik ~ u_ik exp(-loss_ik / T), recomputed every epoch from the experts' losses,
    # so the expert that explains a window best gets more of it and the experts specialise.
    objective: Literal["membership", "competitive"] = "membership"
    # T, in the head's loss units: the targets are in units of the origin's volatility, so one T
    # serves every ticker. 0.05 of pinball makes an expert 0.05 worse on a window e times less
    # responsible for it; a smaller T sharpens the competition.
    competitive_temperature: float = 0.05
    # Share of every responsibility that stays the gate's prior u_ik: no expert loses all of a
    # window while the experts are still random (the first epochs), so none collapses early.
    competitive_floor: float = 0.2
    # The learned gate's end-to-end fine-tune (clusterer "learned", forecaster.experts.gating):
    gate_lr: float = 1e-2  # the gate's learning rate: few weights, starting at FCM's solution
    # Weight of the load-balancing term, CV^2 of the experts' mean memberships: 0.1 costs a
    # split of (0.6, 0.2, 0.2) 0.03, about a tenth of a pinball loss, so only starving matters.
    gate_balance: float = 0.1
    # Normalised membership entropy (0: one-hot, 1: uniform) below which a window pays the
    # shortfall: the memberships stay fuzzy (FCM's with m = 2 sit around 0.5-0.8).
    gate_entropy_floor: float = 0.2

    def __post_init__(self) -> None:
        object.__setattr__(self, "coverage", tuple(self.coverage))
        if any(not 0 < c < 1 for c in self.coverage):
            raise ValueError(f"coverage levels must lie in (0, 1), got {self.coverage}")
        CALIBRATORS.check(self.calibrator, "calibrator")
        if self.objective not in ("membership", "competitive"):
            raise ValueError(f"objective must be 'membership' or 'competitive', got {self.objective!r}")
        if self.competitive_temperature <= 0 or not 0 <= self.competitive_floor <= 1:
            raise ValueError(
                "competitive_temperature must be > 0 and competitive_floor in [0, 1], got "
                f"{self.competitive_temperature} and {self.competitive_floor}"
            )
        if self.gate_lr <= 0 or self.gate_balance < 0 or not 0 <= self.gate_entropy_floor < 1:
            raise ValueError(
                "gate_lr must be > 0, gate_balance >= 0 and gate_entropy_floor in [0, 1), got "
                f"{self.gate_lr}, {self.gate_balance} and {self.gate_entropy_floor}"
            )
        if self.warm_epochs < 0:
            raise ValueError(f"warm_epochs must be >= 0, got {self.warm_epochs}")
        if self.aci_method not in ACI_METHODS:
            raise ValueError(f"aci_method must be one of {', '.join(ACI_METHODS)}, got {self.aci_method!r}")

    def warm(self) -> TrainConfig:
        """A warm-started refit's settings: `warm_epochs` expert epochs, and at most as many fine-tune ones."""
        return dataclasses.replace(
            self, epochs=self.warm_epochs, fine_tune_epochs=min(self.fine_tune_epochs, self.warm_epochs)
        )


@dataclass(frozen=True)
class ForecasterConfig:
    window: WindowConfig = field(default_factory=WindowConfig)
    cluster: ClusterConfig = field(default_factory=ClusterConfig)
    expert: ExpertConfig = field(default_factory=ExpertConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def __post_init__(self) -> None:
        context = sorted(set(self.cluster.descriptors) & set(CONTEXT))
        if context and self.window.market is None:
            raise ValueError(f"descriptor(s) {context} are market context: set window.market (--market)")
        for c in self.train.coverage:
            bounds = (round((1 - c) / 2, 6), round((1 + c) / 2, 6))
            if any(b not in self.expert.levels for b in bounds):
                raise ValueError(
                    f"coverage {c} needs quantile levels {bounds[0]} and {bounds[1]} in expert.levels"
                )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ForecasterConfig:
        return cls(
            window=WindowConfig(**data.get("window", {})),
            cluster=ClusterConfig(**data.get("cluster", {})),
            expert=ExpertConfig(**data.get("expert", {})),
            train=TrainConfig(**data.get("train", {})),
        )

    def with_(self, **sections: dict[str, Any]) -> ForecasterConfig:
        """A variant with some fields of some sections changed; the configs are frozen.

        `config.with_(train={"epochs": 5}, cluster={"gate": "single"})` is
        `dataclasses.replace` applied section by section, with every check run again.
        """
        unknown = set(sections) - {f.name for f in dataclasses.fields(self)}
        if unknown:
            raise ValueError(f"unknown config section(s) {sorted(unknown)}: window, cluster, expert, train")
        return dataclasses.replace(
            self,
            **{
                name: dataclasses.replace(getattr(self, name), **changes)
                for name, changes in sections.items()
            },
        )

    def flat(self) -> dict[str, Any]:
        """`section.name -> value`, for logging as run parameters."""
        return {f"{s}.{k}": v for s, d in self.to_dict().items() for k, v in d.items()}


class Settings(BaseSettings):
    """Runtime settings of this machine: `FORECASTER_<NAME>` variables or `forecaster.toml`.

    Everything local lives under `home` (default `./.forecaster`), so moving `FORECASTER_HOME`
    moves the price cache, the model folder and the databases together.
    """

    model_config = SettingsConfigDict(env_prefix="FORECASTER_", toml_file="forecaster.toml", extra="ignore")

    home: Path = Path(".forecaster")
    source: str = "sample"  # sample | cache | yahoo | a CSV/Parquet file or folder
    universe: list[str] = ["^GSPC", "^IXIC"]
    # MLflow: the standard MLFLOW_TRACKING_URI wins; default is SQLite inside `home`.
    mlflow_uri: str | None = Field(
        None, validation_alias=AliasChoices("MLFLOW_TRACKING_URI", "FORECASTER_MLFLOW_URI")
    )
    experiment: str = "fcm-lstm"
    model_name: str = "fcm-lstm"  # registered model; aliases champion / challenger
    # Bounds on every MLflow HTTP call of the command line and the jobs (the API sets its own);
    # MLFLOW_HTTP_REQUEST_MAX_RETRIES / MLFLOW_HTTP_REQUEST_TIMEOUT, when set, win.
    mlflow_retries: int = Field(2, ge=0)
    mlflow_timeout_s: float = Field(15.0, gt=0)
    # One ticker per line, '#' starts a comment; when set it replaces `universe`.
    universe_file: Path | None = None
    # Forecasts, job runs and job locks: SQLite in `home` by default, or postgresql://... .
    forecast_store_url: str = Field(
        default_factory=lambda data: f"sqlite:///{(Path(data['home']) / 'forecasts.db').resolve()}"
    )
    # Ingestion from Yahoo (pipelines/ingest.py).
    ingest_batch_size: int = 20  # tickers validated and written together
    ingest_overlap_days: int = 7  # calendar days re-read before the last stored bar (revisions)
    ingest_timeout: float = 30.0  # seconds per HTTP request
    ingest_attempts: int = 5  # tries per ticker on rate limits and network errors
    ingest_backoff: float = 2.0  # seconds; waits grow 2x per try, with full jitter
    ingest_max_failure_share: float = 0.1  # exit code 1 when a larger share of tickers fails
    # Scheduler (pipelines/scheduler.py): crontab lines in `schedule_timezone`.
    schedule_timezone: str = "America/New_York"
    schedule_calendar: str = "XNYS"  # the daily job runs on this exchange's sessions only
    schedule_daily: str = "30 18 * * mon-fri"  # ingest + batch forecast, after the US close
    schedule_retrain: str = "0 6 * * sat"
    schedule_misfire_grace_s: int = 3600  # a run late by more than this is skipped
    job_lock_ttl_s: int = 600  # a lock not renewed for this long is free (its holder died)
    job_heartbeat_s: int = 30  # a running job updates its job_runs row this often
    job_stale_after_s: int = 300  # a running run without heartbeat this long is marked interrupted
    # Engine (forecaster/runtime/engine.py): `local` runs everything in this process and starts no Ray;
    # `ray` runs backtest folds, batch-forecast shards, downloads, searches and distributed
    # training as Ray tasks: on the cluster at RAY_ADDRESS, else on a Ray started on this machine.
    engine: Literal["local", "ray"] = "local"
    ray_address: str | None = Field(
        None, validation_alias=AliasChoices("RAY_ADDRESS", "FORECASTER_RAY_ADDRESS")
    )
    ray_num_cpus: int | None = None  # CPUs of a Ray started here (no RAY_ADDRESS); None: all
    batch_shard_size: int = Field(64, ge=1)  # tickers per Ray Data block of the batch forecast
    ingest_max_rate: float = 5.0  # Yahoo downloads per second across all Ray workers together
    train_workers: int = 2  # Ray Train workers (DDP) of the retrain job on the `ray` engine
    train_use_gpu: bool = False  # one GPU per Ray Train worker (nccl) instead of CPUs (gloo)

    @property
    def price_dir(self) -> Path:
        return self.home / "prices"

    @property
    def models_dir(self) -> Path:
        return self.home / "models"

    @property
    def reports_dir(self) -> Path:
        return self.home / "reports"

    @property
    def tracking_uri(self) -> str:
        if self.mlflow_uri:
            return self.mlflow_uri
        self.home.mkdir(parents=True, exist_ok=True)
        return f"sqlite:///{(self.home / 'mlflow.db').resolve()}"

    @classmethod
    def settings_customise_sources(
        cls, settings_cls, init_settings, env_settings, dotenv_settings, file_secret_settings
    ):
        from pydantic_settings import TomlConfigSettingsSource

        # Precedence: explicit arguments > environment > forecaster.toml.
        return init_settings, env_settings, TomlConfigSettingsSource(settings_cls)
