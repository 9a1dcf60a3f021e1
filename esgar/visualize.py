"""Pictures a person looks at: confusion matrices, class counts, attention maps over sketches.

Every figure is drawn on its own Agg canvas (`new_figure`), so importing this module never
switches matplotlib's global backend, and written atomically (`save_figure`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from PIL import Image

from esgar import schema
from esgar.io import atomic_path

__all__ = ["attention_sheet", "denormalise", "new_figure", "plot_class_distribution",
           "plot_confusion", "save_figure"]


def new_figure(figsize: tuple[float, float], dpi: int = 100) -> Figure:
    """A figure with its own Agg canvas (no pyplot, no global state)."""
    fig = Figure(figsize=figsize, dpi=dpi)
    FigureCanvasAgg(fig)
    return fig


def save_figure(fig: Figure, path: str | Path, dpi: int | None = None) -> Path:
    """Write `fig` as a PNG at `path`, atomically."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi)
    return Path(path)


def plot_confusion(cm: np.ndarray, class_names: Sequence[str], path: str | Path,
                   title: str | None = None, normalize: bool = True) -> Path:
    """Write a confusion-matrix PNG: cm int [C,C], rows true, columns predicted; cells show
    counts and, with `normalize`, the row-normalised share (colour = per-class recall)."""
    cm = np.asarray(cm)
    c = len(class_names)
    if cm.shape != (c, c):
        raise ValueError(f"confusion matrix {cm.shape} does not match {c} class names")
    rows = cm.sum(1, keepdims=True)
    shade = cm / np.maximum(rows, 1) if normalize else cm
    size = 1.6 + 0.75 * c
    fig = new_figure((size + 1.0, size), dpi=120)
    ax = fig.add_subplot()
    im = ax.imshow(shade, cmap="Blues", vmin=0, vmax=1 if normalize else None)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04,
                 label="fraction of true class" if normalize else "count")
    ax.set_xticks(range(c), labels=class_names, rotation=45, ha="right")
    ax.set_yticks(range(c), labels=class_names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if title:
        ax.set_title(title)
    hi = np.nanmax(shade) if shade.size else 1
    for i in range(c):
        for j in range(c):
            txt = f"{cm[i, j]}" + (f"\n{shade[i, j]:.0%}" if normalize and rows[i, 0] else "")
            ax.text(j, i, txt, ha="center", va="center", fontsize=8,
                    color="white" if shade[i, j] > 0.6 * hi else "black")
    fig.tight_layout()
    return save_figure(fig, path)


def plot_class_distribution(counts: Mapping[str, Mapping[str, Sequence[int]]], path: str | Path,
                            title: str = "") -> Path:
    """One panel per attribute, bars per class grouped by split, counts on top.

    counts: {split: {attribute: [count per class]}} as `esgar.data.table.counts_by_split` gives.
    """
    splits = list(counts)
    fig = new_figure((18, 8), dpi=90)
    axes = fig.subplots(2, 4)
    for ax, attr in zip(axes.flat, schema.ATTRIBUTES, strict=False):
        x = np.arange(attr.num_classes)
        width = 0.8 / len(splits)
        for k, split in enumerate(splits):
            bars = ax.bar(x + (k - (len(splits) - 1) / 2) * width, counts[split][attr.name],
                          width, label=split)
            ax.bar_label(bars, fontsize=7)
        ax.set_xticks(x, attr.classes, rotation=30, ha="right", fontsize=8)
        ax.set_title(attr.name)
    axes.flat[-1].axis("off")
    axes.flat[0].legend()
    fig.suptitle(title or "class counts per split")
    fig.tight_layout()
    return save_figure(fig, path)


def _upsample(grid: np.ndarray, size: int) -> np.ndarray:
    """float [h,w] -> float [size,size], bilinear."""
    im = Image.fromarray(np.asarray(grid, dtype=np.float32), mode="F")
    return np.asarray(im.resize((size, size), Image.Resampling.BILINEAR))


def attention_sheet(images: np.ndarray, maps: Mapping[str, np.ndarray], titles: Sequence[str],
                    path: str | Path, suptitle: str = "") -> Path:
    """images uint8 [B,S,S,3]; maps {attribute: float [B,h,w]} (upsampled bilinearly to S);
    titles: one line per sample (e.g. its id and predictions). Writes a PNG grid:
    rows = samples, columns = the sketch, then one attention overlay per attribute."""
    attrs = list(maps)
    b, s = images.shape[0], images.shape[1]
    fig = new_figure((1.9 * (len(attrs) + 1), 2.0 * b), dpi=80)
    axes = fig.subplots(b, len(attrs) + 1, squeeze=False)
    for i in range(b):
        axes[i, 0].imshow(images[i])
        axes[i, 0].set_title(titles[i], fontsize=6)
        for j, a in enumerate(attrs):
            axes[i, j + 1].imshow(images[i])
            axes[i, j + 1].imshow(_upsample(maps[a][i], s), cmap="jet", alpha=0.45)
            if i == 0:
                axes[i, j + 1].set_title(a, fontsize=8)
    for ax in axes.flat:
        ax.axis("off")
    fig.suptitle(suptitle, fontsize=9)
    fig.tight_layout()
    return save_figure(fig, path)


def denormalise(x: np.ndarray, mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    """float [B,3,S,S] normalised as (x / 255 - mean) / std -> uint8 [B,S,S,3]."""
    x = np.asarray(x, dtype=np.float32)
    m = np.asarray(mean, np.float32).reshape(1, 3, 1, 1)
    sd = np.asarray(std, np.float32).reshape(1, 3, 1, 1)
    return (np.clip(x * sd + m, 0, 1) * 255).round().astype(np.uint8).transpose(0, 2, 3, 1)
