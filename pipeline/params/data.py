"""params.yaml's `data` section: which dataset, and where it comes from (the download stage)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import AfterValidator, ConfigDict, Field, model_validator

from esgar.data.datasets import DATASETS
from esgar.data.download import SOURCES
from esgar.data.synthetic import noise_problems
from esgar.masks.labels import LABEL_ORDERS
from pipeline.params.base import Section, Share, attribute_map, one_of

__all__ = ["DataParams", "DatasetParam", "SyntheticParams"]


class SyntheticParams(Section):
    pairs: Annotated[int, Field(ge=20)]
    seed: int
    # {attribute: {true class: share flipped to any other class | {noisy class: share}}}
    noise: Annotated[dict[str, dict[int, Share | dict[int, Share]]], AfterValidator(attribute_map)]
    label_orders: Annotated[list[Annotated[str, one_of(*LABEL_ORDERS)]], Field(min_length=1)]

    @model_validator(mode="after")
    def _noise_classes(self) -> SyntheticParams:
        problems = noise_problems(self.noise)
        if problems:
            raise ValueError("; ".join(problems))
        return self


class DataParams(Section):
    dataset: Annotated[str, one_of(*DATASETS)]
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


class DatasetParam(Section):
    """Of the `data` section, only `dataset` (what the prepare stage reads)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    dataset: Annotated[str, one_of(*DATASETS)]
