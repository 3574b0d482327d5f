"""Evaluation, one module per concern; import the module you need.

- `metrics`: pure-numpy metrics (the model's own summary comes from here)
- `baselines`: naive, drift, ARIMA forecasters of the backtest (with in-sample error quantiles)
- `baselines_vol`: distributional baselines driven by the volatility state: GARCH(1,1)-t, EWMA, historical
- `backtest`: the walk-forward loop over every competitor (the only module here that imports the model)
- `scoring`: scores of backtest forecasts per group (point and probabilistic), conditional coverage, Diebold-Mariano tests
- `report`: tables and plots of a backtest
"""
