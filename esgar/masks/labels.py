"""Face-parsing label orders: the 19 CelebAMask-HQ classes as each parser numbers them.

The canonical order is BiSeNet's (facexlib `bisenet`); facexlib's `parsenet` numbers the same
classes differently, so every map is remapped to canonical before regions are taken from it.
(`ear_r` = earring, `neck_l` = necklace, `eye_g` = eyeglasses.)
"""

from __future__ import annotations

import numpy as np

BISENET_CLASSES: tuple[str, ...] = (
    "background", "skin", "l_brow", "r_brow", "l_eye", "r_eye", "eye_g", "l_ear", "r_ear",
    "ear_r", "nose", "mouth", "u_lip", "l_lip", "neck", "neck_l", "cloth", "hair", "hat",
)
PARSENET_CLASSES: tuple[str, ...] = (
    "background", "skin", "nose", "eye_g", "l_eye", "r_eye", "l_brow", "r_brow", "l_ear",
    "r_ear", "mouth", "u_lip", "l_lip", "hair", "hat", "ear_r", "neck_l", "neck", "cloth",
)
CANONICAL_CLASSES: tuple[str, ...] = BISENET_CLASSES
LABEL_ORDERS: dict[str, tuple[str, ...]] = {
    "bisenet": BISENET_CLASSES, "parsenet": PARSENET_CLASSES, "canonical": CANONICAL_CLASSES,
}


def lookup(src: str, dst: str) -> np.ndarray:
    """uint8 [19]: index in order `src` -> index of the same class in order `dst`."""
    try:
        a, b = LABEL_ORDERS[src], LABEL_ORDERS[dst]
    except KeyError as e:
        raise ValueError(f"unknown label order {e.args[0]!r}; known: {', '.join(LABEL_ORDERS)}"
                         ) from None
    return np.array([b.index(name) for name in a], dtype=np.uint8)


def remap(label_map: np.ndarray, src: str, dst: str = "canonical") -> np.ndarray:
    """A label map [H,W] (values < 19) from order `src` to order `dst`."""
    if label_map.size and int(label_map.max()) >= len(LABEL_ORDERS[src]):
        raise ValueError(f"label value {int(label_map.max())} is not a class of {src} "
                         f"(0..{len(LABEL_ORDERS[src]) - 1})")
    return lookup(src, dst)[label_map]
