"""Which daily features the experts should read: a short walk-forward on real stocks per feature set.

    python benchmarks/compare_features.py base|vol|har [EPOCHS] [--data PATH]

20 stocks drawn with seed 0 from ../shared/data/us-stocks-2000-2017.parquet, origins 2012-2013,
yearly refits, GARCH and EWMA beside the fuzzy model and its equal-weight twin. Prints mean pinball
loss x1e4, Winkler 80 and coverage per model. It chose the default features (README, config.py).
"""

import sys
import time
from pathlib import Path

import numpy as np

from forecaster.config import ExpertConfig, ForecasterConfig, TrainConfig, WindowConfig
from forecaster.data import load_bars
from forecaster.evaluation.backtest import walk_forward
from forecaster.evaluation.scoring import score

FEATURES = {
    "base": ("log_return", "log_range"),
    "vol": ("log_return", "log_range", "norm_return", "ewma_vol", "rv_22"),
    "har": ("log_return", "log_range", "norm_return", "ewma_vol", "rv_5", "rv_22", "rv_66"),
}
DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "us-stocks-2000-2017.parquet"

name = sys.argv[1] if len(sys.argv) > 1 else "har"
epochs = int(sys.argv[2]) if len(sys.argv) > 2 and sys.argv[2].isdigit() else 5
path = sys.argv[sys.argv.index("--data") + 1] if "--data" in sys.argv else DATA
bars = load_bars(str(path))
tickers = sorted(np.random.default_rng(0).choice(sorted(bars["ticker"].unique()), 20, replace=False))
bars = bars[bars["ticker"].isin(tickers)]
config = ForecasterConfig(
    window=WindowConfig(features=FEATURES[name]),
    expert=ExpertConfig(hidden_size=32),
    train=TrainConfig(epochs=epochs, patience=2, batch_size=512, lr=2e-3, fine_tune_epochs=2, device="cpu"),
)
started = time.time()
result = walk_forward(
    bars,
    config,
    start="2012-01-01",
    end="2013-12-31",
    refit_every=250,
    models=["garch", "ewma", "fuzzy", "equal_weight"],
)
table = score(result.forecasts).set_index("model")
print(f"{name}: {time.time() - started:.0f} s")
print(
    table[["n", "pinball", "winkler_80", "coverage_80", "coverage_95"]]
    .assign(pinball=lambda d: d.pinball * 1e4)
    .to_string()
)
