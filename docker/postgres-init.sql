-- Two databases on one server: MLflow's tracking/registry store and the forecast store.
CREATE DATABASE mlflow;
CREATE DATABASE forecasts;
