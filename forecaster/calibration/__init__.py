"""Calibration: conformalized quantile regression, split-conformal intervals, adaptive conformal state."""
