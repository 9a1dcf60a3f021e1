"""DVC stage `masks`: region masks for every sample, by face parsing or by import.

Outputs: the mask store (`masks.out`, format in `esgar.masks.store`; built beside and swapped in
whole), as DVC metrics over all samples the share of empty masks per region
(`masks.metrics/empty.json`) and of those that fell back (`fell_back.json`), the quality per
split and region in `masks.report`, and a contact sheet of mask overlays per split.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import numpy as np
import pandas as pd
from PIL import Image
from pydantic import AfterValidator, Field, model_validator

from esgar.data.table import load_table
from esgar.device import check_device
from esgar.io import check_owned, write_json
from esgar.masks import store
from esgar.masks.build import (
    IMPORT_FORMATS,
    MASK_SOURCES,
    OWNER,
    build_store,
    imported_masks,
    parsed_masks,
    resolve_source,
)
from esgar.masks.degrade import Degradation, Degraded, level_items
from esgar.masks.grids import RULES
from esgar.masks.labels import LABEL_ORDERS
from esgar.masks.parsers import PARSERS, PRECISIONS
from esgar.masks.quality import contact_sheet, quality_report, shares
from esgar.masks.regions import check_regions, region_lut
from pipeline.common import run_stage, stage_args
from pipeline.params import Positive, Section, Share, load, one_of

log = logging.getLogger("pipeline.masks")


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


def main() -> None:
    args = stage_args(__doc__)
    p = load(args.params, masks=MasksParams)["masks"]
    check_owned(p.out, OWNER)
    table = load_table(p.table)
    names = list(p.regions)
    ip = p.import_
    kind = resolve_source(p.source, ip.dir)
    problems: list[str] = []
    if kind == "facexlib":
        source = parsed_masks(table, p.parser, p.weights_dir, p.device, p.batch_size,
                              p.precision, p.parse_input)
        meta = {"source": kind, "parser": p.parser, "parse_input": p.parse_input,
                "label_order": p.parser}
    else:
        source = imported_masks(table, ip.dir, ip.format, ip.label_order, names,
                                ip.missing_sample, ip.missing_region, problems)
        meta = {"source": kind, "parser": None, "parse_input": None,
                "label_order": ip.label_order}
    fallback = p.fallback if p.empty_policy == "fallback" else {}
    lut, dp = region_lut(p.regions), p.degrade
    keep = set(sheet_rows(table, p.contact_sheet.seed))
    source = Degraded(source, dp.spec(), dp.seed, lut, len(names), keep)
    if dp.level > 0:
        meta["degrade"] = dp.model_dump(exclude={"sheet_levels"})
        log.warning("masks degraded on purpose at level %g (masks.degrade): they are not the "
                    "parser's or the import's as they are", dp.level)
    index = build_store(p.out, table, source, p.regions, fallback, p.grids, p.grid_rule,
                        p.grid_image_size, {**meta, "empty_policy": p.empty_policy},
                        desc=f"masks ({kind})")
    report = {"samples": len(index), "missing_masks": len(problems),
              "quality": quality_report(index, names, p.tiny_threshold)}
    if dp.level > 0:  # what the errors cost, per region, against the masks as they came
        report["degradation"] = {"level": dp.level, "region_f1": source.mean_f1(names)}
    write_json(p.report, report)
    for what, share in shares(index, names).items():
        write_json(p.metrics / f"{what}.json", share)
    write_sheets(table, p)
    write_level_sheet(table, p, source.kept, lut)
    for msg in problems[:20]:
        log.warning("%s", msg)
    log.info("%d samples -> %s (%s); %d without masks", len(index), p.out, kind, len(problems))


def sheet_rows(table: pd.DataFrame, seed: int, n: int = 4) -> list[int]:
    """Rows of the degradation-levels sheet: `n` seeded validation sketches (else any)."""
    part = table[table["split"] == "val"] if (table["split"] == "val").any() else table
    pick = part.sample(min(n, len(part)), random_state=seed).sort_values("sample_id")
    return [table.index.get_loc(i) for i in pick.index]


def write_level_sheet(table: pd.DataFrame, p: MasksParams, labels: dict[int, np.ndarray],
                      lut: np.ndarray) -> None:
    """What each level of `masks.degrade.sheet_levels` looks like: rows = sketches, columns =
    levels, the contact sheet's regions coloured."""
    dp, samples = p.degrade, []
    if not dp.sheet_levels or not labels:
        return
    for row, label in sorted(labels.items()):
        r = table.iloc[row]
        with Image.open(r.sketch_path) as im:
            samples.append((row, r.sample_id, im.convert("RGB"), label))
    items = level_items(samples, dp.spec(), dp.sheet_levels, dp.seed, lut, len(p.regions))
    contact_sheet(items, list(p.regions), p.plots / "degradation_levels.png",
                  "mask degradation levels (masks.degrade; level 0: the masks as they came)",
                  p.contact_sheet.regions, cols=len(dp.sheet_levels))


def write_sheets(table: pd.DataFrame, p: MasksParams) -> None:
    """One contact sheet per split: a seeded sample of sketches with their region overlays."""
    names = list(p.regions)
    cs = p.contact_sheet
    for split, part in table.groupby("split", sort=True):
        pick = part.sample(min(cs.n, len(part)), random_state=cs.seed).sort_values("sample_id")
        items = []
        for row in pick.itertuples():
            with Image.open(row.sketch_path) as im:
                sketch = im.convert("RGB")
            items.append((row.sample_id, sketch,
                          store.load_region_masks(p.out, row.sample_id, len(names))))
        contact_sheet(items, names, p.plots / f"contact_sheet_{split}.png",
                      f"{split}: region masks over sketches", cs.regions)


if __name__ == "__main__":
    run_stage(main)
