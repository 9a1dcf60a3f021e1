"""Which files are sketches, and the photo and label map that go with each.

    table, failures = collect(["my_sketches/", "one.png"], photos="my_photos/")

A sketch's photo or mask is the file named like it (its stem), or FS2K's pair of it
(`sketch0110` <-> `image0110`, `esgar.data.layout.photo_file_stem`).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path

import cv2
import pandas as pd
from PIL import Image

from esgar.data.layout import photo_file_stem
from esgar.errors import ConfigError

__all__ = ["COLUMNS", "IMAGE_SUFFIXES", "MAX_PIXELS", "MIN_SIDE", "collect", "companion"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")
MAX_PIXELS = 40_000_000  # FS2K's largest is 475x340; a scan of a drawing, a few megapixels
MIN_SIDE = 32
COLUMNS = ["sample_id", "sketch_path", "photo_path", "image_name", "name", "width", "height",
           "split"]


def _images_in(path: Path) -> list[Path]:
    if path.is_dir():
        return sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES
                      and p.is_file())
    return [path]


def _image_size(path: Path) -> tuple[int, int] | str:
    """(width, height) of an image as the parser and the dataset read it, or the problem. The
    header's size is checked before any pixel is decoded: an image claiming 60000x60000 is
    refused, not decoded (several GB), and one under `MIN_SIDE` pixels a side has too little
    of a face to judge."""
    if not path.is_file():
        return "no such file"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                width, height = im.size
    except Image.DecompressionBombError:
        return (f"the image claims more than {MAX_PIXELS // 10**6} megapixels (a decompression "
                "bomb?)")
    except (OSError, ValueError):
        return "cannot read the image (not an image file, or damaged)"
    if width * height > MAX_PIXELS:
        return (f"the image is {width}x{height}, more than the {MAX_PIXELS // 10**6} "
                "megapixels a sketch may have")
    if min(width, height) < MIN_SIDE:
        return f"the image is {width}x{height}: too small to judge (at least {MIN_SIDE} px a side)"
    im = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if im is None:
        return "cannot read the image (not an image file, or damaged)"
    return im.shape[1], im.shape[0]


def companion(folder: Path | None, stem: str, suffixes: Sequence[str] = IMAGE_SUFFIXES
              ) -> Path | None:
    """The file in `folder` named like the sketch `stem` (its own stem, else FS2K's pair of
    it), if any."""
    if folder is None:
        return None
    stems = [stem, *filter(None, [photo_file_stem(stem)])]
    return next((folder / f"{s}{x}" for s in stems for x in suffixes
                 if (folder / f"{s}{x}").is_file()), None)


def collect(paths: Iterable[str | Path], photos: str | Path | None = None
            ) -> tuple[pd.DataFrame, dict[str, str]]:
    """Sketch files (folders are searched recursively for images) -> a table with one row per
    usable sketch (`COLUMNS`: sample_id, sketch_path, photo_path or "", image_name = the stem
    the masks and photos are looked up by, name = a unique output name, width, height, split)
    and {path: problem} for the files that cannot be used. A photo, looked up in `photos` by
    the sketch's stem, must have the sketch's size."""
    photo_dir = Path(photos) if photos is not None else None
    if photo_dir is not None and not photo_dir.is_dir():
        raise ConfigError(f"{photo_dir}: no such photos folder")
    rows, failures, names = [], {}, set()
    for given in paths:
        files = _images_in(Path(given))
        if not files:
            failures[str(given)] = "no images in this folder"
        for path in files:
            size = _image_size(path)
            if isinstance(size, str):
                failures[str(path)] = size
                continue
            photo = companion(photo_dir, path.stem)
            photo_size = _image_size(photo) if photo is not None else size
            if photo_size != size:
                failures[str(path)] = (
                    f"its photo {photo} is {photo_size[0]}x{photo_size[1]}, the sketch "
                    f"{size[0]}x{size[1]}" if isinstance(photo_size, tuple)
                    else f"its photo {photo}: {photo_size}")
                continue
            name, k = path.stem, 2
            while name in names:
                name, k = f"{path.stem}_{k}", k + 1
            names.add(name)
            rows.append({"sample_id": f"s{len(rows):06d}", "sketch_path": str(path),
                         "photo_path": str(photo or ""), "image_name": path.stem, "name": name,
                         "width": size[0], "height": size[1], "split": "predict"})
    return pd.DataFrame(rows, columns=COLUMNS), failures
