"""What every head shares: heads by name, the per-attribute classifier MLP, pooling helpers.

A head is an `nn.Module` built as
`Head(in_features, attributes, region_names, attribute_regions, **kwargs)` and called as
`head(features [B,C,h,w], grids [B,R,h,w] | None, return_attention=False)`; it returns
`{attribute: logits [B, num_classes]}`, or `(logits, maps)` with `return_attention`, where
`maps` is `{attribute: float [B,h,w]}` (where that attribute's branch looks; empty for heads
without attention).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence

import torch
from torch import nn

from esgar.errors import ConfigError
from esgar.schema import Attribute

_HEADS: dict[str, type[nn.Module]] = {}


def named_head(name: str) -> Callable[[type[nn.Module]], type[nn.Module]]:
    """Class decorator: make a head buildable by `create_head(name, ...)`."""
    def wrap(cls: type[nn.Module]) -> type[nn.Module]:
        if name in _HEADS and _HEADS[name] is not cls:
            raise ValueError(f"head name {name!r} is taken ({_HEADS[name].__name__})")
        _HEADS[name] = cls
        return cls
    return wrap


def list_heads() -> list[str]:
    return sorted(_HEADS)


def check_head_kwargs(name: str, kwargs: Mapping[str, object]) -> None:
    """ConfigError naming every keyword head `name` does not take, and the ones it does."""
    if name not in _HEADS:
        raise ConfigError(f"unknown head {name!r}; known heads: {', '.join(list_heads())}")
    params = inspect.signature(_HEADS[name].__init__).parameters
    fixed = {"self", "in_features", "attributes", "region_names", "attribute_regions"}
    takes = [p for p in params if p not in fixed]
    unknown = sorted(set(kwargs) - set(takes))
    if unknown:
        raise ConfigError(f"head {name!r} takes no option(s) {', '.join(unknown)}; it takes "
                          f"{', '.join(takes) or 'none'}")


def create_head(name: str, in_features: int, attributes: Sequence[Attribute],
                region_names: Sequence[str], attribute_regions: Mapping[str, str],
                **kwargs) -> nn.Module:
    check_head_kwargs(name, kwargs)
    return _HEADS[name](in_features, attributes, region_names, attribute_regions, **kwargs)


def classifier(in_features: int, num_classes: int, hidden: int = 256, dropout: float = 0.5
               ) -> nn.Sequential:
    """ESGAR's FC: Linear(in, hidden) -> ReLU -> Dropout -> Linear(hidden, classes).

    hidden=0 gives a single Linear(in, classes).
    """
    if hidden <= 0:
        return nn.Sequential(nn.Dropout(dropout), nn.Linear(in_features, num_classes))
    return nn.Sequential(nn.Linear(in_features, hidden), nn.ReLU(inplace=True),
                         nn.Dropout(dropout), nn.Linear(hidden, num_classes))


def flatten_grid(x: torch.Tensor) -> torch.Tensor:
    """[B,C,h,w] -> tokens [B,h*w,C] (row-major, like ESGAR's flattening)."""
    return x.flatten(2).transpose(1, 2)


def masked_mean(tokens: torch.Tensor, weights: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Weighted mean of tokens [B,N,C] with weights [B,N] >= 0 -> [B,C].

    An all-zero weight row gives a zero vector (no evidence), never NaN.
    """
    w = weights.to(tokens.dtype)
    total = w.sum(1, keepdim=True)
    return torch.einsum("bn,bnc->bc", w, tokens) / total.clamp_min(eps)


def check_grids(grids: torch.Tensor | None, features: torch.Tensor,
                region_names: Sequence[str]) -> torch.Tensor:
    """Check region grids [B,R,h,w] against features [B,C,h,w]; return them in features' dtype."""
    if grids is None:
        raise ValueError("this head needs region grids [B,R,h,w]; got None")
    if grids.dim() != 4 or grids.shape[1] != len(region_names):
        raise ValueError(f"region grids must be [B,{len(region_names)},h,w] (regions "
                         f"{', '.join(region_names)}); got {tuple(grids.shape)}")
    if grids.shape[0] != features.shape[0] or grids.shape[-2:] != features.shape[-2:]:
        raise ValueError(f"region grids {tuple(grids.shape)} do not match the backbone's "
                         f"feature grid {tuple(features.shape)} (batch and h,w must agree)")
    return grids.to(features.dtype)


def check_model_regions(attributes: Sequence[str], region_names: Sequence[str],
                        attribute_regions: Mapping[str, str]) -> None:
    """ConfigError listing every attribute without a region, and every region not available."""
    names = tuple(region_names)
    problems = []
    if len(set(names)) != len(names):
        problems.append(f"region_names has duplicates: {', '.join(names)}")
    extra = sorted(set(attribute_regions) - set(attributes))
    if extra:
        problems.append(f"attribute_regions names attribute(s) not modelled: {', '.join(extra)}")
    for a in attributes:
        if a not in attribute_regions:
            problems.append(f"attribute_regions gives no region for {a!r}")
        elif attribute_regions[a] not in names:
            problems.append(f"attribute_regions: {a} -> {attribute_regions[a]!r} is not one of "
                            f"the regions ({', '.join(names)})")
    if problems:
        raise ConfigError("; ".join(problems))


def region_index(region_names: Sequence[str], attribute_regions: Mapping[str, str],
                 attributes: Sequence[Attribute]) -> dict[str, int]:
    """attribute -> channel of its region in the grids; ConfigError naming what is missing."""
    check_model_regions([a.name for a in attributes], region_names,
                        {a.name: attribute_regions[a.name] for a in attributes
                         if a.name in attribute_regions})
    return {a.name: list(region_names).index(attribute_regions[a.name]) for a in attributes}
