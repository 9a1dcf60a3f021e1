"""Mask quality: empty and tiny regions per split, and a contact sheet of overlays."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, ImageDraw

from esgar.io import atomic_path

COLOURS = np.array([(230, 25, 75), (255, 225, 25), (60, 180, 75), (0, 130, 200),
                    (245, 130, 48), (145, 30, 180), (70, 240, 240), (240, 50, 230),
                    (210, 245, 60), (250, 190, 212), (0, 128, 128), (170, 110, 40),
                    (128, 0, 0), (0, 0, 128), (128, 128, 0), (255, 255, 255)], dtype=np.float32)


def quality_report(index: pd.DataFrame, regions: Sequence[str], tiny: float) -> dict:
    """Per split and region: share of samples whose raw mask is empty, or tiny (0 < area < tiny),
    and the share that fell back to a wider region. index: the store's index table."""
    out: dict[str, dict] = {}
    for split, part in index.groupby("split", sort=True):
        out[split] = {
            r: {"empty": round(float((part[f"area_{r}"] == 0).mean()), 4),
                "tiny": round(float(part[f"area_{r}"].between(0, tiny, "neither").mean()), 4),
                "fell_back": round(float(part[f"fell_back_{r}"].mean()), 4),
                "mean_area": round(float(part[f"area_{r}"].mean()), 4)}
            for r in regions
        }
    return out


def shares(index: pd.DataFrame, regions: Sequence[str]) -> dict[str, dict[str, float]]:
    """Over all samples of the store's index: {"empty": {region: share of raw masks that are
    empty}, "fell_back": {region: share that fell back to a wider region}}."""
    return {"empty": {r: round(float((index[f"area_{r}"] == 0).mean()), 4) for r in regions},
            "fell_back": {r: round(float(index[f"fell_back_{r}"].mean()), 4) for r in regions}}


def overlay(sketch: Image.Image, masks: np.ndarray, alpha: float = 0.45) -> Image.Image:
    """Region masks (bool [R,H,W]) as translucent colours over a sketch; later regions on top."""
    base = np.asarray(sketch.convert("RGB"), dtype=np.float32)
    for i in range(masks.shape[0]):
        m = masks[i]
        base[m] = base[m] * (1 - alpha) + COLOURS[i % len(COLOURS)] * alpha
    return Image.fromarray(base.clip(0, 255).astype(np.uint8))


def contact_sheet(items: list[tuple[str, Image.Image, np.ndarray]], regions: Sequence[str],
                  path: str | Path, title: str, show: Sequence[str], tile: int = 160,
                  cols: int = 6) -> None:
    """A grid of overlays of the regions `show` (one panel per sample), with a legend.

    items: (label, sketch, bool masks [R,H,W] in the order of `regions`).
    """
    idx = [list(regions).index(r) for r in show]
    rows = max(1, -(-len(items) // cols))
    legend_h, label_h = 24, 14
    sheet = Image.new("RGB", (cols * tile, legend_h + rows * (tile + label_h)), "white")
    draw = ImageDraw.Draw(sheet)
    draw.text((4, 2), title, fill="black")
    x = 4
    for j, r in enumerate(show):
        colour = tuple(int(c) for c in COLOURS[j % len(COLOURS)])
        draw.rectangle([x, 14, x + 10, 22], fill=colour)
        draw.text((x + 13, 12), r, fill="black")
        x += 14 + 7 * len(r) + 8
    for k, (label, sketch, masks) in enumerate(items):
        im = overlay(sketch, masks[idx])
        im.thumbnail((tile, tile))
        r, c = divmod(k, cols)
        y0 = legend_h + r * (tile + label_h)
        sheet.paste(im, (c * tile + (tile - im.width) // 2, y0))
        draw.text((c * tile + 2, y0 + tile), label[:26], fill="black")
    with atomic_path(path) as tmp:
        sheet.save(tmp, format="PNG")
