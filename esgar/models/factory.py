"""`create_model(backbone, head, ...)`: a timm backbone and an attribute head, by name.

    net = create_model("resnet18", "esg", pretrained=False, img_size=128)
    logits = net(images, grids)                  # {attribute: [B, num_classes]}
    logits, maps = net(images, grids, return_attention=True)   # maps: {attribute: [B,h,w]}

`net.grid_size` is the (h, w) the region grids must have for `img_size` inputs;
`net.config` holds the keyword arguments that rebuild the same network (JSON-able).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from esgar import schema
from esgar.models.backbones import DEFAULT_BACKBONE, Backbone, create_backbone
from esgar.models.heads import create_head, list_heads
from esgar.schema import Attribute


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
    def img_size(self) -> int:
        return self.backbone.img_size

    @property
    def grid_size(self) -> tuple[int, int]:
        return self.backbone.grid_size(self.backbone.img_size)

    def forward(self, images: torch.Tensor, region_grids: torch.Tensor | None = None,
                return_attention: bool = False):
        return self.head(self.backbone(images), region_grids, return_attention=return_attention)


def _attributes(attributes: Sequence[Attribute | str] | None) -> tuple[Attribute, ...]:
    if attributes is None:
        return schema.ATTRIBUTES
    return tuple(a if isinstance(a, Attribute) else schema.attribute(a) for a in attributes)


def create_model(backbone: str = DEFAULT_BACKBONE, head: str = "esg",
                 attributes: Sequence[Attribute | str] | None = None,
                 region_names: Sequence[str] | None = None,
                 attribute_regions: Mapping[str, str] | None = None,
                 *, pretrained: bool | str | Path, img_size: int | None = 224,
                 **head_kwargs: Any) -> AttributeModel:
    """Build an `AttributeModel`.

    backbone: a timm model name. head: one of `list_heads()`.
    attributes: `Attribute`s or names (default: all of `schema.ATTRIBUTES`).
    attribute_regions: attribute -> region name; attributes left out keep their schema default.
    region_names: the order of the grid channels (default: the regions of `attribute_regions`
      in order of first use). ESG needs each attribute's region among them; SSP+SSG and LSA use
      all of them.
    pretrained: True (timm hub weights; fails clearly when unreachable), a local weights file,
      or False (random init). No default: say which.
    img_size: input side in pixels (None: the backbone's default).
    head_kwargs: passed to the head (e.g. esg: pooling, num_heads, hidden, dropout).
    """
    if head not in list_heads():
        raise KeyError(f"unknown head {head!r}; known heads: {', '.join(list_heads())}")
    attrs = _attributes(attributes)
    regions_of = {a.name: a.region for a in attrs}
    unknown = set(attribute_regions or {}) - set(regions_of)
    if unknown:
        raise KeyError(f"attribute_regions names attribute(s) not modelled: {sorted(unknown)}")
    regions_of.update(attribute_regions or {})
    if region_names is None:
        region_names = dict.fromkeys(regions_of.values())  # in order of first use
    names = tuple(region_names)
    if len(set(names)) != len(names):
        raise ValueError(f"region_names has duplicates: {names}")
    bb = create_backbone(backbone, pretrained=pretrained, img_size=img_size)
    hd = create_head(head, bb.num_features, attrs, names, regions_of, **head_kwargs)
    config = {"backbone": backbone, "head": head, "attributes": [a.name for a in attrs],
              "region_names": list(names), "attribute_regions": regions_of,
              "pretrained": pretrained if isinstance(pretrained, bool) else str(pretrained),
              "img_size": bb.img_size, **head_kwargs}
    return AttributeModel(bb, hd, attrs, names, regions_of, config)
