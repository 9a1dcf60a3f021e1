"""The model MLflow serves, as code (MLflow's models-from-code: it runs this file to load the
model; nothing is pickled). Logged by `esgar.inference.publish`.

Input: a frame with `sketch` and optional `photo` and `masks`, base64 image bytes per row;
output: `esgar.inference.results.Prediction.frame`'s columns, one row per input row.
"""

from typing import Any

import mlflow
import pandas as pd
from mlflow.pyfunc import PythonModel, PythonModelContext

from esgar.inference.model import Predictor
from esgar.inference.payload import serve_frame


class ServedModel(PythonModel):
    """A trained-model folder (the `model_dir` artifact) behind `serve_frame`."""

    def load_context(self, context: PythonModelContext) -> None:
        self.predictor = Predictor.from_dir(context.artifacts["model_dir"])

    def predict(self, context: PythonModelContext, model_input: pd.DataFrame,
                params: dict[str, Any] | None = None) -> pd.DataFrame:
        return serve_frame(self.predictor, model_input)


mlflow.models.set_model(ServedModel())
