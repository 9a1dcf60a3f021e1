"""DVC stage `masks`: region masks for every sample, by face parsing or by import.

Outputs: the mask store (`masks.out`, format in `esgar.masks.store`; built beside and swapped in
whole), as DVC metrics over all samples the share of empty masks per region
(`masks.metrics/empty.json`) and of those that fell back (`fell_back.json`), the quality per
split and region in `masks.report`, and a contact sheet of mask overlays per split. Parsing
runs in `masks.processes` worker processes at once (CPU), the store assembled by this one.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
from PIL import Image

from esgar.data.table import load_table
from esgar.io import check_owned, write_json
from esgar.masks import store
from esgar.masks.build import (
    OWNER,
    build_store,
    imported_masks,
    parsed_masks,
    resolve_source,
)
from esgar.masks.degrade import Degraded, level_items
from esgar.masks.quality import contact_sheet, quality_report, shares
from esgar.masks.regions import region_lut
from pipeline.common import run_stage, stage_args
from pipeline.params.base import load
from pipeline.params.masks import MasksParams

log = logging.getLogger("pipeline.masks")
WEIGHTS_SETTING = ("set masks.weights_dir in params.yaml to that folder (or use masks.source: "
                   "import)")


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
                              p.precision, p.parse_input, point_to=WEIGHTS_SETTING,
                              processes=p.processes)
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
