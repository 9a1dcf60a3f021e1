"""Seeded, stratified splits: the validation split carved out of FS2K's train split, and the
folds of cross-fitting.

Each sample carries one class per attribute, so stratifying on one attribute can starve
another's rare class. Iterative stratification (Sechidis et al., ECML-PKDD 2011) stratifies on
every (attribute, class) label at once: the rarest label is placed first, each of its samples
going to the part that lacks it most.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["iterative_folds", "iterative_split", "iterative_stratification", "labeled_subset"]


def iterative_stratification(labels: np.ndarray, num_classes: Sequence[int],
                             proportions: Sequence[float], seed: int = 0) -> np.ndarray:
    """Assign each row to a part so that every (attribute, class) keeps the parts' proportions.

    labels: int [N, A], one class index per attribute. num_classes: length A.
    proportions: the parts' shares (positive, summing to 1). Returns int [N]: each row's part.
    """
    shares = np.asarray(proportions, dtype=np.float64)
    if (shares <= 0).any() or not np.isclose(shares.sum(), 1.0):
        raise ValueError(f"proportions must be positive and sum to 1, got {list(proportions)}")
    n = labels.shape[0]
    rng = np.random.default_rng(seed)
    onehot = np.concatenate(
        [np.eye(k, dtype=np.int64)[labels[:, j]] for j, k in enumerate(num_classes)], axis=1
    )  # [N, L]
    want = shares[:, None] * onehot.sum(0)[None, :]  # [P, L]
    size_want = shares * n
    part = np.full(n, -1)
    order = rng.permutation(n)
    onehot = onehot[order]
    while (part < 0).any():
        free = part[order] < 0
        counts = onehot[free].sum(0)
        label = np.flatnonzero(counts == counts[counts > 0].min())
        label = label[rng.integers(len(label))]
        for i in np.flatnonzero(free & (onehot[:, label] == 1)):
            need = want[:, label]
            best = np.flatnonzero(need == need.max())
            if len(best) > 1:
                best = best[np.flatnonzero(size_want[best] == size_want[best].max())]
            p = best[rng.integers(len(best))]
            part[order[i]] = p
            want[p] -= onehot[i]
            size_want[p] -= 1
    return part


def iterative_split(labels: np.ndarray, num_classes: Sequence[int], fraction: float,
                    seed: int = 0) -> np.ndarray:
    """Pick a `fraction` of the rows so that every (attribute, class) keeps its share.

    labels: int [N, A]; num_classes: length A. Returns bool [N], True for the picked rows.
    """
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"fraction must be in (0, 1), got {fraction}")
    return iterative_stratification(labels, num_classes, (fraction, 1 - fraction), seed) == 0


def iterative_folds(labels: np.ndarray, num_classes: Sequence[int], folds: int,
                    seed: int = 0) -> np.ndarray:
    """int [N]: each row's fold in 0..folds-1, every (attribute, class) spread evenly."""
    if folds < 2:
        raise ValueError(f"folds must be at least 2, got {folds}")
    return iterative_stratification(labels, num_classes, [1 / folds] * folds, seed)


def labeled_subset(labels: np.ndarray, num_classes: Sequence[int], fraction: float, seed: int
                   ) -> np.ndarray:
    """bool [N]: the seeded, stratified `fraction` of N samples (labels int [N, A]) whose labels
    a limited-label run trains on (LSA's protocol); at least one sample, and every sample at 1."""
    n = len(labels)
    if fraction >= 1:
        return np.ones(n, bool)
    keep = iterative_split(labels, num_classes, fraction, seed)
    if not keep.any() and n:
        keep[np.random.default_rng(seed).integers(n)] = True
    return keep
