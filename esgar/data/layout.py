"""The FS2K folder layout, shared by the reader, the synthetic generator and the mask importer.

```
FS2K/
  photo/photo{1,2,3}/imageXXXX.jpg
  sketch/sketch{1,2,3}/sketchXXXX.jpg      (sketch2 uses .png)
  anno_train.json, anno_test.json         (a JSON list of records, one per pair)
```
A record's `image_name` is `photoN/imageXXXX`; its sketch is `sketchN/sketchXXXX`.
"""

from __future__ import annotations

import re
from pathlib import Path

ANNOTATION_FILES: dict[str, str] = {"train": "anno_train.json", "test": "anno_test.json"}
IMAGE_EXTENSIONS: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".bmp")
# FS2K's own extensions: photos are JPEG everywhere, sketches of subset 2 are PNG.
SKETCH_EXTENSION: dict[str, str] = {"photo1": ".jpg", "photo2": ".png", "photo3": ".jpg"}
PHOTO_EXTENSION = ".jpg"

_IMAGE_NAME = re.compile(r"^photo(?P<subset>\d+)/image(?P<number>\w+)$")
_SKETCH_FILE_STEM = re.compile(r"^sketch(?P<number>\w+)$")


def parse_image_name(image_name: str) -> tuple[str, str]:
    """`photo1/image0110` -> (`1`, `0110`); ValueError for anything else."""
    m = _IMAGE_NAME.match(image_name)
    if not m:
        raise ValueError(f"image_name {image_name!r} is not of the form photoN/imageXXXX")
    return m["subset"], m["number"]


def sample_id(image_name: str) -> str:
    """The stable id of a pair: `photo1/image0110` -> `photo1_image0110` (usable as a file name)."""
    parse_image_name(image_name)
    return image_name.replace("/", "_")


def photo_stem(image_name: str) -> str:
    """Path of the photo under the FS2K root, without extension: `photo/photo1/image0110`."""
    return f"photo/{image_name}"


def sketch_stem(image_name: str) -> str:
    """Path of the sketch under the FS2K root, without extension: `sketch/sketch1/sketch0110`."""
    subset, number = parse_image_name(image_name)
    return f"sketch/sketch{subset}/sketch{number}"


def photo_file_stem(sketch_file_stem: str) -> str | None:
    """FS2K's pairing by file name: the sketch `sketch0110` goes with the photo (and label map)
    `image0110`; None for a name that is not FS2K's."""
    m = _SKETCH_FILE_STEM.match(sketch_file_stem)
    return f"image{m['number']}" if m else None


def find_image(root: Path, stem: str) -> Path | None:
    """The file `root/stem.<ext>` for the first image extension that exists, else None."""
    for ext in IMAGE_EXTENSIONS:
        p = root / f"{stem}{ext}"
        if p.is_file():
            return p
    return None
