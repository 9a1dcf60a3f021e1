"""The FS2K attribute schema: attributes, their classes and value names, and FS2K's own counts.

Encodings follow the FS2K README (not its viewer, which flips `smile`):
hair 0 = with hair; hair_color 0 brown, 1 black, 2 red, 3 no-hair, 4 golden; gender 0 male;
earring 0 = with; smile 0 = with; frontal_face 0 = within 30 degrees; style 0, 1, 2.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ATTRIBUTES", "ATTRIBUTE_NAMES", "Attribute", "BY_NAME", "COLOR_FIELDS",
           "FS2K_COUNTS", "FS2K_PAIRS", "PAPER_ATTRIBUTES", "SPLITS", "attribute"]


@dataclass(frozen=True)
class Attribute:
    """An attribute and its class names in class-index order. Which face region its branch sees
    is a setting (`model.attribute_regions` in params.yaml), not part of the schema."""

    name: str
    classes: tuple[str, ...]

    @property
    def num_classes(self) -> int:
        return len(self.classes)


ATTRIBUTES: tuple[Attribute, ...] = (
    Attribute("hair", ("with_hair", "without_hair")),
    Attribute("hair_color", ("brown", "black", "red", "no_hair", "golden")),
    Attribute("gender", ("male", "female")),
    Attribute("earring", ("with_earring", "without_earring")),
    Attribute("smile", ("with_smile", "without_smile")),
    Attribute("frontal_face", ("within_30deg", "over_30deg")),
    Attribute("style", ("style0", "style1", "style2")),
)
ATTRIBUTE_NAMES: tuple[str, ...] = tuple(a.name for a in ATTRIBUTES)
BY_NAME: dict[str, Attribute] = {a.name: a for a in ATTRIBUTES}

# The paper-style "mean accuracy" is over these six (everything but hair_color).
PAPER_ATTRIBUTES: tuple[str, ...] = tuple(n for n in ATTRIBUTE_NAMES if n != "hair_color")

# Colour fields of an FS2K record: name -> number of channels. Values may be missing.
COLOR_FIELDS: dict[str, int] = {"skin_color": 2, "lip_color": 3, "eye_color": 3}

HAIR_COLOR_NO_HAIR = 3  # hair_color's "no-hair" class; consistent records pair it with hair == 1

# The sample table's splits: val is carved out of FS2K's train split; test is FS2K's own and
# never picks a model.
SPLITS: tuple[str, ...] = ("train", "val", "test")

# Class counts of FS2K from its README, in class-index order.
FS2K_COUNTS: dict[str, dict[str, tuple[int, ...]]] = {
    "train": {
        "hair": (1010, 48),
        "hair_color": (288, 423, 60, 48, 239),
        "gender": (574, 484),
        "earring": (209, 849),
        "smile": (645, 413),
        "frontal_face": (917, 141),
        "style": (357, 351, 350),
    },
    "test": {
        "hair": (994, 52),
        "hair_color": (291, 417, 44, 52, 242),
        "gender": (632, 414),
        "earring": (187, 859),
        "smile": (670, 376),
        "frontal_face": (872, 174),
        "style": (619, 381, 46),
    },
}
FS2K_PAIRS = {"train": 1058, "test": 1046}


def attribute(name: str) -> Attribute:
    try:
        return BY_NAME[name]
    except KeyError:
        raise KeyError(f"unknown attribute {name!r}; known: {', '.join(ATTRIBUTE_NAMES)}") from None
