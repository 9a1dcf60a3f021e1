"""Region masks -> token grids at a backbone's feature-grid size.

`esgar` rule (ESGAR's release): binarise the mask, take each cell's coverage (the share of its
pixels inside the region), set cells covered at least `ESGAR_THRESHOLD` to 1 and keep smaller
fractions as they are. `soft`: the plain coverage. Cells need not divide the image evenly
(adaptive average pooling).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

ESGAR_THRESHOLD = 0.031
RULES = ("esgar", "soft")


def token_grid(masks: np.ndarray | torch.Tensor, grid: tuple[int, int] = (7, 7),
               rule: str = "esgar") -> np.ndarray | torch.Tensor:
    """masks [..., R, H, W] (bool or float) -> float32 [..., R, gh, gw], same array type."""
    if rule not in RULES:
        raise ValueError(f"unknown grid rule {rule!r}; use one of {', '.join(RULES)}")
    is_numpy = isinstance(masks, np.ndarray)
    t = torch.from_numpy(np.ascontiguousarray(masks)) if is_numpy else masks
    lead, (h, w) = t.shape[:-2], t.shape[-2:]
    x = (t.reshape(-1, 1, h, w) > 0.5).float()
    cov = F.adaptive_avg_pool2d(x, tuple(grid)).reshape(*lead, *grid)
    if rule == "esgar":
        cov = torch.where(cov >= ESGAR_THRESHOLD, torch.ones_like(cov), cov)
    return cov.numpy() if is_numpy else cov


def eval_crop(masks: np.ndarray, size: int) -> np.ndarray:
    """bool [R,H,W] -> bool [R,size,size]: short side resized to `size` (nearest), center crop.

    The evaluation geometry of `esgar.data.dataset` (training crops at random instead).
    """
    t = torch.from_numpy(masks.astype(np.uint8))[None]
    h, w = masks.shape[-2:]
    scale = size / min(h, w)
    nh, nw = max(size, round(h * scale)), max(size, round(w * scale))
    t = F.interpolate(t, size=(nh, nw), mode="nearest")[0]
    top, left = (nh - size) // 2, (nw - size) // 2
    return t[:, top:top + size, left:left + size].numpy().astype(bool)
