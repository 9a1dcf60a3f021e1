"""params.yaml's `registry` and `flows` sections: the promotion policy, the deployments, the
webhook receiver (read by the flows; no stage reads them)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import Field, field_validator

from esgar.promotion.policy import Policy
from pipeline.params.base import Positive, Section

__all__ = ["FlowParams", "PolicyParams", "RegistryParams", "WebhookParams"]

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
    work_pool: Annotated[str, Field(min_length=1, pattern=r"^[A-Za-z0-9][A-Za-z0-9_\-]*$")]
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
