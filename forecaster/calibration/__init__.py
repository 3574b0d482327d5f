"""Calibration: the `Calibrator` seam, conformalized quantile regression (CQR), adaptive conformal state."""
