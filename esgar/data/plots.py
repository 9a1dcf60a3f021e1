"""Class-distribution plot of the sample table."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from esgar import schema  # noqa: E402
from esgar.io import atomic_path  # noqa: E402


def plot_class_distribution(counts: dict[str, dict[str, list[int]]], path: str | Path,
                            title: str = "") -> None:
    """One panel per attribute, bars per class grouped by split, counts on top.

    counts: {split: {attribute: [count per class]}} as `table.class_counts` returns.
    """
    splits = list(counts)
    fig, axes = plt.subplots(2, 4, figsize=(18, 8))
    for ax, attr in zip(axes.flat, schema.ATTRIBUTES):
        x = np.arange(attr.num_classes)
        width = 0.8 / len(splits)
        for k, split in enumerate(splits):
            c = counts[split][attr.name]
            bars = ax.bar(x + (k - (len(splits) - 1) / 2) * width, c, width, label=split)
            ax.bar_label(bars, fontsize=7)
        ax.set_xticks(x, attr.classes, rotation=30, ha="right", fontsize=8)
        ax.set_title(attr.name)
    axes.flat[-1].axis("off")
    axes.flat[0].legend()
    fig.suptitle(title or "class counts per split")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=90, format="png")
    plt.close(fig)
