"""params.yaml's `masks` section: how region masks are made (parsed or imported), their
regions, fallbacks, grids, and the degradation put in on purpose."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import AfterValidator, Field, model_validator

from esgar.device import PRECISIONS, check_device
from esgar.masks.build import IMPORT_FORMATS, MASK_SOURCES
from esgar.masks.degrade import Degradation
from esgar.masks.grids import RULES
from esgar.masks.labels import LABEL_ORDERS
from esgar.masks.parsers import PARSERS
from esgar.masks.regions import check_regions
from pipeline.params.base import Positive, Section, Share, one_of

__all__ = ["ContactSheetParams", "DegradeParams", "ImportParams", "MasksParams"]


class ImportParams(Section):
    dir: Path
    format: Annotated[str, one_of(*IMPORT_FORMATS)]
    label_order: Annotated[str, one_of(*LABEL_ORDERS)]
    missing_sample: Annotated[str, one_of("error", "empty")]
    missing_region: Annotated[str, one_of("error", "empty")]


NonNegative = Annotated[float, Field(ge=0)]


class DegradeParams(Section):
    """Parser errors put into the masks on purpose (`esgar.masks.degrade`); level 0: none."""

    level: NonNegative
    seed: int
    jitter_px: NonNegative
    morph_px: NonNegative
    small_miss: Share
    hair_bleed_px: NonNegative
    region_miss: Share
    swap: Share
    sheet_levels: list[NonNegative]

    def spec(self, level: float | None = None) -> Degradation:
        return Degradation(**{**self.model_dump(exclude={"seed", "sheet_levels"}),
                              **({} if level is None else {"level": level})})


class ContactSheetParams(Section):
    n: Annotated[int, Field(ge=0)]
    seed: int
    regions: list[str]


def _regions(value: dict[str, list[str]]) -> dict[str, list[str]]:
    check_regions(value)  # its ValueError names the region and the known classes
    return value


class MasksParams(Section):
    source: Annotated[str, one_of(*MASK_SOURCES)]
    table: Path
    parser: Annotated[str, one_of(*PARSERS)]
    parse_input: Annotated[str, one_of("photo", "sketch")]
    weights_dir: str
    device: Annotated[str, AfterValidator(check_device)]
    batch_size: Positive
    precision: Annotated[str, one_of(*PRECISIONS)]
    processes: Positive
    import_: ImportParams = Field(alias="import")
    regions: Annotated[dict[str, list[str]], AfterValidator(_regions)]
    empty_policy: Annotated[str, one_of("fallback", "keep")]
    fallback: dict[str, str]
    grids: Annotated[list[tuple[Positive, Positive]], Field(min_length=1)]
    grid_rule: Annotated[str, one_of(*RULES)]
    grid_image_size: Annotated[int, Field(ge=8)]
    tiny_threshold: Share
    contact_sheet: ContactSheetParams
    degrade: DegradeParams
    out: Path
    metrics: Path  # a folder: empty.json, fell_back.json
    report: Path
    plots: Path

    @model_validator(mode="after")
    def _names_are_regions(self) -> MasksParams:
        names = set(self.regions)
        problems = [f"fallback {k} -> {v}: {x!r} is not a region"
                    for k, v in self.fallback.items() for x in (k, v) if x not in names]
        problems += [f"contact_sheet.regions: {r!r} is not a region"
                     for r in self.contact_sheet.regions if r not in names]
        if problems:
            raise ValueError("; ".join(problems) + f" (regions: {', '.join(self.regions)})")
        if self.degrade.level > 0 and self.source != "facexlib" \
                and self.import_.format == "region_folders":
            raise ValueError("masks.degrade needs label maps; region folders hold no classes to "
                             "degrade (set masks.degrade.level: 0, or import label_maps)")
        return self
