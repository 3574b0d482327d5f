"""Scale: distributed training (Ray Train) and hyperparameter search (Ray Tune); they use the model."""
