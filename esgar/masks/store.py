"""The mask store: region masks of every sample, written once, read by training and plots.

```
<store>/meta.json             source, parser, label order, regions (bit order) and their classes,
                              grid sizes and rule, empty-mask policy and fallbacks
<store>/regions/<id>.png      16-bit grey PNG, the sketch's size; bit i = region i of meta.json
<store>/index.parquet         sample_id, split, path of the PNG, area_<region> (share of pixels),
                              fell_back_<region> (the region was empty and was filled from its
                              fallback)
<store>/grids_<gh>x<gw>.npy   float16 [N, R, gh, gw], rows in index order: token grids of the
                              evaluation geometry (short side resized to `grid_image_size`,
                              center crop)
```
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image

from esgar.io import write_json, write_with
from esgar.masks.importer import MaskError
from esgar.masks.regions import bits_to_masks, masks_to_bits

__all__ = ["load_grids", "load_index", "load_region_masks", "mask_recipe", "read_meta",
           "region_names", "region_png", "write_grids", "write_index", "write_meta",
           "write_region_masks"]


def region_png(store: str | Path, sample_id: str) -> Path:
    return Path(store) / "regions" / f"{sample_id}.png"


def write_region_masks(store: str | Path, sample_id: str, masks: np.ndarray) -> Path:
    """bool [R,H,W] -> `regions/<sample_id>.png` (atomically)."""
    path = region_png(store, sample_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    img = Image.fromarray(masks_to_bits(masks))
    write_with(path, lambda tmp: img.save(tmp, format="PNG"))
    return path


def mask_recipe(store: str | Path) -> dict[str, Any]:
    """How the store's masks were made, to make the same for new sketches: meta.json without
    what is particular to its samples (their count, the stored grid sizes)."""
    return {k: v for k, v in read_meta(store).items() if k not in ("samples", "grids")}


def read_meta(store: str | Path) -> dict[str, Any]:
    path = Path(store) / "meta.json"
    if not path.is_file():
        raise MaskError(f"{path}: no mask store here (run the masks stage)")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except ValueError as e:
        raise MaskError(f"{path}: not a mask store description ({e})") from None


def region_names(store: str | Path) -> list[str]:
    return [r["name"] for r in read_meta(store)["regions"]]


def load_region_masks(store: str | Path, sample_id: str, n_regions: int | None = None
                      ) -> np.ndarray:
    """bool [R,H,W] of one sample, regions in the order of meta.json."""
    path = region_png(store, sample_id)
    if not path.is_file():
        raise MaskError(f"{path}: no region masks for sample {sample_id} (the mask store is "
                        "of another sample table: run the masks stage)")
    with Image.open(path) as im:
        bits = np.asarray(im).astype(np.uint16)
    return bits_to_masks(bits, n_regions if n_regions is not None else len(region_names(store)))


def load_index(store: str | Path) -> pd.DataFrame:
    return pd.read_parquet(Path(store) / "index.parquet")


def load_grids(store: str | Path, grid: tuple[int, int]) -> tuple[list[str], np.ndarray]:
    """(sample ids, float16 [N,R,gh,gw]) of the stored token grids of size `grid`."""
    path = Path(store) / f"grids_{grid[0]}x{grid[1]}.npy"
    if not path.is_file():
        have = sorted(p.name for p in Path(store).glob("grids_*.npy"))
        raise MaskError(f"{path}: no grids of that size; stored: {have} "
                        "(add the size to masks.grids in params.yaml)")
    return load_index(store)["sample_id"].tolist(), np.load(path)


def write_index(store: str | Path, index: pd.DataFrame) -> None:
    write_with(Path(store) / "index.parquet", lambda tmp: index.to_parquet(tmp, index=False))


def write_grids(store: str | Path, grid: tuple[int, int], grids: np.ndarray) -> None:
    write_with(Path(store) / f"grids_{grid[0]}x{grid[1]}.npy",
               lambda tmp: np.save(tmp, grids.astype(np.float16)))


def write_meta(store: str | Path, meta: dict[str, Any]) -> None:
    write_json(Path(store) / "meta.json", meta)
