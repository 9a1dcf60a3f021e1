"""params.yaml's `model`, `train`, `evaluate` and `crossfit` sections: the network, how it is
trained, evaluated and cross-fitted (read by the train, evaluate and crossfit stages and the
flows). Checking a model section imports the heads and backbones it names."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, Field, model_validator

from esgar import schema
from esgar.errors import ConfigError
from esgar.models.backbones import check_backbone_name
from esgar.models.heads import check_head_kwargs, list_heads
from esgar.training import TrainConfig
from pipeline.params.base import Positive, Section, attribute_map, one_of, with_default_regions

__all__ = ["CrossfitParams", "EvaluateParams", "ModelParams", "TrainParams"]


def _head(value: str) -> str:
    if value not in list_heads():
        raise ValueError(f"unknown head {value!r}; known heads: {', '.join(list_heads())}")
    return value


def _backbone(value: str) -> str:
    try:
        check_backbone_name(value)
    except ConfigError as e:
        raise ValueError(str(e)) from None
    return value


class ModelParams(Section):
    backbone: Annotated[str, AfterValidator(_backbone)]
    head: Annotated[str, AfterValidator(_head)]
    pretrained: bool | str
    img_size: Annotated[int, Field(ge=16)]
    head_kwargs: dict[str, dict[str, Any]]
    table: Path
    masks: Path
    # the schema's regions, overridden by the ones given (ESGAR's table for FS2K)
    attribute_regions: Annotated[dict[str, str], AfterValidator(attribute_map),
                                 BeforeValidator(with_default_regions)]

    @model_validator(mode="after")
    def _check(self) -> ModelParams:
        problems = [f"head_kwargs.{h}: not a head (known: {', '.join(list_heads())})"
                    for h in self.head_kwargs if h not in list_heads()]
        for h, kwargs in self.head_kwargs.items():
            if h in list_heads():
                try:
                    check_head_kwargs(h, kwargs)
                except ConfigError as e:
                    problems.append(f"head_kwargs.{h}: {e}")
        if isinstance(self.pretrained, str) and not Path(self.pretrained).is_file():
            problems.append(f"pretrained: {self.pretrained} is not a file (give a weights "
                            "file, true for timm's hub weights, or false)")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def kwargs(self) -> dict[str, Any]:
        """The named head's options (`head_kwargs[head]`, or none)."""
        return dict(self.head_kwargs.get(self.head) or {})


class TrainParams(TrainConfig):
    """`TrainConfig` plus what the stage does with it: resume, and where outputs go."""

    resume: bool
    processes: Annotated[int, Field(ge=1)]
    labeled_fraction: Annotated[float, Field(gt=0, le=1)]
    labeled_seed: int
    out: Path
    metrics: Path
    report: Path
    history: Path

    @model_validator(mode="after")
    def _batch_shared_evenly(self) -> TrainParams:
        if self.batch_size % self.processes:
            raise ValueError(f"processes {self.processes}: batch_size {self.batch_size} is the "
                             "batch of all processes together and must divide evenly among them")
        return self

    def config(self) -> TrainConfig:
        """The library's part: how to train, without where to write or in how many processes."""
        return TrainConfig(**self.model_dump(
            exclude={"resume", "processes", "labeled_fraction", "labeled_seed", "out", "metrics",
                     "report", "history"}))


class EvaluateParams(Section):
    splits: Annotated[list[Annotated[str, one_of(*schema.SPLITS)]], Field(min_length=1)]
    bootstrap: Annotated[int, Field(ge=0)]
    seed: int
    attention_samples: Annotated[int, Field(ge=0)]
    metrics: Path
    bacc: Path
    report: Path
    predictions: Path
    plots: Path
    confusion: Path


class CrossfitParams(Section):
    method: Annotated[str, one_of("features", "folds", "both")]
    model: Path
    regularization: Annotated[float, Field(gt=0)]
    folds: Annotated[int, Field(ge=2)]
    seed: int
    epochs: Positive
    img_size: Annotated[int, Field(ge=16)]
    batch_size: Positive
    inner_val_fraction: Annotated[float, Field(gt=0, lt=1)]
    processes: Positive
    score_test: bool
    work: Path
    out: Path
    metrics: Path
    report: Path
