"""params.yaml's `labelstudio`, `push` and `pull` sections, and the three paths of the `model`
section that push reads (the server itself is not a setting but the machine's:
LABEL_STUDIO_URL, LABEL_STUDIO_API_KEY)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import AfterValidator, ConfigDict, Field, FilePath

from esgar.active.consensus import METHODS
from esgar.active.tasks import PREFILLS
from pipeline.params.base import Positive, Section, Share, attribute_map, one_of

__all__ = ["LabelStudioParams", "ModelPaths", "PullParams", "PushParams"]


class LabelStudioParams(Section):
    """params.yaml's `labelstudio`, shared by push and pull."""

    project: Annotated[str, Field(min_length=3)]  # Label Studio's own minimum
    serve: Path  # the folder whose images tasks show, inside the server's document root
    annotators_per_task: Annotated[int, Field(ge=1, le=10)]


class PushParams(Section):
    manifest: Path
    probs: Path
    relabels: Path
    truth: Path
    label_config: FilePath
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
    attribute_regions: Annotated[dict[str, str], AfterValidator(attribute_map)]
