"""params.yaml's `select` section: which labels annotators check, within a budget."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import Field

from esgar.active.selection import UNCERTAINTIES
from pipeline.params.base import Section, one_of

__all__ = ["SelectParams"]


class SelectParams(Section):
    probs: Path
    relabels: Path
    splits: Annotated[list[Annotated[str, one_of("train", "val")]], Field(min_length=1)]
    budget: Annotated[float, Field(gt=0)]  # a share of the sketches (< 1) or a count (>= 1)
    quota_share: Annotated[float, Field(ge=0, le=1)]
    val_share: Annotated[float, Field(ge=0, le=1)] = 0.0
    uncertainty: Annotated[str, one_of(*UNCERTAINTIES)]
    out: Path
    metrics: Path
    report: Path
