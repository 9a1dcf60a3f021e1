"""A trained model ready for new sketches: the network and the mask recipe it was trained on.

    predictor = Predictor.from_dir("models/esgar")     # model.json + weights, on the CPU
    predictor.net, predictor.recipe["regions"]         # {region: [canonical classes]}
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import torch
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)

from esgar import schema
from esgar.masks.grids import RULES
from esgar.masks.labels import CANONICAL_CLASSES, LABEL_ORDERS
from esgar.masks.parsers import PARSERS
from esgar.models.factory import AttributeModel, ModelLoadError, load_trained, model_schema

__all__ = ["RECIPE_KEYS", "Predictor", "Recipe"]

RECIPE_KEYS = {"regions", "fallback", "grid_rule", "grid_image_size"}  # of model.json's "masks"


def _canonical(name: str) -> str:
    if name not in CANONICAL_CLASSES:
        raise ValueError(f"{name!r} is no face-parsing class ({', '.join(CANONICAL_CLASSES)})")
    return name


class _Region(BaseModel):
    name: Annotated[str, Field(min_length=1, max_length=64)]
    classes: list[Annotated[str, AfterValidator(_canonical)]]


class Recipe(BaseModel):
    """model.json's `masks`, checked like params: a model folder is input too."""

    model_config = ConfigDict(extra="allow")
    regions: Annotated[list[_Region], Field(min_length=1, max_length=64)]
    fallback: dict[str, str]
    grid_rule: Literal[RULES]  # type: ignore[valid-type]
    grid_image_size: Annotated[int, Field(ge=8, le=4096)]
    label_order: Literal[tuple(LABEL_ORDERS)] | None = None  # type: ignore[valid-type]
    parser: Literal[PARSERS] | None = None  # type: ignore[valid-type]

    @model_validator(mode="after")
    def _fallbacks_are_regions(self) -> Recipe:
        names = {r.name for r in self.regions}
        bad = [f"{k} -> {v}" for k, v in self.fallback.items() if {k, v} - names]
        if bad:
            raise ValueError(f"fallback {', '.join(bad)} names no region of the recipe")
        return self


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
        try:
            checked = Recipe.model_validate(dict(recipe))
        except ValidationError as e:
            first = e.errors()[0]
            raise ModelLoadError(f"{where}: masks.{'.'.join(map(str, first['loc']))}: "
                                 f"{first['msg'].removeprefix('Value error, ')}") from None
        recipe = {**recipe, **checked.model_dump(exclude={"regions"})}
        regions = {r.name: list(r.classes) for r in checked.regions}
        missing = [r for r in net.region_names if r not in regions]
        if missing:
            raise ModelLoadError(f"{where}: the model's region(s) {', '.join(missing)} are not "
                                 f"in its mask recipe ({', '.join(regions)})")
        # the class names of the answers are the model's dataset's, whatever params.yaml says
        schema.use(model_schema(net.config))
        return cls(net, {**recipe, "regions": regions}, source or str(model_dir))
