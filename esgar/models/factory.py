"""Models by name, timm style: a timm backbone and an attribute head; trained ones from a folder.

    net = create_model("resnet18", "esg", region_names=regions, attribute_regions=table,
                       pretrained=False, img_size=128)
    logits = net(images, grids)                  # {attribute: [B, num_classes]}
    logits, maps = net(images, grids, return_attention=True)   # maps: {attribute: [B,h,w]}
    net, info = load_trained("models/esgar")     # what the train stage wrote

`net.grid_size` is the (h, w) the region grids must have for `img_size` inputs, `net.mean` /
`net.std` the backbone's input normalisation, `net.config` the keyword arguments that rebuild
the same network (JSON-able).
"""

from __future__ import annotations

import json
import pickle
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from esgar import schema as _schema
from esgar.errors import ConfigError, EsgarError
from esgar.io import atomic_path, write_json
from esgar.models.backbones import Backbone, create_backbone
from esgar.models.heads import (
    check_head_kwargs, check_model_regions, create_head, list_heads,
)
from esgar.schema import Attribute, Schema

__all__ = ["AttributeModel", "ModelLoadError", "check_model_regions", "create_model",
           "load_trained", "model_schema", "save_trained", "save_weights"]

MODEL_FILE = "model.json"


class ModelLoadError(EsgarError):
    """A trained-model folder is missing, incomplete, or holds something else."""


class AttributeModel(nn.Module):
    """images [B,3,S,S], region grids [B,R,h,w] -> {attribute: logits [B, num_classes]}.

    With `return_attention=True` it returns `(logits, maps)`, maps `{attribute: [B,h,w]}` from
    heads with attention (ESG: the self-attention weight of each token in the branch's pooled
    descriptor; LSA: the combined cross-attention), `{}` from the others.
    """

    def __init__(self, backbone: Backbone, head: nn.Module, attributes: Sequence[Attribute],
                 region_names: Sequence[str], attribute_regions: Mapping[str, str],
                 config: dict[str, Any] | None = None):
        super().__init__()
        self.backbone = backbone
        self.head = head
        self.attributes = tuple(a.name for a in attributes)
        self.region_names = tuple(region_names)
        self.attribute_regions = dict(attribute_regions)
        self.config = dict(config or {})

    @property
    def grid_size(self) -> tuple[int, int]:
        return self.backbone.grid_size(self.backbone.img_size)

    @property
    def mean(self) -> tuple[float, ...]:
        return self.backbone.mean

    @property
    def std(self) -> tuple[float, ...]:
        return self.backbone.std

    def forward(self, images: torch.Tensor, region_grids: torch.Tensor | None = None,
                return_attention: bool = False):
        return self.head(self.backbone(images), region_grids, return_attention=return_attention)


def _attributes(attributes: Sequence[Attribute | str] | None, of: Schema
                ) -> tuple[Attribute, ...]:
    if attributes is None:
        return of.attributes
    return tuple(a if isinstance(a, Attribute) else of.attribute(a) for a in attributes)


def model_schema(config: Mapping[str, Any]) -> Schema:
    """The schema a model's config was built for: FS2K's unless the config carries another."""
    d = config.get("schema")
    return _schema.FS2K if d is None else Schema.from_dict(d, "the model's schema")


