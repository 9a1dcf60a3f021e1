"""params.yaml's `data` section: where FS2K comes from (the download stage)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import AfterValidator, Field, model_validator

from esgar import schema
from esgar.data.download import SOURCES
from esgar.masks.labels import LABEL_ORDERS
from pipeline.params.base import Section, Share, attribute_map, one_of

__all__ = ["DataParams", "SyntheticParams"]


class SyntheticParams(Section):
    pairs: Annotated[int, Field(ge=20)]
    seed: int
    noise: Annotated[dict[str, dict[int, Share]], AfterValidator(attribute_map)]
    label_orders: Annotated[list[Annotated[str, one_of(*LABEL_ORDERS)]], Field(min_length=1)]

    @model_validator(mode="after")
    def _noise_classes(self) -> SyntheticParams:
        for attr, rates in self.noise.items():
            k = schema.BY_NAME[attr].num_classes
            bad = [c for c in rates if not 0 <= c < k]
            if bad:
                raise ValueError(f"noise.{attr}: class(es) {bad} not in 0..{k - 1}")
        return self


class DataParams(Section):
    source: Annotated[str, one_of(*SOURCES)]
    gdrive_id: str
    url: str
    archive: str
    downloads: Path
    out: Path
    max_unpacked_mb: Annotated[float, Field(gt=0)]
    max_compression_ratio: Annotated[float, Field(ge=1)]
    read_timeout_s: Annotated[float, Field(gt=0, le=3600)]
    synthetic: SyntheticParams
