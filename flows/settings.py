"""params.yaml's `registry` and `flows` sections, checked like every stage's (one message listing
every problem, before any work)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import Field, field_validator

from esgar.registry import Policy
from pipeline.model_params import ModelParams, TrainParams
from pipeline.params import LabelStudioParams, Positive, Section, load

__all__ = ["FlowParams", "RegistryParams", "Settings", "load_settings"]

Port = Annotated[int, Field(ge=1, le=65535)]


class PolicyParams(Section):
    confidence: Annotated[float, Field(gt=0, lt=1)]
    min_gain: Annotated[float, Field(ge=0, le=1)]
    max_attribute_drop: Annotated[float, Field(ge=0, le=1)]
    bootstrap: Positive
    seed: int

    def policy(self) -> Policy:
        return Policy(**self.model_dump())


class RegistryParams(Section):
    model_name: Annotated[str, Field(min_length=1, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")]
    metrics: Path
    policy: PolicyParams


class WebhookParams(Section):
    host: str
    port: Port
    min_annotations: Positive


class FlowParams(Section):
    deployment: Annotated[str, Field(min_length=1, pattern=r"^[A-Za-z0-9][A-Za-z0-9_\-]*$")]
    retrain_cron: str
    timezone: str
    target: Annotated[str, Field(min_length=1)]
    webhook: WebhookParams

    @field_validator("retrain_cron")
    @classmethod
    def _cron(cls, value: str) -> str:
        if value and len(value.split()) not in (5, 6):
            raise ValueError(f"{value!r} is not a cron expression (5 fields, e.g. '0 3 * * 1'), "
                             "or '' for no schedule")
        return value


class Settings(dict):
    """The sections a flow reads, by name: registry, flows, model, train, labelstudio."""

    @property
    def registry(self) -> RegistryParams:
        return self["registry"]

    @property
    def flows(self) -> FlowParams:
        return self["flows"]

    @property
    def model(self) -> ModelParams:
        return self["model"]

    @property
    def train(self) -> TrainParams:
        return self["train"]

    @property
    def labelstudio(self) -> LabelStudioParams:
        return self["labelstudio"]


def load_settings(params: str | Path = "params.yaml") -> Settings:
    """The flows' sections of `params` (ConfigError listing every problem)."""
    return Settings(load(params, registry=RegistryParams, flows=FlowParams, model=ModelParams,
                         train=TrainParams, labelstudio=LabelStudioParams))
