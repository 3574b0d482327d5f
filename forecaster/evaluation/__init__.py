"""Evaluation, one module per concern; import the module you need.

- `baselines`: the backtest's statistical competitors, one module each, registered by name: naive,
  drift, ARIMA (a point path and its in-sample error quantiles); GARCH(1,1)-t, EWMA, historical
  (quantiles that follow the volatility state)
- `backtest`: every competitor through the folds of `forecaster.walkforward` (the only module here
  that imports the model)
- `scoring`: scores of backtest forecasts per group (point and probabilistic), conditional coverage, Diebold-Mariano tests
- `comparison`: tests robust to autocorrelated losses: HAC Diebold-Mariano (22+ lags), stationary
  bootstrap, the Model Confidence Set, per-ticker wins
- `risk_backtests`: VaR and ES backtests: Kupiec, Christoffersen, dynamic quantile, Basel traffic
  light, Acerbi-Szekely Z2
- `ranking`: the M6 ranked probability score and a one-factor volatility baseline of quintile ranks
- `report`: tables and plots of a backtest (`plots`: the figures; `run_plots`: a training run's)
- `charts`: the figures on matplotlib axes, returned (`plots` saves them); `api`: `backtest_model`,
  the backtest as an object of the report's tables (this package's one name, imported lazily)
"""


def __getattr__(name: str):
    if name == "backtest_model":  # lazily: importing a baseline must not import the model and report
        from forecaster.evaluation.api import backtest_model

        return backtest_model
    raise AttributeError(f"module 'forecaster.evaluation' has no attribute {name!r}")
