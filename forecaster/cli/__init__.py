"""The `forecaster` command line, one module per group of verbs.

- `model_work`: quickstart, train, forecast, backtest
- `registry`: promote, models, ui
- `operations`: serve, ingest, schedule, runs
- `render`: the tables; `common`: errors, shared options, config from options
"""

from forecaster.cli.main import app

__all__ = ["app"]
