"""The sections of params.yaml a flow reads, checked like every stage's (one message listing
every problem, before any work), as one frozen object.

    s = load_settings("params.yaml")
    s.registry.model_name, s.flows.webhook.port, s.model.masks, s.train.out
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import get_type_hints

from pipeline.params.base import load
from pipeline.params.flows import FlowParams, RegistryParams
from pipeline.params.labelstudio import LabelStudioParams
from pipeline.params.model import ModelParams, TrainParams

__all__ = ["Settings", "load_settings"]


@dataclass(frozen=True)
class Settings:
    """One field per section, named as in params.yaml."""

    registry: RegistryParams
    flows: FlowParams
    model: ModelParams
    train: TrainParams
    labelstudio: LabelStudioParams


def load_settings(params: str | Path = "params.yaml") -> Settings:
    """The flows' sections of `params` (ConfigError listing every problem)."""
    return Settings(**load(params, **get_type_hints(Settings)))
