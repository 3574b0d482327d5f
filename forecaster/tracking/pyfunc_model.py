"""The code file of the logged pyfunc model (MLflow models-from-code), so the model holds no pickle.

`log_training_run` passes this file as `python_model`; MLflow copies it into the logged model
and runs it when the model is loaded. It only names the wrapper: the model's state is the saved
model directory logged beside it as the artifact `model_dir`.
"""

import mlflow

from forecaster.tracking.pyfunc import ForecasterPyfunc

mlflow.models.set_model(ForecasterPyfunc())
