"""Tiny hand-made FS2K-layout folders for reader tests (the synthetic generator makes real ones)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from PIL import Image

from esgar.data import layout


def record(image_name: str, **labels: Any) -> dict[str, Any]:
    rec = {"image_name": image_name, "skin_color": [163, 139], "lip_color": [156.9, 82.5, 79.0],
           "eye_color": [118.6, 72.2, 69.6], "hair": 0, "hair_color": 1, "gender": 0,
           "earring": 1, "smile": 0, "frontal_face": 0, "style": 0}
    rec.update(labels)
    return rec


def write_pair(root: Path, image_name: str, size: tuple[int, int] = (24, 32),
               sketch_size: tuple[int, int] | None = None) -> None:
    subset = image_name.split("/")[0]
    photo = root / f"{layout.photo_stem(image_name)}{layout.PHOTO_EXTENSION}"
    sketch = root / f"{layout.sketch_stem(image_name)}{layout.SKETCH_EXTENSION[subset]}"
    for path, sz, color in ((photo, size, (200, 150, 120)), (sketch, sketch_size or size, 255)):
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB" if path == photo else "L", sz, color).save(path)


def make_fs2k(root: Path, train: list[dict], test: list[dict], images: bool = True) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "photo").mkdir(exist_ok=True)
    (root / "sketch").mkdir(exist_ok=True)
    for split, recs in (("train", train), ("test", test)):
        (root / layout.ANNOTATION_FILES[split]).write_text(json.dumps(recs))
        if images:
            for rec in recs:
                if isinstance(rec, dict) and isinstance(rec.get("image_name"), str):
                    try:
                        write_pair(root, rec["image_name"])
                    except ValueError:
                        pass
    return root
