"""Seeded, stratified validation split carved out of FS2K's train split.

Each sample carries one class per attribute, so stratifying on one attribute can starve
another's rare class. `iterative_split` stratifies on every (attribute, class) label at once
with iterative stratification (Sechidis et al., ECML-PKDD 2011): the rarest label is placed
first, each of its samples going to the side that lacks it most.
"""

from __future__ import annotations

import numpy as np


def iterative_split(labels: np.ndarray, num_classes: list[int], fraction: float,
                    seed: int = 0) -> np.ndarray:
    """Pick a `fraction` of the rows so that every (attribute, class) keeps its share.

    labels: int [N, A], one class index per attribute.  num_classes: length A.
    Returns a bool mask [N], True for the rows of the carved-out split.
    """
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"fraction must be in (0, 1), got {fraction}")
    n, a = labels.shape
    rng = np.random.default_rng(seed)
    onehot = np.concatenate(
        [np.eye(k, dtype=np.int64)[labels[:, j]] for j, k in enumerate(num_classes)], axis=1
    )  # [N, L]
    want = np.stack([onehot.sum(0) * fraction, onehot.sum(0) * (1 - fraction)])  # [2, L]
    size_want = np.array([n * fraction, n * (1 - fraction)])
    side = np.full(n, -1)
    order = rng.permutation(n)
    onehot = onehot[order]
    while (side < 0).any():
        free = side[order] < 0
        counts = onehot[free].sum(0)
        label = np.flatnonzero(counts == counts[counts > 0].min())
        label = label[rng.integers(len(label))]
        for i in np.flatnonzero(free & (onehot[:, label] == 1)):
            need = want[:, label]
            best = np.flatnonzero(need == need.max())
            if len(best) > 1:
                best = best[np.flatnonzero(size_want[best] == size_want[best].max())]
            s = best[rng.integers(len(best))]
            side[order[i]] = s
            want[s] -= onehot[i]
            size_want[s] -= 1
    return side == 0
