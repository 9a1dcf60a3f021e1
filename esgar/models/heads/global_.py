"""The mask-free baseline: global average pooling of the grid -> one MLP per attribute.

Same MLP as ESG's branches, so `esg` vs `global` isolates what the masks and self-attention add.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import nn

from esgar.models.heads.common import classifier, named_head
from esgar.schema import Attribute


@named_head("global")
class GlobalHead(nn.Module):
    """features [B,C,h,w] -> mean over h,w -> {attribute: MLP -> logits}. Ignores region grids."""

    def __init__(self, in_features: int, attributes: Sequence[Attribute],
                 region_names: Sequence[str] = (),
                 attribute_regions: Mapping[str, str] | None = None,
                 hidden: int = 256, dropout: float = 0.5):
        super().__init__()
        self.attributes = tuple(attributes)
        self.classifiers = nn.ModuleDict({a.name: classifier(in_features, a.num_classes, hidden,
                                                             dropout) for a in self.attributes})

    def forward(self, features: torch.Tensor, grids: torch.Tensor | None = None,
                return_attention: bool = False):
        pooled = features.mean((2, 3))
        logits = {a.name: self.classifiers[a.name](pooled) for a in self.attributes}
        return (logits, {}) if return_attention else logits
