"""Regions: named unions of canonical parsing classes, stored as bits of one uint16 per pixel.

A label map [H,W] (canonical classes) becomes a region bitmask [H,W] uint16 through a lookup
table: bit i is set where the pixel's class belongs to region i. Regions may overlap
(`foreground` holds `hair`), which one label per pixel could not express.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from esgar.masks.labels import CANONICAL_CLASSES

__all__ = ["MAX_REGIONS", "apply_fallback", "bits_to_masks", "check_regions", "label_to_bits",
           "masks_to_bits", "region_lut"]

MAX_REGIONS = 16

def check_regions(regions: Mapping[str, Sequence[str]]) -> None:
    """ValueError naming the first region that is not a non-empty set of known classes."""
    if not 0 < len(regions) <= MAX_REGIONS:
        raise ValueError(f"between 1 and {MAX_REGIONS} regions are supported, got {len(regions)}")
    for name, classes in regions.items():
        unknown = [c for c in classes if c not in CANONICAL_CLASSES]
        if unknown or not classes:
            raise ValueError(f"region {name!r}: unknown class(es) {unknown or '(none given)'}; "
                             f"classes are {', '.join(CANONICAL_CLASSES)}")


def region_lut(regions: Mapping[str, Sequence[str]]) -> np.ndarray:
    """uint16 [19]: the region bits of each canonical class."""
    check_regions(regions)
    lut = np.zeros(len(CANONICAL_CLASSES), dtype=np.uint16)
    for bit, classes in enumerate(regions.values()):
        for c in classes:
            lut[CANONICAL_CLASSES.index(c)] |= np.uint16(1 << bit)
    return lut


def label_to_bits(label: np.ndarray, lut: np.ndarray) -> np.ndarray:
    """Canonical label map [H,W] -> region bitmask [H,W] uint16."""
    return lut[label]


def bits_to_masks(bits: np.ndarray, n_regions: int) -> np.ndarray:
    """Region bitmask [H,W] -> bool [R,H,W]."""
    shifts = np.arange(n_regions, dtype=np.uint16)[:, None, None]
    return ((bits[None].astype(np.uint16) >> shifts) & 1).astype(bool)


def masks_to_bits(masks: np.ndarray) -> np.ndarray:
    """bool [R,H,W] -> region bitmask [H,W] uint16."""
    if masks.shape[0] > MAX_REGIONS:
        raise ValueError(f"at most {MAX_REGIONS} regions fit a uint16 bitmask")
    weights = (1 << np.arange(masks.shape[0], dtype=np.uint32)).astype(np.uint16)
    return np.tensordot(weights, masks.astype(np.uint16), axes=1).astype(np.uint16)


def apply_fallback(masks: np.ndarray, names: Sequence[str], fallback: Mapping[str, str]
                   ) -> tuple[np.ndarray, list[str]]:
    """Fill each empty region from its fallback (following chains, e.g. earring -> ears -> face).

    masks: bool [R,H,W] in the order of `names`. Returns the filled masks and the names of the
    regions that fell back.
    """
    out = masks.copy()
    fell = []
    index = {n: i for i, n in enumerate(names)}
    for i, name in enumerate(names):
        if out[i].any():
            continue
        seen, target = {name}, fallback.get(name)
        while target is not None and target in index and target not in seen:
            if masks[index[target]].any():
                out[i] = masks[index[target]]
                fell.append(name)
                break
            seen.add(target)
            target = fallback.get(target)
    return out, fell
