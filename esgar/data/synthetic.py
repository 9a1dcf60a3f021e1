"""Synthetic FS2K: drawn faces in the exact FS2K layout, with exact parsing label maps.

Every attribute shows in its own region, so a mask-guided model has something to find:
hair presence and colour in the hair region (colour as a tone and texture in the sketch),
earrings at the ear lobes, smile at the mouth, a frontal or turned head (features shifted,
the far ear hidden), gender by jaw shape, stubble, lashes and lipstick, and three drawing
styles for the sketch (0: clean line art, 1: soft pencil shading with hatching, 2: heavy
charcoal). The label map is drawn first and the photo and sketch are rendered from it, so the
map is exactly what was drawn.

Labels are assigned by exact quotas (largest remainder of pairs x prior, then a seeded shuffle),
so with 2,104 pairs and the default priors the class counts equal FS2K's. Drawing uses a
random generator seeded by (seed, pair index): output does not depend on the worker count.
Sketches are saved as 3-channel RGB (grey values), like FS2K's.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from esgar import log, schema
from esgar.errors import ConfigError, OutputError
from esgar.data import layout
from esgar.masks.labels import BISENET_CLASSES, LABEL_ORDERS, remap

VERSION = 1
SIZES = {"photo1": (250, 250), "photo2": (223, 318), "photo3": (475, 340)}  # (W, H)
SUBSET_SHARE = {"train": {"photo1": 0.3, "photo2": 0.4, "photo3": 0.3},
                "test": {"photo1": 0.5, "photo3": 0.5}}  # FS2K's test split has no subset 2
MIN_PAIRS = 20
C = {name: i for i, name in enumerate(BISENET_CLASSES)}  # drawing uses bisenet indices

HAIR_RGB = {0: (112, 72, 40), 1: (28, 26, 26), 2: (176, 64, 30), 4: (222, 184, 92)}
HAIR_GREY = {0: 105, 1: 35, 2: 150, 4: 205}  # hair colour as a sketch tone


# ---- labels -------------------------------------------------------------------------------

def quota(n: int, weights: Sequence[float]) -> np.ndarray:
    """Integer counts summing to n, proportional to weights (largest remainder). int [C]."""
    w = np.asarray(weights, dtype=float)
    exact = n * w / w.sum()
    counts = np.floor(exact).astype(int)
    order = np.argsort(-(exact - counts), kind="stable")
    counts[order[: n - counts.sum()]] += 1
    return counts


def _shuffled(counts: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return rng.permutation(np.repeat(np.arange(len(counts)), counts))


def assign_labels(n: int, priors: dict[str, Sequence[float]], rng: np.random.Generator
                  ) -> dict[str, np.ndarray]:
    """Labels of n pairs of one split by exact quotas; hair_color is 3 (no hair) iff hair is 1."""
    labels = {a.name: _shuffled(quota(n, priors[a.name]), rng)
              for a in schema.FS2K.attributes if a.name != "hair_color"}
    haired = labels["hair"] == 0
    weights = np.array(priors["hair_color"], dtype=float)
    weights[schema.HAIR_COLOR_NO_HAIR] = 0
    colour = np.full(n, schema.HAIR_COLOR_NO_HAIR)
    colour[haired] = _shuffled(quota(int(haired.sum()), weights), rng)
    labels["hair_color"] = colour
    return labels


NoiseRow = float | dict[int, float]  # a share flipped to any other class, or {noisy class: share}


def apply_noise(labels: dict[str, np.ndarray], noise: dict[str, dict[int, NoiseRow]],
                rng: np.random.Generator
                ) -> tuple[dict[str, np.ndarray], list[tuple[int, str, int, int]]]:
    """Flip pairs of each noisy (attribute, true class) to other classes.

    A row of `noise[attr]` is either a share (round(share x count) pairs of the class flipped,
    each to another class drawn uniformly) or a row of a confusion matrix, {noisy class: share}
    (that many pairs of the class labelled as that class: systematic confusions such as red
    hair called brown). Keeps hair and hair_color consistent: a flipped hair flips its
    hair_color too (logged). Returns the noisy labels and the flips as (pair index, attribute,
    true, noisy).
    """
    noisy = {k: v.copy() for k, v in labels.items()}
    flips: list[tuple[int, str, int, int]] = []

    def flip(i: int, attr: str, new: int) -> None:
        flips.append((i, attr, int(noisy[attr][i]), new))
        noisy[attr][i] = new
        if attr == "hair":
            new_c = schema.HAIR_COLOR_NO_HAIR if new == 1 else int(rng.choice([0, 1, 2, 4]))
            flips.append((i, "hair_color", int(noisy["hair_color"][i]), new_c))
            noisy["hair_color"][i] = new_c

    for attr in sorted(noise):
        k = schema.FS2K.by_name[attr].num_classes
        for cls in sorted(noise[attr]):
            row = noise[attr][cls]
            members = np.flatnonzero(labels[attr] == cls)
            if isinstance(row, dict):
                confusions = sorted(row)
                counts = quota(len(members), [row[c] for c in confusions]
                               + [max(0.0, 1.0 - sum(row.values()))])[:-1]
                chosen = rng.choice(members, size=int(counts.sum()), replace=False)
                for i, new in zip(chosen.tolist(), np.repeat(confusions, counts).tolist()):
                    if noisy[attr][i] == labels[attr][i]:  # not flipped through its partner
                        flip(i, attr, int(new))
                continue
            chosen = rng.choice(members, size=round(row * len(members)), replace=False)
            for i in sorted(chosen.tolist()):
                if noisy[attr][i] != labels[attr][i]:
                    continue  # already flipped through its partner attribute
                others = [c for c in range(k) if c != cls]
                if attr == "hair_color":
                    bald = noisy["hair"][i] == 1
                    others = [c for c in others if (c == schema.HAIR_COLOR_NO_HAIR) == bald]
                    if not others:
                        continue
                flip(i, attr, int(rng.choice(others)))
    return noisy, flips


def noise_problems(noise: dict[str, dict[int, Any]]) -> list[str]:
    """What makes a label-noise spec unusable, one line each (empty: usable).

    `noise`: {attribute: {true class: share | {noisy class: share}}}.
    """
    problems = []
    for attr, rows in noise.items():
        if attr not in schema.FS2K.by_name:
            problems.append(f"noise: unknown attribute {attr!r}; attributes are "
                            f"{', '.join(schema.FS2K.names)}")
            continue
        k = schema.FS2K.by_name[attr].num_classes
        for cls, row in rows.items():
            where = f"noise.{attr}.{cls}"
            if not 0 <= int(cls) < k:
                problems.append(f"{where}: class must be in 0..{k - 1}")
            shares = row.values() if isinstance(row, dict) else [row]
            bad = [v for v in shares if not 0.0 <= float(v) <= 1.0]
            if bad:
                problems.append(f"{where}: rate(s) {bad} not in [0, 1]")
            if not isinstance(row, dict):
                continue
            if any(not 0 <= int(c) < k or int(c) == int(cls) for c in row):
                problems.append(f"{where}: noisy classes must be other classes in 0..{k - 1}, "
                                f"got {sorted(row)}")
            if sum(map(float, row.values())) > 1.0 + 1e-9:
                problems.append(f"{where}: the shares add up to {sum(row.values()):g}, over 1")
            if attr == "hair_color" and schema.HAIR_COLOR_NO_HAIR in {int(cls), *map(int, row)}:
                problems.append(f"{where}: hair_color {schema.HAIR_COLOR_NO_HAIR} (no hair) "
                                "follows hair; confuse hair instead")
    return problems


# ---- drawing ------------------------------------------------------------------------------

@dataclass
class Canvas:
    """The label map, photo and a sketch tone layer, drawn with the same primitives."""
    label: Image.Image
    photo: Image.Image
    tone: Image.Image

    def __post_init__(self) -> None:
        self._d = [ImageDraw.Draw(im) for im in (self.label, self.photo, self.tone)]

    def shape(self, kind: str, xy: Any, cls: str, rgb: tuple[int, int, int], grey: int,
              **kw: Any) -> None:
        for d, fill in zip(self._d, (C[cls], rgb, grey)):
            getattr(d, kind)(xy, fill=fill, **kw)


def _ellipse(cx: float, cy: float, rx: float, ry: float) -> list[float]:
    return [cx - rx, cy - ry, cx + rx, cy + ry]


def _face_polygon(cx: float, cy: float, rx: float, ry: float, jaw: float, turn: float) -> list:
    """A face outline: round top, jaw squareness `jaw` in [0, 1], squeezed on the far side."""
    pts = []
    for t in np.linspace(0, 2 * np.pi, 48, endpoint=False):
        x, y = np.cos(t), np.sin(t)
        if y > 0:  # lower half: blend ellipse with a square jaw
            x = x * (1 - jaw) + np.sign(x) * min(abs(x) * 1.25, 1.0) * jaw * (1 - y ** 4)
        squeeze = 1 - 0.25 * turn if x * turn > 0 else 1 + 0.05 * turn
        pts.append((cx + rx * x * squeeze, cy + ry * y))
    return pts


def draw_pair(labels: dict[str, int], size: tuple[int, int], rng: np.random.Generator
              ) -> tuple[Image.Image, Image.Image, Image.Image, dict[str, Any]]:
    """One face: (label map L in bisenet order, photo RGB, sketch RGB, colour fields)."""
    w, h = size
    s = min(w, h)
    female = labels["gender"] == 1
    turn = 0.0 if labels["frontal_face"] == 0 else float(rng.choice([-1, 1]) * rng.uniform(0.6, 1))
    cx = w / 2 + rng.uniform(-0.04, 0.04) * s
    cy = h / 2 + rng.uniform(-0.02, 0.06) * s
    rx, ry = s * rng.uniform(0.2, 0.24) * (0.92 if female else 1.02), s * rng.uniform(0.27, 0.31)
    skin = tuple(int(v) for v in np.array([225, 185, 160]) * rng.uniform(0.75, 1.05))
    bg_grey = int(rng.integers(215, 250))
    bg = tuple(int(v) for v in rng.integers(150, 240, 3))
    cv = Canvas(Image.new("L", size, C["background"]), Image.new("RGB", size, bg),
                Image.new("L", size, bg_grey))
    hair = labels["hair"] == 0
    hc = labels["hair_color"]

    # clothes and neck
    cloth = tuple(int(v) for v in rng.integers(30, 200, 3))
    shoulder = rx * (1.9 if not female else 1.6)
    cv.shape("polygon", [(cx - shoulder, h), (cx - rx * 0.9, cy + ry * 1.35),
                         (cx + rx * 0.9, cy + ry * 1.35), (cx + shoulder, h)], "cloth", cloth, 120)
    cv.shape("rectangle", [cx - rx * 0.42, cy + ry * 0.6, cx + rx * 0.42, cy + ry * 1.4], "neck",
             skin, 215)
    # long hair falls behind the head
    if hair and (female or rng.random() < 0.15):
        cv.shape("rounded_rectangle", [cx - rx * 1.25, cy - ry * 1.05, cx + rx * 1.25,
                                       cy + ry * rng.uniform(0.9, 1.4)], "hair", HAIR_RGB[hc],
                 HAIR_GREY[hc], radius=int(rx * 0.6))
    # ears (the far one is hidden on a turned head), earrings at the lobes
    ear_dx = rx * (1.0 - 0.15 * abs(turn))
    lobes = []
    for side, cls in ((-1, "l_ear"), (1, "r_ear")):
        if turn * side > 0:
            continue
        ex = cx + side * ear_dx + turn * rx * 0.3
        cv.shape("ellipse", _ellipse(ex, cy + ry * 0.05, rx * 0.16, ry * 0.22), cls, skin, 205)
        lobes.append(ex + side * rx * 0.05)
    # face, with a square jaw for men
    jaw = rng.uniform(0.5, 0.8) if not female else rng.uniform(0.0, 0.15)
    cv.shape("polygon", _face_polygon(cx + turn * rx * 0.15, cy, rx, ry, jaw, turn), "skin",
             skin, 225)
    if labels["earring"] == 0:  # drawn over the face outline so it always shows
        er = max(2.5, s * 0.022)
        for ex in lobes:
            cv.shape("ellipse", _ellipse(ex, cy + ry * 0.3 + er, er, er * 1.3), "ear_r",
                     (230, 200, 60), 60)
    # hair on top
    if hair:
        top = [(cx - rx * 1.08, cy - ry * 0.25)]
        top += [(cx + rx * 1.1 * np.cos(t), cy - ry * 0.25 - ry * 0.95 * np.sin(t))
                for t in np.linspace(np.pi, 0, 20)]
        top += [(cx + rx * 1.08, cy - ry * 0.25), (cx + rx * 0.6, cy - ry * 0.62),
                (cx - rx * 0.2 + turn * rx * 0.3, cy - ry * 0.5), (cx - rx * 0.7, cy - ry * 0.6)]
        cv.shape("polygon", top, "hair", HAIR_RGB[hc], HAIR_GREY[hc])
    # features, shifted towards the side the head turns to
    fx = cx + turn * rx * 0.38
    eye_dx, eye_y = rx * 0.42, cy - ry * 0.12
    eye_pixels = []
    for side, brow, eye in ((-1, "l_brow", "l_eye"), (1, "r_brow", "r_eye")):
        far = turn * side > 0
        k = 0.7 if far else 1.0
        ex = fx + side * eye_dx * (0.75 if far else 1.0)
        bw = max(2, int(s * (0.018 if not female else 0.009)))
        cv.shape("line", [(ex - rx * 0.2 * k, eye_y - ry * 0.16), (ex + rx * 0.2 * k,
                          eye_y - ry * 0.19)], brow, (60, 45, 35), 50, width=bw)
        box = _ellipse(ex, eye_y, rx * 0.16 * k, ry * 0.065)
        cv.shape("ellipse", box, eye, (250, 250, 250), 240)
        eye_pixels.append(box)
        iris = tuple(int(v) for v in rng.integers(40, 140, 3))
        for d, fill in zip(cv._d[1:], (iris, 30)):
            d.ellipse(_ellipse(ex, eye_y, rx * 0.06 * k, ry * 0.055), fill=fill)
        if female:  # lashes: drawn on the eye, part of the eye region
            for d in cv._d[1:]:
                d.line([(box[0], box[1] + 1), (box[2], box[1] + 1)], fill=0, width=max(2, s // 110))
    cv.shape("polygon", [(fx, cy - ry * 0.05), (fx - rx * 0.12 + turn * rx * 0.1, cy + ry * 0.22),
                         (fx + rx * 0.12 + turn * rx * 0.1, cy + ry * 0.22)], "nose",
             tuple(int(v * 0.93) for v in skin), 200)
    lip_rgb = (185, 40, 60) if female else (170, 100, 95)
    my, mw = cy + ry * 0.48, rx * 0.36
    if labels["smile"] == 0:  # an open, upturned mouth
        cv.shape("chord", [fx - mw, my - ry * 0.2, fx + mw, my + ry * 0.16], "u_lip", lip_rgb, 90,
                 start=0, end=180)
        cv.shape("chord", [fx - mw * 0.8, my - ry * 0.12, fx + mw * 0.8, my + ry * 0.1], "mouth",
                 (90, 20, 30), 20, start=0, end=180)
    else:  # closed, neutral lips
        cv.shape("rectangle", [fx - mw * 0.85, my - ry * 0.045, fx + mw * 0.85, my], "u_lip",
                 lip_rgb, 95)
        cv.shape("rectangle", [fx - mw * 0.85, my, fx + mw * 0.85, my + ry * 0.05], "l_lip",
                 lip_rgb, 110)
    if not female and rng.random() < 0.8:  # stubble on the skin, below the mouth
        for d, fill in zip(cv._d[1:], ((120, 100, 90), 120)):
            pts = rng.uniform([-1, 0.62], [1, 0.9], (60, 2)) * [rx * 0.55, ry] + [fx, cy]
            for x, y in pts:
                d.point((x, y), fill=fill)

    label = np.asarray(cv.label)
    photo = np.asarray(cv.photo.filter(ImageFilter.GaussianBlur(0.6))).astype(np.int16)
    photo = np.clip(photo + rng.normal(0, 4, photo.shape).round(), 0, 255).astype(np.uint8)
    sketch = render_sketch(label, np.asarray(cv.tone), labels["style"], labels["hair_color"], rng)
    colours = _colour_fields(label, photo, rng)
    return (Image.fromarray(label), Image.fromarray(photo),
            Image.fromarray(np.repeat(sketch[..., None], 3, 2)), colours)


def _edges(label: np.ndarray, width: int) -> np.ndarray:
    """bool [H,W]: pixels on a boundary between classes, dilated to `width`."""
    e = np.zeros(label.shape, bool)
    e[:, 1:] |= label[:, 1:] != label[:, :-1]
    e[1:, :] |= label[1:, :] != label[:-1, :]
    if width > 1:
        e = np.asarray(Image.fromarray(e.astype(np.uint8) * 255).filter(
            ImageFilter.MaxFilter(width | 1))) > 0
    return e


def render_sketch(label: np.ndarray, tone: np.ndarray, style: int, hair_colour: int,
                  rng: np.random.Generator) -> np.ndarray:
    """Grey uint8 [H,W] sketch of the drawn label map in one of three styles."""
    h, w = label.shape
    yy, xx = np.mgrid[0:h, 0:w]
    hair = label == C["hair"]
    if style == 0:  # clean thin line art on white; hair as a flat tone
        out = np.full((h, w), 250, np.uint8)
        out[hair] = tone[hair]
        out[_edges(label, 1)] = 20
    elif style == 1:  # soft pencil: blurred tones, diagonal hatching in the dark parts
        soft = np.asarray(Image.fromarray(tone).filter(ImageFilter.GaussianBlur(2.5))).astype(float)
        hatch = ((xx + yy) % 6 < 2) & (soft < 170)
        out = (soft * 0.6 + 95).astype(np.uint8)
        out[hatch] = (out[hatch] * 0.6).astype(np.uint8)
        out[_edges(label, 2)] = 70
    else:  # heavy charcoal: posterised tones, thick dark outlines, paper grain
        out = np.where(tone < 130, 25, np.where(tone < 200, 120, 235)).astype(np.uint8)
        out[_edges(label, 4)] = 10
        out = np.clip(out + rng.normal(0, 10, out.shape), 0, 255).astype(np.uint8)
    if hair_colour == 2:  # red hair: a strand texture; golden: light streaks
        out[hair & (xx % 5 == 0)] = 60
    elif hair_colour == 4:
        out[hair & ((xx + 2 * yy) % 9 < 2)] = 255
    return out


def _colour_fields(label: np.ndarray, photo: np.ndarray, rng: np.random.Generator
                   ) -> dict[str, list[float]]:
    """FS2K's colour fields: skin_color a point (x, y) of the cheek, lip/eye mean RGB."""
    def mean_rgb(classes: list[str]) -> list[float]:
        sel = np.isin(label, [C[c] for c in classes])
        return [round(float(v), 2) for v in photo[sel].mean(0)] if sel.any() else []
    ys, xs = np.nonzero(label == C["skin"])
    k = rng.integers(len(xs))
    return {"skin_color": [int(xs[k]), int(ys[k])], "lip_color": mean_rgb(["u_lip", "l_lip"]),
            "eye_color": mean_rgb(["l_eye", "r_eye"])}


