"""params.yaml's `labelstudio`, `push` and `pull` sections, and the three paths of the `model`
section that push reads (the server itself is not a setting but the machine's:
LABEL_STUDIO_URL, LABEL_STUDIO_API_KEY)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import AfterValidator, ConfigDict, Field, FilePath

from pipeline.params.base import Section, attribute_map

__all__ = ["LabelStudioParams", "ModelPaths", "PullParams", "PushParams"]


class LabelStudioParams(Section):
    """params.yaml's `labelstudio`, shared by push and pull."""

    project: Annotated[str, Field(min_length=3)]  # Label Studio's own minimum
    serve: Path  # the folder whose images tasks show, inside the server's document root


class PushParams(Section):
    manifest: Path
    probs: Path
    label_config: FilePath
    out: Path


class PullParams(Section):
    snapshot: Path


class ModelPaths(Section):
    """Of the `model` section, only what push reads: the sample table, the mask store and the
    region each attribute's branch sees (the rest is the train stage's to check)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    table: Path
    masks: Path
    attribute_regions: Annotated[dict[str, str], AfterValidator(attribute_map)]
