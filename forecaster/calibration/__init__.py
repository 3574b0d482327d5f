"""Calibration: the `Calibrator` seam, conformalized quantile regression, conformal intervals, ACI state."""
