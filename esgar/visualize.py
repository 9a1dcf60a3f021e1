"""Pictures of what a model looked at: attention maps over sketches, one row per sample."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from esgar.io import atomic_path  # noqa: E402


def attention_sheet(images: np.ndarray, maps: Mapping[str, np.ndarray], titles: Sequence[str],
                    path: str | Path, suptitle: str = "") -> None:
    """images uint8 [B,S,S,3]; maps {attribute: float [B,h,w]} (upsampled bilinearly to S);
    titles: one line per sample (e.g. its id and predictions). Writes a PNG grid:
    rows = samples, columns = the sketch, then one attention overlay per attribute."""
    attrs = list(maps)
    b, s = images.shape[0], images.shape[1]
    fig, axes = plt.subplots(b, len(attrs) + 1, figsize=(1.9 * (len(attrs) + 1), 2.0 * b),
                             squeeze=False)
    for i in range(b):
        axes[i, 0].imshow(images[i])
        axes[i, 0].set_title(titles[i], fontsize=6)
        for j, a in enumerate(attrs):
            m = torch.as_tensor(maps[a][i], dtype=torch.float32)[None, None]
            up = F.interpolate(m, size=(s, s), mode="bilinear", align_corners=False)[0, 0].numpy()
            axes[i, j + 1].imshow(images[i])
            axes[i, j + 1].imshow(up, cmap="jet", alpha=0.45)
            if i == 0:
                axes[i, j + 1].set_title(a, fontsize=8)
    for ax in axes.flat:
        ax.axis("off")
    fig.suptitle(suptitle, fontsize=9)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=80, format="png")
    plt.close(fig)


def denormalise(x: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    """float [B,3,S,S] normalised -> uint8 [B,S,S,3]."""
    m = torch.tensor(mean).view(1, 3, 1, 1)
    sd = torch.tensor(std).view(1, 3, 1, 1)
    return ((x * sd + m).clamp(0, 1) * 255).round().byte().permute(0, 2, 3, 1).numpy()
