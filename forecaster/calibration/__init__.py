"""Calibration: conformalized quantile regression and adaptive conformal state."""
