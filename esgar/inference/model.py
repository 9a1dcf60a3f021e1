"""A trained model ready for new sketches: the network and the mask recipe it was trained on.

    predictor = Predictor.from_dir("models/esgar")     # model.json + weights, on the CPU
    predictor.net, predictor.recipe["regions"]         # {region: [canonical classes]}
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from esgar.models.factory import AttributeModel, ModelLoadError, load_trained

__all__ = ["RECIPE_KEYS", "Predictor"]

RECIPE_KEYS = {"regions", "fallback", "grid_rule", "grid_image_size"}  # of model.json's "masks"


@dataclass
class Predictor:
    """A trained network with the mask recipe it was trained on and where it came from."""

    net: AttributeModel
    recipe: dict[str, Any]
    source: str

    @classmethod
    def from_dir(cls, model_dir: str | Path, device: str | torch.device = "cpu",
                 source: str | None = None) -> Predictor:
        """The model the train stage wrote in `model_dir` (model.json + weights);
        ModelLoadError when it records no usable mask recipe."""
        net, info = load_trained(model_dir, device)
        recipe = info.get("masks")
        where = Path(model_dir) / "model.json"
        if not isinstance(recipe, Mapping) or not RECIPE_KEYS <= set(recipe):
            raise ModelLoadError(f"{where}: the model records no mask recipe (regions, "
                                 "fallbacks, grid rule), so its masks cannot be made for new "
                                 "sketches; retrain it with this version (dvc repro train)")
        regions = {r["name"]: list(r["classes"]) for r in recipe["regions"]}
        missing = [r for r in net.region_names if r not in regions]
        if missing:
            raise ModelLoadError(f"{where}: the model's region(s) {', '.join(missing)} are not "
                                 f"in its mask recipe ({', '.join(regions)})")
        return cls(net, {**recipe, "regions": regions}, source or str(model_dir))
