"""Train job: bars of the configured universe -> fitted forecaster -> model directory.

Usage:
    python -m pipelines.train                     # embedded defaults: bundled sample, ./.forecaster
    python -m pipelines.train --epochs 5 --name nightly
    FORECASTER_SOURCE=prices/ FORECASTER_UNIVERSE='["AAPL","MSFT"]' python -m pipelines.train

Settings come from FORECASTER_* variables (see forecaster.config.Settings).
"""

from __future__ import annotations

import argparse
import logging
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from forecaster.config import ForecasterConfig, Settings, TrainConfig
from forecaster.data import load_bars
from forecaster.model import FuzzyLSTMForecaster

log = logging.getLogger("pipelines.train")


def load_universe(settings: Settings) -> pd.DataFrame:
    return load_bars(settings.source, settings.universe, price_dir=settings.price_dir)


def train(bars: pd.DataFrame, config: ForecasterConfig) -> FuzzyLSTMForecaster:
    return FuzzyLSTMForecaster(config).fit(bars)


def run(settings: Settings, config: ForecasterConfig, name: str | None = None) -> Path:
    bars = load_universe(settings)
    model = train(bars, config)
    name = name or datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = model.save(settings.models_dir / name)
    log.info("model %s: val Theil's U %.3f (naive = 1)", path, model.metrics_["val_theil_u"])
    return path


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--epochs", type=int, default=TrainConfig.epochs)
    parser.add_argument(
        "--name", help="model directory name under FORECASTER_HOME/models (default: UTC time)"
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    print(run(Settings(), ForecasterConfig(train=TrainConfig(epochs=args.epochs)), args.name))


if __name__ == "__main__":
    main()
