"""params.yaml's `labelstudio`, `push` and `pull` sections, and the three paths of the `model`
section that push reads (the server itself is not a setting but the machine's:
LABEL_STUDIO_URL, LABEL_STUDIO_API_KEY)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import AfterValidator, BeforeValidator, ConfigDict, Field

from esgar.active.consensus import METHODS
from esgar.active.label_config import FROM_SCHEMA
from esgar.active.tasks import PREFILLS
from pipeline.params.base import (
    Positive,
    Section,
    Share,
    attribute_map,
    one_of,
    with_default_regions,
)

__all__ = ["LabelStudioParams", "ModelPaths", "PullParams", "PushParams"]


class LabelStudioParams(Section):
    """params.yaml's `labelstudio`, shared by push and pull."""

    project: Annotated[str, Field(min_length=3)]  # Label Studio's own minimum
    serve: Path  # the folder whose images tasks show, inside the server's document root
    annotators_per_task: Annotated[int, Field(ge=1, le=10)]


def _interface(value: str) -> str:
    """push.label_config: an interface file, or `from_schema` (generated from the schema)."""
    if value != FROM_SCHEMA and not Path(value).is_file():
        raise ValueError(f"no such file {value!r} (give Label Studio's interface file, or "
                         f"{FROM_SCHEMA} to generate it from the dataset's schema)")
    return value


class PushParams(Section):
    manifest: Path
    probs: Path
    relabels: Path
    truth: Path
    label_config: Annotated[str, AfterValidator(_interface)]
    prefill: Annotated[str, one_of(*PREFILLS)]
    hints: bool
    gold_share: Annotated[float, Field(ge=0, lt=1)]
    gold_min_confidence: Share
    gold_min_annotators: Positive
    seed: int
    out: Path


class PullParams(Section):
    snapshot: Path
    answers: Path
    report: Path
    consensus: Annotated[str, one_of(*METHODS)]
    label_accuracy: Annotated[float, Field(ge=0, lt=1)]
    min_confidence: Share
    min_gold_accuracy: Share
    min_gold_answers: Positive
    min_seconds: Annotated[float, Field(ge=0)]


class ModelPaths(Section):
    """Of the `model` section, only what push reads: the sample table, the mask store and the
    region each attribute's branch sees (the rest is the train stage's to check)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    table: Path
    masks: Path
    attribute_regions: Annotated[dict[str, str], AfterValidator(attribute_map),
                                 BeforeValidator(with_default_regions)]
