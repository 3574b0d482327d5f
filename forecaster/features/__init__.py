"""Features: causal daily features, the one volatility module, lazy windows, splits and scaling."""