# ---- writing ------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Job:
    index: int
    image_name: str
    labels: dict[str, int]
    seed: int
    root: str
    label_orders: tuple[str, ...]


def _write_pair(job: _Job) -> tuple[str, dict[str, Any]]:
    rng = np.random.default_rng([job.seed, job.index])
    subset = job.image_name.split("/")[0]
    label, photo, sketch, colours = draw_pair(job.labels, SIZES[subset], rng)
    root = Path(job.root)
    fs2k = root / "FS2K"
    p = fs2k / f"{layout.photo_stem(job.image_name)}{layout.PHOTO_EXTENSION}"
    k = fs2k / f"{layout.sketch_stem(job.image_name)}{layout.SKETCH_EXTENSION[subset]}"
    photo.save(p, quality=92)
    sketch.save(k, **({"quality": 92} if k.suffix == ".jpg" else {}))
    for order in job.label_orders:
        m = remap(np.asarray(label), "bisenet", order)
        Image.fromarray(m).save(root / "parsing" / order / f"{job.image_name}.png")
    return job.image_name, colours


def _noise_row(row: Any) -> NoiseRow:
    if isinstance(row, dict):
        return {int(c): float(x) for c, x in row.items()}
    return float(row)


def _missing(value: list[float], form: int) -> Any:
    """FS2K's three spellings of a missing colour: a list with NaN, "nan", []."""
    return [float("nan")] * len(value) if form == 0 else ("nan" if form == 1 else [])


