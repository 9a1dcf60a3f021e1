"""DVC stage `masks`: region masks for every sample, by face parsing or by import.

Outputs: the mask store (`masks.out`, format in `esgar.masks.store`), the quality report as DVC
metrics, and a contact sheet of mask overlays per split.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pandas as pd
from PIL import Image
from tqdm import tqdm

from esgar.data.table import load_table
from esgar.io import write_json
from esgar.masks import store
from esgar.masks.grids import eval_crop, token_grid
from esgar.masks.importer import MaskError, read_label_map, read_region_folder
from esgar.masks.parsers import ParserWeightsError, load_parser, parse_batch, prepare_for_batches
from esgar.masks.quality import contact_sheet, quality_report
from esgar.masks.regions import apply_fallback, bits_to_masks, label_to_bits, region_lut
from pipeline.common import load_params, run_stage, stage_args


def parsed_masks(table: pd.DataFrame, p: dict[str, Any]) -> Iterator[tuple[int, np.ndarray]]:
    """(row, bool [R,H,W]) for each sample, parsed in batches by facexlib."""
    model = prepare_for_batches(load_parser(p["parser"], p["weights_dir"] or None, p["device"]))
    column = f"{p['parse_input']}_path"
    bs = p["batch_size"]
    for start in range(0, len(table), bs):
        rows = table.iloc[start:start + bs]
        images = []
        for path in rows[column]:
            im = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if im is None:
                raise MaskError(f"{path}: cannot read the image to parse")
            images.append(im)
        for k, label in enumerate(parse_batch(model, p["parser"], images, p["precision"])):
            yield start + k, label


def imported_masks(table: pd.DataFrame, p: dict[str, Any], names: list[str],
                   problems: list[str]) -> Iterator[tuple[int, np.ndarray | None]]:
    """(row, canonical label map [H,W] or bool masks [R,H,W]) per sample; None where missing
    and the policy allows (the problem is recorded)."""
    ip = p["import"]
    root = Path(ip["dir"])
    for i, row in enumerate(table.itertuples()):
        size = (int(row.width), int(row.height))
        try:
            if ip["format"] == "label_maps":
                yield i, read_label_map(root / f"{row.image_name}.png", ip["label_order"], size)
            elif ip["format"] == "region_folders":
                yield i, read_region_folder(root, row.image_name, names, size,
                                            ip["missing_region"])
            else:
                raise MaskError(f"masks.import.format {ip['format']!r}: use label_maps or "
                                "region_folders")
        except MaskError as e:
            if ip["missing_sample"] == "empty" and "no mask file" in str(e):
                problems.append(str(e))
                yield i, None
            else:
                raise


def main() -> None:
    args = stage_args(__doc__)
    p = load_params("masks", args.params)
    table = load_table(p["table"])
    names = list(p["regions"])
    lut = region_lut(p["regions"])
    out = Path(p["out"])
    problems: list[str] = []
    fallback = p["fallback"] if p["empty_policy"] == "fallback" else {}
    kind = p["source"]
    if kind == "auto":  # synthetic FS2K ships exact label maps; real FS2K needs the parser
        kind = "import" if Path(p["import"]["dir"]).is_dir() else "facexlib"
    if kind not in ("facexlib", "import"):
        raise MaskError(f"masks.source {p['source']!r}: use auto, facexlib or import")
    p = {**p, "source": kind}
    source = (parsed_masks(table, p) if kind == "facexlib"
              else imported_masks(table, p, names, problems))
    rows, grids = [], {tuple(g): [] for g in p["grids"]}
    for i, got in tqdm(source, total=len(table), desc=f"masks ({p['source']})", unit="img"):
        row = table.iloc[i]
        if got is None:
            masks = np.zeros((len(names), int(row.height), int(row.width)), bool)
        elif got.ndim == 2:
            masks = bits_to_masks(label_to_bits(got, lut), len(names))
        else:
            masks = got
        areas = masks.reshape(len(names), -1).mean(1)
        masks, fell = apply_fallback(masks, names, fallback)
        path = store.write_region_masks(out, row.sample_id, masks)
        crop = eval_crop(masks, p["grid_image_size"])
        for g in grids:
            grids[g].append(token_grid(crop, g, p["grid_rule"]))
        rows.append({"sample_id": row.sample_id, "split": row.split, "path": path.as_posix(),
                     **{f"area_{r}": float(a) for r, a in zip(names, areas)},
                     **{f"fell_back_{r}": r in fell for r in names}})
    index = pd.DataFrame(rows)
    store.write_index(out, index)
    for g, arrays in grids.items():
        store.write_grids(out, g, np.stack(arrays))
    meta = {"source": p["source"], "parser": p["parser"] if p["source"] == "facexlib" else None,
            "parse_input": p["parse_input"] if p["source"] == "facexlib" else None,
            "label_order": p["import"]["label_order"] if p["source"] == "import" else p["parser"],
            "regions": [{"name": r, "classes": list(c)} for r, c in p["regions"].items()],
            "grids": [list(g) for g in grids], "grid_rule": p["grid_rule"],
            "grid_image_size": p["grid_image_size"], "empty_policy": p["empty_policy"],
            "fallback": fallback, "samples": len(index)}
    store.write_meta(out, meta)
    report = quality_report(index, names, p["tiny_threshold"])
    write_json(p["metrics"], {"samples": len(index), "missing_masks": len(problems),
                              "quality": report})
    write_sheets(table, out, names, p)
    for msg in problems[:20]:
        print(f"masks: warning: {msg}", file=sys.stderr)
    print(f"masks: {len(index)} samples -> {out} ({p['source']}); "
          f"{len(problems)} without masks", file=sys.stderr)


def write_sheets(table: pd.DataFrame, out: Path, names: list[str], p: dict[str, Any]) -> None:
    """One contact sheet per split: a seeded sample of sketches with their region overlays."""
    plots = Path(p["plots"])
    show = [r for r in p["contact_sheet"]["regions"] if r in names]
    for split, part in table.groupby("split", sort=True):
        pick = part.sample(min(p["contact_sheet"]["n"], len(part)),
                           random_state=p["contact_sheet"]["seed"]).sort_values("sample_id")
        items = []
        for row in pick.itertuples():
            with Image.open(row.sketch_path) as im:
                sketch = im.convert("RGB")
            items.append((row.sample_id, sketch,
                          store.load_region_masks(out, row.sample_id, len(names))))
        contact_sheet(items, names, plots / f"contact_sheet_{split}.png",
                      f"{split}: region masks over sketches", show)


if __name__ == "__main__":
    run_stage(main, MaskError, ParserWeightsError, FileNotFoundError)
