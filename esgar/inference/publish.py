"""The served model logged to MLflow with the run that trained it: its code
(`esgar.inference.pyfunc`, as a file), its weights and mask recipe, its signature and a valid
input example.

    log_served_model(net, mask_recipe("data/masks"))      # inside a tracking.run(...)
"""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping
from typing import Any

from esgar.inference.example import example_request
from esgar.inference.results import result_columns
from esgar.integrations import tracking
from esgar.models.factory import AttributeModel

__all__ = ["INPUTS", "MODEL_CODE", "log_served_model"]

# Found, not imported: the file is MLflow's to run, and the train stage does not depend on it.
MODEL_CODE = importlib.util.find_spec("esgar.inference.pyfunc").origin
INPUTS = {"sketch": True, "photo": False, "masks": False}  # column: required


def log_served_model(net: AttributeModel, recipe: Mapping[str, Any],
                     registered_model_name: str | None = None) -> Any:
    """Log `net` and its mask `recipe` (`esgar.masks.store.mask_recipe`) as the active run's
    `model`; returns MLflow's model info."""
    outputs = {c: "double" if "." in c else "string"
               for c in [*result_columns(list(net.attributes)), "fell_back"]}
    return tracking.log_model(net, recipe, model_code=MODEL_CODE, inputs=INPUTS,
                              outputs=outputs, input_example=example_request(recipe),
                              registered_model_name=registered_model_name)
