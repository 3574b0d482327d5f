"""Evaluation, one module per concern; import the module you need.

- `metrics`: pure-numpy metrics (the model's own summary comes from here)
- `baselines`: naive, drift, ARIMA forecasters of the backtest
- `backtest`: the walk-forward loop over every competitor (the only module here that imports the model)
- `scoring`: scores of backtest forecasts per group, Diebold-Mariano tests
- `report`: tables and plots of a backtest
"""
