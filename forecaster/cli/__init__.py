"""The `forecaster` command line, one module per group of verbs.

- `model_work`: quickstart, train, forecast, backtest
- `registry`: promote, models, ui
- `operations`: serve, ingest, batch-forecast, schedule, runs
- `scale`: tune
- `render`: the tables; `common`: errors, shared options, config from options
- `entry`: the console script (`--version` without building the app)
"""

__all__ = ["app"]


def __getattr__(name: str):
    if name == "app":  # lazy: `forecaster --version` must not build the app and import its verbs
        from forecaster.cli.main import app

        return app
    raise AttributeError(f"module 'forecaster.cli' has no attribute {name!r}")
