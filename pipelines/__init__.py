"""Jobs that wire `forecaster` library calls together; each runs as `python -m pipelines.<job>`."""
