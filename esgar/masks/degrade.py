"""A face parser's errors, put into exact label maps on purpose: how much is mask guidance worth
when the masks come from an imperfect parser?

    spec = Degradation(level=2)                       # every mode scaled by the level
    noisy = degrade(label, spec, sample_rng(seed, i)) # canonical label map uint8 [H,W] -> same

Each mode stands for an error real parsers make on sketches (and on photos, less):

- `jitter_px`: a smooth random displacement of every boundary, up to this many pixels.
  Boundaries placed a few pixels off, worst on thin strokes.
- `morph_px`: every class eroded (or dilated, the sign drawn per map) by this many pixels (a
  fraction: the radius is rounded up with that probability, per map). A parser that is
  systematically too tight or too loose.
- `small_miss`: each small part present (earring, eyes, mouth, lips, brows) missed at this
  rate, filled by its surroundings. Small, low-contrast parts not found; earrings above all.
- `hair_bleed_px`: hair grown into background and neck by this many pixels. Hair bleeding into
  the background, the commonest error on sketches, whose hair is strokes on white.
- `region_miss`: each class present missed whole at this rate, filled by its surroundings. A
  whole part lost (ears behind hair, a neck under a collar).
- `swap`: each neighbouring pair present (left/right eye, brow, ear; upper/lower lip; hair/hat;
  neck/cloth) swapped at this rate. The wrong one of two look-alike classes.

Values are per unit of `level`: level 0 is the identity, level 2 doubles every amplitude and
rate (rates capped at 1). The defaults make level 1 about a published CNN face parser's
per-class F1 on CelebAMask-HQ (the calibration in bench/bench_robustness.py). Randomness comes
from the generator passed in, so a map degrades the same way for the same seed, whatever order
the maps come in (`sample_rng`).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, fields, replace

import cv2
import numpy as np

from esgar.errors import ConfigError
from esgar.masks.labels import CANONICAL_CLASSES
from esgar.masks.regions import bits_to_masks

__all__ = ["MODES", "NEIGHBOURS", "SMALL", "Degradation", "Degraded", "class_f1", "degrade",
           "fill_from_surroundings", "hair_bleed", "jitter", "level_items", "miss_classes",
           "morph", "region_f1", "sample_rng", "stochastic_round", "swap_pairs"]

_C = {name: i for i, name in enumerate(CANONICAL_CLASSES)}
BACKGROUND, HAIR, NECK = _C["background"], _C["hair"], _C["neck"]
SMALL = tuple(_C[c] for c in ("ear_r", "l_eye", "r_eye", "mouth", "u_lip", "l_lip", "l_brow",
                              "r_brow"))
NEIGHBOURS = tuple((_C[a], _C[b]) for a, b in (
    ("l_eye", "r_eye"), ("l_brow", "r_brow"), ("l_ear", "r_ear"), ("u_lip", "l_lip"),
    ("hair", "hat"), ("neck", "cloth")))


@dataclass(frozen=True)
class Degradation:
    """One value per error mode (per unit of `level`) and the level that scales them all."""

    level: float = 0.0
    jitter_px: float = 1.0
    morph_px: float = 0.5
    small_miss: float = 0.075
    hair_bleed_px: float = 1.0
    region_miss: float = 0.01
    swap: float = 0.025

    def __post_init__(self) -> None:
        bad = [f.name for f in fields(self) if getattr(self, f.name) < 0]
        if bad:
            raise ValueError(f"degradation {', '.join(bad)}: must be >= 0")

    def scaled(self, mode: str) -> float:
        value = getattr(self, mode) * self.level
        return min(value, 1.0) if mode in ("small_miss", "region_miss", "swap") else value


MODES = tuple(f.name for f in fields(Degradation) if f.name != "level")


def sample_rng(seed: int, index: int) -> np.random.Generator:
    """The generator of map `index` under `seed`: independent of the order maps come in."""
    return np.random.default_rng([seed, index])


def _disk(radius: int) -> np.ndarray:
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))


def jitter(label: np.ndarray, amplitude: float, rng: np.random.Generator) -> np.ndarray:
    """Every boundary displaced by a smooth random field of up to about `amplitude` pixels."""
    if amplitude <= 0:
        return label
    h, w = label.shape
    sigma = max(h, w) / 16  # smooth: neighbouring pixels move together, shapes stay shapes
    field = []
    for _ in range(2):
        noise = cv2.GaussianBlur(rng.standard_normal((h, w)).astype(np.float32), (0, 0), sigma)
        field.append(noise / (np.abs(noise).max() + 1e-8) * amplitude)
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    return cv2.remap(label, xs + field[0], ys + field[1], cv2.INTER_NEAREST,
                     borderMode=cv2.BORDER_REPLICATE)


def morph(label: np.ndarray, radius: int) -> np.ndarray:
    """radius > 0: every class grows into the background by `radius` pixels; radius < 0: every
    class (but the background) shrinks by |radius|, the pixels it loses become background."""
    if radius == 0:
        return label
    k = _disk(abs(radius))
    if radius < 0:
        out = np.zeros_like(label)
        for c in np.unique(label):
            if c != BACKGROUND:
                out[cv2.erode((label == c).astype(np.uint8), k).astype(bool)] = c
        return out
    grown = cv2.dilate(label, k)  # the largest class index nearby wins the background pixel
    out = label.copy()
    out[label == BACKGROUND] = grown[label == BACKGROUND]
    return out


def fill_from_surroundings(label: np.ndarray, region: np.ndarray) -> np.ndarray:
    """The pixels of `region` (bool [H,W]) relabeled with the commonest class around it (a
    ring of a few pixels outside it; background when there is nothing else)."""
    if not region.any():
        return label
    ring = cv2.dilate(region.astype(np.uint8), _disk(3)).astype(bool) & ~region
    around = label[ring]
    fill = np.bincount(around, minlength=len(CANONICAL_CLASSES)).argmax() if around.size \
        else BACKGROUND
    out = label.copy()
    out[region] = fill
    return out


def miss_classes(label: np.ndarray, classes: tuple[int, ...], rate: float,
                 rng: np.random.Generator) -> np.ndarray:
    """Each of `classes` present in `label` missed with probability `rate`, filled from its
    surroundings."""
    out = label
    for c in classes:
        if rng.random() < rate and (out == c).any():
            out = fill_from_surroundings(out, out == c)
    return out


def hair_bleed(label: np.ndarray, radius: int) -> np.ndarray:
    """Hair grown by `radius` pixels into background and neck (nothing else)."""
    if radius <= 0 or not (label == HAIR).any():
        return label
    grown = cv2.dilate((label == HAIR).astype(np.uint8), _disk(radius)).astype(bool)
    out = label.copy()
    out[grown & np.isin(label, (BACKGROUND, NECK))] = HAIR
    return out


def swap_pairs(label: np.ndarray, rate: float, rng: np.random.Generator) -> np.ndarray:
    """Each neighbouring pair (`NEIGHBOURS`) present swapped with probability `rate`."""
    out = label.copy()
    for a, b in NEIGHBOURS:
        if rng.random() < rate and ((label == a).any() or (label == b).any()):
            out[label == a], out[label == b] = b, a
    return out


def stochastic_round(value: float, rng: np.random.Generator) -> int:
    """floor(value), plus one with probability frac(value): whole pixels whose mean is `value`,
    so a level between two radii gives masks between theirs, not a step."""
    whole = int(np.floor(value))
    return whole + int(rng.random() < value - whole)


def degrade(label: np.ndarray, spec: Degradation, rng: np.random.Generator) -> np.ndarray:
    """A canonical label map uint8 [H,W] with the errors of `spec` (level 0: the same map)."""
    if spec.level == 0:
        return label
    out = jitter(label, spec.scaled("jitter_px"), rng)
    radius = stochastic_round(spec.scaled("morph_px"), rng)
    out = morph(out, radius if rng.random() < 0.5 else -radius)
    out = miss_classes(out, SMALL, spec.scaled("small_miss"), rng)
    out = hair_bleed(out, stochastic_round(spec.scaled("hair_bleed_px"), rng))
    present = tuple(int(c) for c in np.unique(out) if c != BACKGROUND)
    out = miss_classes(out, present, spec.scaled("region_miss"), rng)
    return swap_pairs(out, spec.scaled("swap"), rng)


def region_f1(exact: np.ndarray, noisy: np.ndarray) -> np.ndarray:
    """Per region, F1 (Dice) of `noisy` against `exact` (bool [R,H,W] each); NaN where both are
    empty."""
    inter = (exact & noisy).reshape(len(exact), -1).sum(1)
    total = exact.reshape(len(exact), -1).sum(1) + noisy.reshape(len(noisy), -1).sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, 2 * inter / total, np.nan)


def class_f1(pairs, n_classes: int = len(CANONICAL_CLASSES)) -> np.ndarray:
    """Per class, F1 of noisy label maps against exact ones with the pixels of all maps pooled,
    as face-parsing papers report it: pairs of (exact, noisy) uint8 [H,W] -> float [n_classes],
    NaN for a class in neither."""
    confusion = np.zeros((n_classes, n_classes), np.int64)  # rows: exact, columns: noisy
    for exact, noisy in pairs:
        confusion += np.bincount(exact.ravel().astype(np.int64) * n_classes + noisy.ravel(),
                                 minlength=n_classes * n_classes).reshape(n_classes, n_classes)
    tp = np.diag(confusion).astype(float)
    total = confusion.sum(0) + confusion.sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, 2 * tp / total, np.nan)


class Degraded:
    """A mask source (see `esgar.masks.build`) with `spec`'s errors put into its label maps,
    seeded per map; it keeps the per-region F1 of each degraded map against the exact one
    (`mean_f1`) and the exact maps of the rows in `keep` (for a contact sheet).

    lut: `esgar.masks.regions.region_lut` of the `n_regions` regions to measure.
    """

    def __init__(self, source, spec: Degradation, seed: int, lut: np.ndarray, n_regions: int,
                 keep: set[int] = frozenset()):
        self.source, self.spec, self.seed, self.lut, self.keep = source, spec, seed, lut, keep
        self.n = n_regions
        self.kept: dict[int, np.ndarray] = {}
        self._f1: list[np.ndarray] = []

    def __iter__(self):
        n, active = self.n, self.spec.level > 0
        for i, got in self.source:
            if active and got is not None and got.ndim != 2:
                raise ConfigError("masks.degrade needs label maps; region folders hold no "
                                  "classes to degrade (set masks.degrade.level: 0)")
            if got is not None and got.ndim == 2 and i in self.keep:
                self.kept[i] = got
            if active and got is not None:
                noisy = degrade(got, self.spec, sample_rng(self.seed, i))
                self._f1.append(region_f1(bits_to_masks(self.lut[got], n),
                                          bits_to_masks(self.lut[noisy], n)))
                got = noisy
            yield i, got

    def mean_f1(self, names) -> dict[str, float]:
        """{region: mean F1 over the maps where it is in either mask}."""
        f1 = np.array(self._f1).reshape(-1, len(names))
        with warnings.catch_warnings():  # a region empty in every map: NaN, said as NaN
            warnings.simplefilter("ignore", RuntimeWarning)
            means = np.nanmean(f1, 0) if len(f1) else np.full(len(names), np.nan)
        return {r: round(float(v), 4) for r, v in zip(names, means, strict=True)}


def level_items(samples, spec: Degradation, levels, seed: int, lut: np.ndarray, n_regions: int):
    """Contact-sheet items (title, sketch, bool masks [R,H,W]) of each sample at each level:
    samples are (row, sample id, sketch image, exact label map)."""
    items = []
    for row, sid, sketch, label in samples:
        for level in levels:
            noisy = degrade(label, replace(spec, level=float(level)), sample_rng(seed, row))
            items.append((f"{sid} level {level:g}", sketch, bits_to_masks(lut[noisy], n_regions)))
    return items