def _check_args(pairs: int, priors: dict, noise: dict, label_orders: Sequence[str],
                missing_color_rate: float) -> None:
    if pairs < MIN_PAIRS:
        raise ConfigError(f"pairs must be at least {MIN_PAIRS}, got {pairs}")
    for order in label_orders:
        if order not in LABEL_ORDERS:
            raise ConfigError(f"unknown label order {order!r}; known: {', '.join(LABEL_ORDERS)}")
    for attr, per_split in priors.items():
        a = schema.FS2K.attribute(attr)
        for split, w in per_split.items():
            if split not in SUBSET_SHARE or len(w) != a.num_classes or min(w) < 0 or sum(w) <= 0:
                raise ConfigError(f"priors[{attr}][{split}] must be {a.num_classes} non-negative "
                                 f"weights for split train or test, got {w!r}")
    problems = noise_problems(noise)
    if problems:
        raise ConfigError("; ".join(problems))
    if not 0.0 <= missing_color_rate <= 1.0:
        raise ConfigError(f"missing_color_rate must be in [0, 1], got {missing_color_rate}")


def generate(out_dir: str | Path, pairs: int = 2104, seed: int = 0, *,
             priors: dict[str, dict[str, Sequence[float]]] | None = None,
             noise: dict[str, dict[int, NoiseRow]] | None = None,
             label_orders: Sequence[str] = ("bisenet",), missing_color_rate: float = 0.01,
             workers: int | None = None, progress: bool = True) -> dict[str, Any]:
    """Write a synthetic FS2K into `out_dir` and return a JSON-able summary.

    `out_dir` must be absent or empty; write it beside its final place and move it there when
    complete (`esgar.io.building_dir`, as the download stage and `esgar synth` do).
    Writes `out_dir/FS2K/` (FS2K's layout), `out_dir/parsing/<order>/photoN/imageXXXX.png`
    (uint8 label maps, 19 CelebAMask-HQ classes in that parser's order), `label_noise.csv`
    (`image_name,split,attribute,true_label,noisy_label`, one row per flipped label) and
    `synthetic.json`. priors: {attribute: {split: class weights}}, default FS2K's counts.
    noise: {attribute: {true class: share flipped to other classes, or a confusion row
    {noisy class: share}}} (`apply_noise`), in both FS2K splits, so the validation split that
    prepare carves out of train and the test split carry it too.
    """
    out_dir = Path(out_dir)
    noise = {a: {int(c): _noise_row(r) for c, r in v.items()} for a, v in (noise or {}).items()}
    given = priors or {}
    _check_args(pairs, given, noise, label_orders, missing_color_rate)
    if out_dir.exists() and any(out_dir.iterdir()):
        raise OutputError(f"{out_dir} exists and is not empty; remove it or pick another folder")
    all_priors = {s: {a.name: given.get(a.name, {}).get(s, schema.FS2K_COUNTS[s][a.name])
                      for a in schema.FS2K.attributes} for s in ("train", "test")}
    n_split = dict(zip(("train", "test"), quota(pairs, [schema.FS2K_PAIRS["train"],
                                                        schema.FS2K_PAIRS["test"]])))
    records: dict[str, list[dict[str, Any]]] = {}
    jobs: list[_Job] = []
    flips_log: list[tuple[str, str, str, int, int]] = []
    counts: dict[str, dict[str, list[int]]] = {}
    numbers: dict[str, int] = {}  # image numbers run on across splits, as FS2K's do
    for si, split in enumerate(("train", "test")):
        n = int(n_split[split])
        # separate streams, so adding label noise changes no image
        rng = np.random.default_rng([seed, 1_000_003, si])
        true = assign_labels(n, all_priors[split], rng)
        subsets = _shuffled(quota(n, list(SUBSET_SHARE[split].values())), rng)
        noisy, flips = apply_noise(true, noise, np.random.default_rng([seed, 2_000_003, si]))
        names = list(SUBSET_SHARE[split])
        recs = []
        for i in range(n):
            subset = names[subsets[i]]
            numbers[subset] = numbers.get(subset, 0) + 1
            image_name = f"{subset}/image{numbers[subset]:04d}"
            jobs.append(_Job(len(jobs), image_name, {a: int(true[a][i]) for a in true},
                             seed, str(out_dir), tuple(label_orders)))
            recs.append({"image_name": image_name,
                         **{a.name: int(noisy[a.name][i]) for a in schema.FS2K.attributes}})
        flips_log += [(recs[i]["image_name"], split, a, t, v) for i, a, t, v in flips]
        counts[split] = {a.name: np.bincount(noisy[a.name], minlength=a.num_classes).tolist()
                         for a in schema.FS2K.attributes}
        records[split] = recs
    _make_dirs(out_dir, jobs, label_orders)
    colours = _draw_all(jobs, workers, progress)
    _write_annotations(out_dir, records, colours, missing_color_rate, seed)
    _write_noise_log(out_dir / "label_noise.csv", flips_log)
    summary = {"version": VERSION, "pairs": pairs, "seed": seed, "priors": all_priors,
               "noise": {a: {str(c): {str(t): x for t, x in r.items()} if isinstance(r, dict)
                             else r for c, r in v.items()} for a, v in noise.items()},
               "label_orders": list(label_orders), "missing_color_rate": missing_color_rate,
               "class_counts": counts, "flipped_labels": len(flips_log)}
    (out_dir / "synthetic.json").write_text(json.dumps(summary, indent=2, sort_keys=True))
    return summary


