"""params.yaml's `prepare` section: the sample table and its splits."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import Field

from pipeline.params.base import Section, Share

__all__ = ["PrepareParams"]


class PrepareParams(Section):
    root: Path
    val_fraction: Annotated[float, Field(gt=0, lt=1)]
    seed: int
    max_dropped_fraction: Share
    relabels: Path
    out: Path
    metrics: Path
    report: Path
    plot: Path