def create_model(backbone: str, head: str, *, region_names: Sequence[str],
                 attribute_regions: Mapping[str, str], pretrained: bool | str | Path,
                 img_size: int | None, attributes: Sequence[Attribute | str] | None = None,
                 schema: Mapping[str, Any] | None = None, **head_kwargs: Any) -> AttributeModel:
    """Build an `AttributeModel`.

    backbone: a timm model name. head: one of `list_heads()`.
    region_names: the regions of the grids, in channel order (a mask store's regions).
    attribute_regions: attribute -> the region its branch sees (ESGAR's table is in
      params.yaml); every modelled attribute needs one.
    pretrained: True (timm hub weights; fails clearly when unreachable), a local weights file,
      or False (random init). No default: say which.
    img_size: input side in pixels (None: the backbone's default).
    attributes: `Attribute`s or names (default: all of the schema's).
    schema: the description of the dataset's schema (`Schema.to_dict()`) the names refer to;
      default the schema in use. Kept in the config unless it is FS2K's, so a saved model
      rebuilds in a process using another dataset.
    head_kwargs: passed to the head (e.g. esg: pooling, num_heads, hidden, dropout).
    """
    if head not in list_heads():
        raise ConfigError(f"unknown head {head!r}; known heads: {', '.join(list_heads())}")
    check_head_kwargs(head, head_kwargs)
    of = _schema.active() if schema is None else Schema.from_dict(schema, "schema")
    attrs = _attributes(attributes, of)
    check_model_regions([a.name for a in attrs], region_names, attribute_regions)
    regions_of = {a.name: attribute_regions[a.name] for a in attrs}
    names = tuple(region_names)
    bb = create_backbone(backbone, pretrained=pretrained, img_size=img_size)
    hd = create_head(head, bb.num_features, attrs, names, regions_of, **head_kwargs)
    config = {"backbone": backbone, "head": head, "attributes": [a.name for a in attrs],
              "region_names": list(names), "attribute_regions": regions_of,
              "pretrained": pretrained if isinstance(pretrained, bool) else str(pretrained),
              "img_size": bb.img_size, **head_kwargs}
    if of != _schema.FS2K:
        config["schema"] = of.to_dict()
    return AttributeModel(bb, hd, attrs, names, regions_of, config)


def save_trained(model_dir: str | Path, net: AttributeModel, weights: str = "best.pt",
                 **info: Any) -> None:
    """Write `model_dir/model.json`: how to rebuild `net`, the name of its weights file in
    `model_dir`, and `info` (JSON-able: the MLflow run, ...). The weights are not written here
    (training writes them as it goes); pass `weights` when they are still to be saved by
    `torch.save(net.state_dict(), model_dir / weights)`."""
    write_json(Path(model_dir) / MODEL_FILE, {
        **info, "model": {**net.config, "pretrained": False}, "grid": list(net.grid_size),
        "weights": weights})


def save_weights(model_dir: str | Path, net: nn.Module, weights: str = "best.pt") -> Path:
    """`net`'s state dict as `model_dir/weights`, written atomically."""
    path = Path(model_dir) / weights
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        torch.save(net.state_dict(), f)  # a file object: the same weights give the same bytes
    return path


def load_trained(model_dir: str | Path, device: str | torch.device = "cpu"
                 ) -> tuple[AttributeModel, dict[str, Any]]:
    """The network `save_trained` described, with its weights, in eval mode; and model.json.

    Weights load with `weights_only=True`: a checkpoint from elsewhere cannot run code.
    """
    model_dir = Path(model_dir)
    path = model_dir / MODEL_FILE
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
        config, name = info["model"], info.get("weights", "best.pt")
    except FileNotFoundError:
        raise ModelLoadError(f"{path}: no trained model here (run the train stage)") from None
    except (ValueError, KeyError, TypeError) as e:
        raise ModelLoadError(f"{path}: not a model description ({e})") from None
    if not isinstance(config, dict) or not isinstance(name, str):
        raise ModelLoadError(f"{path}: not a model description (model and weights)")
    if Path(name).name != name or name in ("", ".", ".."):  # never a file outside the folder
        raise ModelLoadError(f"{path}: weights {name!r} is not a file name inside {model_dir}")
    weights = model_dir / name
    try:
        net = create_model(**config)
    except (EsgarError, TypeError, ValueError, KeyError, RuntimeError) as e:
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise ModelLoadError(f"{path}: the model it describes cannot be built ({first[:300]})"
                             ) from None
    try:
        state = torch.load(weights, map_location=device, weights_only=True)
        net.load_state_dict(state)
    except FileNotFoundError:
        raise ModelLoadError(f"{weights}: weights named by {path} are missing") from None
    except (RuntimeError, pickle.UnpicklingError, zipfile.BadZipFile, EOFError) as e:
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise ModelLoadError(f"{weights}: not weights of the model {path} describes "
                             f"({first})") from None
    return net.to(device).eval(), info
