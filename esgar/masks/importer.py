"""Masks made elsewhere: label-map PNGs, or per-region binary PNGs.

Layouts (image names as FS2K's, `photoN/imageXXXX`):
- label maps: `<dir>/photoN/imageXXXX.png`, one class index per pixel (CelebAMask-HQ's 19
  classes, in the order named by `masks.import.label_order`: bisenet, parsenet or canonical);
- per-region masks: `<dir>/seg_<region>/photoN/imageXXXX.png`, non-zero = inside the region.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from esgar.errors import EsgarError
from esgar.masks.labels import LABEL_ORDERS, remap

__all__ = ["MaskError", "MissingMaskError", "read_label_map", "read_region_folder"]


class MaskError(EsgarError, ValueError):
    """A mask file cannot be used; the message names the file and the problem."""


class MissingMaskError(MaskError):
    """A sample has no mask file (`masks.import.missing_sample: empty` tolerates it)."""


def _read_png(path: Path, size: tuple[int, int]) -> np.ndarray:
    """A single-channel image as an array [H,W]; MaskError if absent, corrupt or mis-sized.

    size: the (width, height) the sample's sketch has.
    """
    if not path.is_file():
        raise MissingMaskError(f"{path}: no mask file for this sample")
    try:
        with Image.open(path) as im:
            im.load()
            if im.mode not in ("L", "P", "I", "I;16", "1"):
                raise MaskError(f"{path}: expected a single-channel image, got mode {im.mode}")
            arr = np.asarray(im)
    except (UnidentifiedImageError, OSError, SyntaxError) as e:
        raise MaskError(f"{path}: unreadable PNG ({e})") from None
    if arr.shape[::-1] != tuple(size):
        raise MaskError(f"{path}: mask is {arr.shape[1]}x{arr.shape[0]} but the sketch is "
                        f"{size[0]}x{size[1]}")
    return arr


def read_label_map(path: str | Path, order: str, size: tuple[int, int]) -> np.ndarray:
    """A label-map PNG in parser order `order` -> canonical label map uint8 [H,W]."""
    path = Path(path)
    if order not in LABEL_ORDERS:
        raise MaskError(f"unknown label order {order!r}; known: {', '.join(LABEL_ORDERS)}")
    arr = _read_png(path, size)
    top = int(arr.max()) if arr.size else 0
    if top >= len(LABEL_ORDERS[order]):
        raise MaskError(f"{path}: class index {top} is not one of the "
                        f"{len(LABEL_ORDERS[order])} classes of the {order} order")
    return remap(arr.astype(np.uint8), order)


def read_region_folder(root: str | Path, image_name: str, regions: Sequence[str],
                       size: tuple[int, int], missing_region: str = "error") -> np.ndarray:
    """Per-region PNGs of one sample -> bool [R,H,W] in the order of `regions`.

    missing_region: `error` (a region without its `seg_<region>` folder is a MaskError) or
    `empty` (such a region is empty; the file of a region whose folder exists must exist).
    """
    root = Path(root)
    out = np.zeros((len(regions), size[1], size[0]), dtype=bool)
    for i, name in enumerate(regions):
        folder = root / f"seg_{name}"
        if not folder.is_dir():
            if missing_region == "empty":
                continue
            raise MaskError(f"{folder}: no folder for region {name!r} (set "
                            "masks.import.missing_region: empty to leave it empty)")
        out[i] = _read_png(folder / f"{image_name}.png", size) > 0
    return out