def _make_dirs(root: Path, jobs: list[_Job], label_orders: Sequence[str]) -> None:
    subsets = {j.image_name.split("/")[0] for j in jobs}
    for sub in subsets:
        n = sub.removeprefix("photo")
        (root / "FS2K" / "photo" / sub).mkdir(parents=True, exist_ok=True)
        (root / "FS2K" / "sketch" / f"sketch{n}").mkdir(parents=True, exist_ok=True)
        for order in label_orders:
            (root / "parsing" / order / sub).mkdir(parents=True, exist_ok=True)


def _draw_all(jobs: list[_Job], workers: int | None, show: bool) -> dict[str, dict]:
    workers = workers or os.cpu_count() or 1
    bar = log.progress(total=len(jobs), desc="synthetic FS2K", unit="pair", disable=not show)
    out = {}
    if workers == 1:
        for job in jobs:
            name, colours = _write_pair(job)
            out[name] = colours
            bar.update()
    else:
        with ProcessPoolExecutor(workers) as pool:
            for name, colours in pool.map(_write_pair, jobs, chunksize=16):
                out[name] = colours
                bar.update()
    bar.close()
    return out


def _write_annotations(root: Path, records: dict[str, list[dict]], colours: dict[str, dict],
                       missing_rate: float, seed: int) -> None:
    rng = np.random.default_rng([seed, 7])
    form = 0
    for split, recs in records.items():
        out = []
        for rec in recs:
            c = dict(colours[rec["image_name"]])
            for name in ("lip_color", "eye_color"):
                if not c[name] or rng.random() < missing_rate:
                    c[name] = _missing([0.0] * schema.COLOR_FIELDS[name], form % 3)
                    form += 1
            out.append({"image_name": rec["image_name"], **c,
                        **{a: rec[a] for a in schema.FS2K.names}})
        (root / "FS2K" / layout.ANNOTATION_FILES[split]).write_text(json.dumps(out))


def _write_noise_log(path: Path, flips: list[tuple[str, str, str, int, int]]) -> None:
    lines = ["image_name,split,attribute,true_label,noisy_label"]
    lines += [",".join(map(str, f)) for f in sorted(flips)]
    path.write_text("\n".join(lines) + "\n")
