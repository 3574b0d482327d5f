"""Evaluation, one module per concern; import the module you need.

- `baselines`: the backtest's statistical competitors, one module each, registered by name: naive,
  drift, ARIMA (a point path and its in-sample error quantiles); GARCH(1,1)-t, EWMA, historical
  (quantiles that follow the volatility state)
- `backtest`: every competitor through the folds of `forecaster.walkforward` (the only module here
  that imports the model)
- `scoring`: scores of backtest forecasts per group (point and probabilistic), conditional coverage, Diebold-Mariano tests
- `report`: tables and plots of a backtest (`plots`: the figures; `run_plots`: a training run's)
"""
