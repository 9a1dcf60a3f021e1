"""A small, valid request for the served model: one drawn sketch and its label map, base64.

MLflow stores it with the model (the input example its UI shows, and what it runs once to check
the logged model loads and answers).
"""

from __future__ import annotations

import base64
import io
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image, ImageDraw

from esgar.masks.labels import CANONICAL_CLASSES, remap

__all__ = ["example_request"]

SIZE = 96


def _png(array: np.ndarray) -> str:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="png")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _drawn_face() -> tuple[np.ndarray, np.ndarray]:
    """(a line-drawn face, uint8 [S,S,3]; its canonical label map, uint8 [S,S])."""
    label = Image.new("L", (SIZE, SIZE), 0)
    sketch = Image.new("RGB", (SIZE, SIZE), "white")
    shapes = [("hair", "ellipse", (18, 6, 78, 62)), ("skin", "ellipse", (24, 18, 72, 84)),
              ("l_eye", "ellipse", (34, 40, 44, 46)), ("r_eye", "ellipse", (52, 40, 62, 46)),
              ("nose", "ellipse", (45, 48, 51, 60)), ("mouth", "ellipse", (38, 64, 58, 72))]
    for cls, _, box in shapes:
        ImageDraw.Draw(label).ellipse(box, fill=CANONICAL_CLASSES.index(cls))
        ImageDraw.Draw(sketch).ellipse(box, outline="black", width=2)
    return np.asarray(sketch), np.asarray(label)


def example_request(recipe: Mapping[str, Any]) -> pd.DataFrame:
    """One row: `sketch` (PNG, base64) and `masks` (its label map in the order `recipe`, the
    model's mask recipe, says its label maps come in)."""
    sketch, label = _drawn_face()
    order = recipe.get("label_order") or "canonical"
    return pd.DataFrame([{"sketch": _png(sketch), "masks": _png(remap(label, "canonical", order))}])
