"""MLflow, and only here: where tracking goes, runs, the pyfunc model, the registry, promotion.

- `setup`: the store and experiment (`configure`)
- `runs`: training and backtest runs
- `pyfunc`: the pyfunc model, logged from code (`pyfunc_model.py`, no pickle) with a checksum,
  verified whenever a registered version is loaded
- `registry`: champion / challenger aliases, promotion, listing and loading versions
- `promotion`: the promotion decision, a plain function of two score sets
- `search`: a hyperparameter search as a parent run with nested trial runs

The names below are the package's public surface, so callers write `tracking.promote(...)`.
"""

from forecaster.tracking.promotion import PROMOTION_METRICS, PromotionDecision, decide
from forecaster.tracking.pyfunc import CHECKSUM_TAG, ForecasterPyfunc, ModelIntegrityError, load_model
from forecaster.tracking.registry import (
    CHALLENGER,
    CHAMPION,
    ModelRef,
    RegisteredForecaster,
    challenger_fingerprint,
    evaluation_windows,
    list_versions,
    load_registered,
    mark_challenger,
    promote,
    resolve_model_uri,
)
from forecaster.tracking.runs import LoggedModel, log_backtest_run, log_training_run, training_run
from forecaster.tracking.search import log_search, tag_search
from forecaster.tracking.setup import configure, run_url, ui_url

__all__ = [
    "CHALLENGER",
    "CHECKSUM_TAG",
    "CHAMPION",
    "PROMOTION_METRICS",
    "ForecasterPyfunc",
    "LoggedModel",
    "ModelIntegrityError",
    "ModelRef",
    "PromotionDecision",
    "RegisteredForecaster",
    "challenger_fingerprint",
    "configure",
    "decide",
    "evaluation_windows",
    "list_versions",
    "load_model",
    "load_registered",
    "log_backtest_run",
    "log_search",
    "log_training_run",
    "mark_challenger",
    "promote",
    "resolve_model_uri",
    "run_url",
    "tag_search",
    "training_run",
    "ui_url",
]
