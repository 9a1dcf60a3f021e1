"""Synthetic CelebA, CelebAMask-HQ and LFWA: drawn faces written in each dataset's published
layout, so that `esgar.data.celeba` and `esgar.data.lfwa` (and the stages after them) can run
without the real data.

Each face is drawn by the synthetic FS2K's `esgar.data.synthetic.draw_pair` from FS2K-style
labels mapped from the 40-attribute vector:

| attributes | drawn as (FS2K label) |
|---|---|
| Bald | no hair (hair 1, hair_color 3) |
| Black_Hair, Blond_Hair, Brown_Hair | that hair colour (hair_color 1, 4, 0) |
| Gray_Hair | drawn brown, then the photo's hair region recoloured light grey |
| none of those five | red hair (hair_color 2, a colour no attribute names) |
| Male | gender 0 (square jaw, often stubble, pale lips); else 1 |
| Wearing_Earrings | earring 0 (gold studs at the ear lobes) |
| Smiling | smile 0 (an open, upturned mouth) |
| (none) | frontal_face drawn at random (20 % turned heads), style 0 |

At most one of the five hair attributes is present per face (shares `HAIR_SHARES`). These
eight attributes are visible in the photo, so a model can learn them. The other 32 (e.g.
Attractive, Eyeglasses, Young, Wearing_Lipstick, No_Beard, Mouth_Slightly_Open) are drawn
independently of the drawing, each present with a seeded prior in 5-40 %: they do not show in
the images and a model cannot learn them from these stand-ins (expect chance-level accuracy
for them; that is a property of the stand-in, not a bug). The drawing's own randomness (men's
stubble, women's lip colour, an open mouth with a smile) correlates loosely with Male and
Smiling only.

Layouts written (under `out_dir`, which must be absent or empty; built beside it and moved
into place whole, `esgar.io.building_dir`):
- `generate_celeba`: `CelebA/` with `img_align_celeba/000001.jpg...`, `list_attr_celeba.txt`
  (count line, header with a trailing space, `%2d` values -1/1 joined by one space),
  and beside it `parsing/bisenet/<image_name>.png` (the drawn label maps, canonical = BiSeNet
  order, where the masks stage imports them: the real set has none, and is parsed),
  `list_eval_partition.txt` (`000001.jpg 0`), `list_landmarks_align_celeba.txt` (landmarks
  measured on the drawn label map: eye centres, nose centre, mouth corners; column widths
  assumed, the format is whitespace-separated). Splits seeded, 80/10/10 like CelebA's.
- `generate_celebamask_hq`: `CelebAMask-HQ/` with `CelebA-HQ-img/<k>.jpg` (square),
  `CelebAMask-HQ-mask-anno/<k // 2000>/<%05d k>_<part>.png` (binary 0/255 PNGs at
  `mask_size`, one per present part, split out of the drawn label map; the skin mask covers
  the facial features too, as the real annotations do, so g_mask.py's order matters and the
  assembled map equals the drawn one), `CelebAMask-HQ-attribute-anno.txt` (single spaces),
  `CelebA-HQ-to-CelebA-mapping.txt` (`idx orig_idx orig_file`, column padding assumed). Beside
  it, `list_eval_partition.txt` (CelebA's file, for the mapped CelebA files only: each drawn
  from the range CelebA's partition gives the image's split, train 000001-162770, val
  162771-182637, test 182638-202599) and `label_maps/<k>.png` (the drawn maps, canonical
  order, image size: the reference `assemble_label_map` is checked against).
- `generate_lfwa`: `LFWA/` with `lfw/<Name>/<Name>_0001.jpg` (synthetic people
  `Person_0001`...), `lfw_att_40.mat` (`name`: N x 1 cell of backslash paths, `label`: N x 40
  double 0/1, `AttrName`: 1 x 40 cell) and `indices_train_test.mat` (`indices_img_train`,
  `indices_img_test`: 1-based column vectors, people split in halves so no identity is in both;
  `indices_identity_train/test`: 1-based indices into the sorted list of people, an assumed
  meaning); beside it `parsing/bisenet/<image_name>.png` as for CelebA. The release's files
  are MATLAB v7.3 (HDF5); `mat_version="5"` (default) writes v5 with scipy (a fixed header
  text, so the bytes depend on the seed only), `"7.3"` writes MATLAB's v7.3 layout with h5py
  (needed then).

Output is deterministic for a seed: labels, splits and every face's drawing come from random
generators seeded by (seed, purpose, image index).
"""

from __future__ import annotations

import io
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import scipy.io
from PIL import Image

from esgar import log
from esgar.data import celeba as cb
from esgar.data import lfwa as lf
from esgar.data.synthetic import draw_pair, quota
from esgar.errors import ConfigError, OutputError
from esgar.io import building_dir, write_json, write_text, write_with
from esgar.masks.labels import CANONICAL_CLASSES, remap
from esgar.schema import load_schema

__all__ = ["HAIR_SHARES", "VISIBLE", "draw_attributes", "draw_face", "fs2k_labels",
           "generate_celeba", "generate_celebamask_hq", "generate_lfwa"]

VERSION = 1
OWNER = "synthetic-faces"
MIN_IMAGES = 10
PARSING = "parsing/bisenet"  # where the masks stage imports label maps from (masks.import.dir)
HAIR_ATTRIBUTES: tuple[str, ...] = ("Bald", "Black_Hair", "Blond_Hair", "Brown_Hair",
                                    "Gray_Hair")
HAIR_SHARES: dict[str | None, float] = {"Bald": 0.05, "Black_Hair": 0.24, "Blond_Hair": 0.15,
                                        "Brown_Hair": 0.2, "Gray_Hair": 0.06, None: 0.3}
FS2K_HAIR_COLOR: dict[str | None, int] = {"Black_Hair": 1, "Blond_Hair": 4, "Brown_Hair": 0,
                                          "Gray_Hair": 0, None: 2}
VISIBLE: tuple[str, ...] = (*HAIR_ATTRIBUTES, "Male", "Smiling", "Wearing_Earrings")
PRIOR_RANGE = (0.05, 0.40)
TURNED_SHARE = 0.2
CELEBA_SPLITS: dict[str, float] = {"train": 0.8, "val": 0.1, "test": 0.1}
PARTITION_CODE: dict[str, str] = {v: k for k, v in cb.PARTITION_SPLITS.items()}
CELEBA_FILE_RANGES: dict[str, tuple[int, int]] = {
    "train": (1, 162770), "val": (162771, 182637), "test": (182638, 202599)}
# parts the real annotators' skin polygon covers: painted after skin, they overwrite it
SKIN_COVERS: tuple[str, ...] = ("nose", "l_eye", "r_eye", "l_brow", "r_brow", "mouth", "u_lip",
                                "l_lip")
_MAT5_HEADER = "MATLAB 5.0 MAT-file, written by esgar.data.synthetic_faces"
_MAT73_HEADER = "MATLAB 7.3 MAT-file, written by esgar.data.synthetic_faces HDF5 schema 1.00 ."


# ---- labels and drawing ----------------------------------------------------------------------

def draw_attributes(n: int, names: Sequence[str], rng: np.random.Generator
                    ) -> tuple[np.ndarray, dict[str, float]]:
    """(int64 [n, len(names)] class indices (1 present), {attribute: prior}). Each attribute
    is present with a prior drawn in `PRIOR_RANGE`; the five hair attributes are one-hot (or
    all absent) with `HAIR_SHARES`."""
    names = list(names)
    priors = {a: round(float(rng.uniform(*PRIOR_RANGE)), 3) for a in names}
    labels = (rng.random((n, len(names))) < np.array([priors[a] for a in names])).astype(np.int64)
    cats = list(HAIR_SHARES)
    shares = np.array(list(HAIR_SHARES.values()))
    pick = rng.choice(len(cats), size=n, p=shares / shares.sum())
    for a in HAIR_ATTRIBUTES:
        labels[:, names.index(a)] = [cats[k] == a for k in pick]
        priors[a] = HAIR_SHARES[a]
    return labels, priors


def fs2k_labels(attrs: Mapping[str, int], rng: np.random.Generator) -> dict[str, int]:
    """draw_pair's FS2K-style labels for one 40-attribute vector ({name: 0/1})."""
    hair = next((a for a in HAIR_ATTRIBUTES if attrs[a]), None)
    bald = hair == "Bald"
    return {"hair": 1 if bald else 0, "hair_color": 3 if bald else FS2K_HAIR_COLOR[hair],
            "gender": 0 if attrs["Male"] else 1, "earring": 0 if attrs["Wearing_Earrings"] else 1,
            "smile": 0 if attrs["Smiling"] else 1,
            "frontal_face": int(rng.random() < TURNED_SHARE), "style": 0}


def _grey_hair(photo: Image.Image, label: np.ndarray) -> Image.Image:
    arr = np.asarray(photo).copy()
    hair = label == CANONICAL_CLASSES.index("hair")
    lum = arr[hair].astype(float).mean(axis=1, keepdims=True)
    arr[hair] = np.clip(lum * 0.4 + 140, 0, 255).astype(np.uint8)
    return Image.fromarray(arr)


def draw_face(attrs: Mapping[str, int], size: tuple[int, int], rng: np.random.Generator
              ) -> tuple[np.ndarray, Image.Image]:
    """One face: (label map uint8 [H, W] in canonical class order, RGB photo of `size` (W, H))."""
    label, photo, _sketch, _colours = draw_pair(fs2k_labels(attrs, rng), size, rng)
    label = remap(np.asarray(label), "bisenet", "canonical")
    if attrs["Gray_Hair"]:
        photo = _grey_hair(photo, label)
    return label, photo


def _faces(labels: np.ndarray, names: Sequence[str], size: tuple[int, int], seed: int,
           desc: str, progress: bool) -> Iterator[tuple[int, np.ndarray, Image.Image]]:
    for i in log.progress(range(len(labels)), desc=desc, unit="img", disable=not progress):
        attrs = dict(zip(names, labels[i].tolist(), strict=True))
        yield i, *draw_face(attrs, size, np.random.default_rng([seed, 3, i]))


# ---- common ----------------------------------------------------------------------------------

def _start(out_dir: str | Path, images: int) -> Path:
    out_dir = Path(out_dir)
    if images < MIN_IMAGES:
        raise ConfigError(f"images must be at least {MIN_IMAGES}, got {images}")
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise OutputError(f"{out_dir} exists and is not an empty folder; remove it or pick "
                          "another folder")
    return out_dir


def _splits(n: int, shares: Mapping[str, float], rng: np.random.Generator) -> list[str]:
    counts = quota(n, list(shares.values()))
    return [list(shares)[k] for k in rng.permutation(np.repeat(np.arange(len(counts)), counts))]


def _save_jpeg(path: Path, image: Image.Image) -> None:
    write_with(path, lambda tmp: image.save(tmp, format="JPEG", quality=90))


def _save_png(path: Path, arr: np.ndarray) -> None:
    write_with(path, lambda tmp: Image.fromarray(arr).save(tmp, format="PNG"))


def _attr_list(names: Sequence[str], files: Sequence[str], labels: np.ndarray,
               celeba_style: bool) -> str:
    """CelebA's attribute list: count, header, `<file> <-1|1 ...>` (class 0 is -1)."""
    values = labels * 2 - 1
    if celeba_style:  # list_attr_celeba.txt: header with a trailing space, `%2d` values
        head = " ".join(names) + " "
        rows = [f"{f} " + " ".join(f"{v:2d}" for v in row) for f, row in zip(files, values,
                                                                            strict=True)]
    else:  # CelebAMask-HQ-attribute-anno.txt: single spaces
        head = " ".join(names)
        rows = [f"{f} " + " ".join(str(v) for v in row) for f, row in zip(files, values,
                                                                         strict=True)]
    return "\n".join([str(len(files)), head, *rows]) + "\n"


def _summary(dataset: str, root: str, labels: np.ndarray, names: Sequence[str],
             splits: Sequence[str], priors: dict[str, float], **extra: Any) -> dict[str, Any]:
    counts = {s: {a: np.bincount(labels[[x == s for x in splits], j], minlength=2).tolist()
                  for j, a in enumerate(names)} for s in dict.fromkeys(splits)}
    return {"version": VERSION, "dataset": dataset, "root": root, "images": len(labels),
            "priors": priors, "class_counts": counts, "visible": list(VISIBLE),
            "invisible": [a for a in names if a not in VISIBLE], **extra}


# ---- CelebA ----------------------------------------------------------------------------------

def _centre(label: np.ndarray, classes: Sequence[str]) -> tuple[int, int]:
    ys, xs = np.nonzero(np.isin(label, [CANONICAL_CLASSES.index(c) for c in classes]))
    return (int(round(xs.mean())), int(round(ys.mean()))) if len(xs) else (0, 0)


def _landmarks(label: np.ndarray) -> list[int]:
    """CelebA's 10 landmarks on a drawn map: eyes (image-left first), nose, mouth corners."""
    eyes = sorted([_centre(label, ["l_eye"]), _centre(label, ["r_eye"])])
    ys, xs = np.nonzero(np.isin(label, [CANONICAL_CLASSES.index(c)
                                         for c in ("mouth", "u_lip", "l_lip")]))
    corners = [(0, 0), (0, 0)]
    if len(xs):
        corners = [(int(x), int(round(ys[xs == x].mean()))) for x in (xs.min(), xs.max())]
    return [v for point in (*eyes, _centre(label, ["nose"]), *corners) for v in point]


def generate_celeba(out_dir: str | Path, images: int = 200, seed: int = 0, *,
                    size: tuple[int, int] = (178, 218), progress: bool = True) -> dict[str, Any]:
    """Write a synthetic CelebA (module docstring) to `out_dir/CelebA` and a summary to
    `out_dir/synthetic.json`; return the summary. `size`: (W, H) of the images."""
    out_dir = _start(out_dir, images)
    names = load_schema("celeba").names
    rng = np.random.default_rng([seed, 1])
    labels, priors = draw_attributes(images, names, rng)
    splits = _splits(images, CELEBA_SPLITS, rng)
    files = [f"{i + 1:06d}.jpg" for i in range(images)]
    with building_dir(out_dir, OWNER) as tmp:
        root = tmp / "CelebA"
        marks = []
        for i, label, photo in _faces(labels, names, size, seed, "synthetic CelebA", progress):
            _save_jpeg(root / cb.IMAGE_FOLDERS[0] / files[i], photo)
            _save_png(tmp / PARSING / f"{cb.IMAGE_FOLDERS[0]}/{files[i][:-4]}.png", label)
            marks.append(_landmarks(label))
        write_text(root / cb.ATTR_FILE, _attr_list(names, files, labels, celeba_style=True))
        write_text(root / cb.PARTITION_FILE, "".join(
            f"{f} {PARTITION_CODE[s]}\n" for f, s in zip(files, splits, strict=True)))
        write_text(root / cb.LANDMARKS_FILE, "\n".join(
            [str(images), " ".join(cb.LANDMARK_NAMES),
             *(f"{f}" + "".join(f" {v:4d}" for v in m) for f, m in zip(files, marks,
                                                                        strict=True))]) + "\n")
        summary = _summary("celeba", "CelebA", labels, names, splits, priors, seed=seed,
                           size=list(size))
        write_json(tmp / "synthetic.json", summary)
    return summary


# ---- CelebAMask-HQ ---------------------------------------------------------------------------

def _celeba_numbers(splits: Sequence[str], rng: np.random.Generator) -> list[int]:
    """A distinct CelebA file number per image, from the range of its split."""
    out = [0] * len(splits)
    for split, (lo, hi) in CELEBA_FILE_RANGES.items():
        members = [i for i, s in enumerate(splits) if s == split]
        for i, k in zip(members, rng.choice(hi - lo + 1, size=len(members), replace=False),
                        strict=True):
            out[i] = lo + int(k)
    return out


def _write_masks(mask_dir: Path, hq_id: int, label: np.ndarray, mask_size: int) -> None:
    """One binary PNG per present part, in CelebAMask-HQ's layout."""
    small = np.asarray(Image.fromarray(label).resize((mask_size, mask_size), Image.NEAREST))
    for part in cb.MASK_PARTS:
        covered = [part, *SKIN_COVERS] if part == "skin" else [part]
        inside = np.isin(small, [CANONICAL_CLASSES.index(c) for c in covered])
        if inside.any():
            _save_png(cb.mask_path(mask_dir, hq_id, part), inside.astype(np.uint8) * 255)


def _mapping(numbers: Sequence[int]) -> str:
    rows = [f"{'idx':<11}{'orig_idx':<11}orig_file"]
    rows += [f"{i:<11}{n - 1:<11}{n:06d}.jpg" for i, n in enumerate(numbers)]
    return "\n".join(rows) + "\n"


def generate_celebamask_hq(out_dir: str | Path, images: int = 40, seed: int = 0, *,
                           size: int = 256, mask_size: int | None = None,
                           progress: bool = True) -> dict[str, Any]:
    """Write a synthetic CelebAMask-HQ (module docstring) to `out_dir/CelebAMask-HQ`, with
    CelebA's `list_eval_partition.txt` and the drawn `label_maps/` beside it; return the
    summary (also in `out_dir/synthetic.json`). `size`: the square images' side; `mask_size`:
    the masks' side (default size // 2, the release's 1024 / 512)."""
    out_dir = _start(out_dir, images)
    mask_size = mask_size or max(1, size // 2)
    names = load_schema("celeba").names
    rng = np.random.default_rng([seed, 1])
    labels, priors = draw_attributes(images, names, rng)
    splits = _splits(images, CELEBA_SPLITS, rng)
    numbers = _celeba_numbers(splits, rng)
    with building_dir(out_dir, OWNER) as tmp:
        root = tmp / "CelebAMask-HQ"
        for i, label, photo in _faces(labels, names, (size, size), seed,
                                      "synthetic CelebAMask-HQ", progress):
            _save_jpeg(root / cb.HQ_IMAGE_FOLDER / f"{i}.jpg", photo)
            _save_png(tmp / "label_maps" / f"{i}.png", label)
            _write_masks(root / cb.HQ_MASK_FOLDER, i, label, mask_size)
        files = [f"{i}.jpg" for i in range(images)]
        write_text(root / cb.HQ_ATTR_FILE, _attr_list(names, files, labels, celeba_style=False))
        write_text(root / cb.HQ_MAPPING_FILE, _mapping(numbers))
        write_text(tmp / cb.PARTITION_FILE, "".join(
            f"{n:06d}.jpg {PARTITION_CODE[s]}\n" for n, s in sorted(zip(numbers, splits,
                                                                       strict=True))))
        summary = _summary("celebamask_hq", "CelebAMask-HQ", labels, names, splits, priors,
                           seed=seed, size=size, mask_size=mask_size)
        write_json(tmp / "synthetic.json", summary)
    return summary


# ---- LFWA ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Cell:
    """A MATLAB cell array of strings: N x 1, or 1 x N where `row`."""

    values: list[str]
    row: bool = False


def _mat5_bytes(fields: Mapping[str, Any]) -> bytes:
    data = {}
    for key, v in fields.items():
        if isinstance(v, _Cell):
            arr = np.empty((1, len(v.values)) if v.row else (len(v.values), 1), dtype=object)
            for j, s in enumerate(v.values):
                arr.flat[j] = s
            data[key] = arr
        else:
            data[key] = np.asarray(v, dtype=float)
    buf = io.BytesIO()
    scipy.io.savemat(buf, data, format="5", oned_as="column")
    raw = bytearray(buf.getvalue())
    raw[:116] = _MAT5_HEADER.ljust(116).encode("ascii")  # scipy writes the time here
    return bytes(raw)


def _write_mat73(tmp: Path, fields: Mapping[str, Any]) -> None:
    """MATLAB's v7.3 layout: HDF5 after a 512-byte MATLAB header, dimensions reversed, cells
    as object references into `#refs#`, chars as uint16 codes."""
    import h5py

    with h5py.File(tmp, "w", userblock_size=512) as f:
        refs = f.create_group("#refs#")
        for key, v in fields.items():
            if isinstance(v, _Cell):
                targets = []
                for j, s in enumerate(v.values):
                    d = refs.create_dataset(f"{key}_{j}", data=np.array(
                        [ord(c) for c in s], dtype=np.uint16).reshape(-1, 1))
                    d.attrs["MATLAB_class"] = np.bytes_("char")
                    d.attrs["MATLAB_int_decode"] = np.int32(2)
                    targets.append(d.ref)
                shape = (len(targets), 1) if v.row else (1, len(targets))
                ds = f.create_dataset(key, data=np.array(targets, dtype=h5py.ref_dtype
                                                         ).reshape(shape))
                ds.attrs["MATLAB_class"] = np.bytes_("cell")
            else:
                arr = np.asarray(v, dtype=float)
                ds = f.create_dataset(key, data=(arr.reshape(-1, 1) if arr.ndim == 1 else arr).T)
                ds.attrs["MATLAB_class"] = np.bytes_("double")
    header = _MAT73_HEADER.ljust(116).encode("ascii") + b" " * 8 + b"\x00\x02IM"
    with open(tmp, "r+b") as fh:
        fh.write(header.ljust(512, b"\x00"))


def _write_mat(path: Path, fields: Mapping[str, Any], version: str) -> None:
    if version == "5":
        write_with(path, lambda tmp: tmp.write_bytes(_mat5_bytes(fields)))
    else:
        write_with(path, lambda tmp: _write_mat73(tmp, fields))


def _people(images: int, people: int, rng: np.random.Generator) -> np.ndarray:
    """Person index per image, sorted: every person has at least one image."""
    owner = np.concatenate([np.arange(people), rng.integers(0, people, images - people)])
    return np.sort(owner)


def _check_lfwa_args(images: int, people: int, mat_version: str) -> None:
    if not 2 <= people <= images:
        raise ConfigError(f"people must be in 2..images ({images}), got {people}")
    if mat_version not in ("5", "7.3"):
        raise ConfigError(f"mat_version must be '5' or '7.3', got {mat_version!r}")
    if mat_version == "7.3":
        try:
            import h5py  # noqa: F401
        except ImportError:
            raise ConfigError("mat_version='7.3' needs the h5py package (pip install h5py)"
                              ) from None


def generate_lfwa(out_dir: str | Path, images: int = 40, seed: int = 0, *, size: int = 250,
                  people: int | None = None, mat_version: str = "5", progress: bool = True
                  ) -> dict[str, Any]:
    """Write a synthetic LFWA+ (module docstring) to `out_dir/LFWA`; return the summary (also in
    `out_dir/synthetic.json`). `size`: the square images' side (LFW's is 250); `people`: the
    number of identities (default images // 3, at least 2), split in train/test halves."""
    out_dir = _start(out_dir, images)
    people = people or max(2, images // 3)
    _check_lfwa_args(images, people, mat_version)
    names = load_schema("lfwa").names
    rng = np.random.default_rng([seed, 1])
    labels, priors = draw_attributes(images, names, rng)
    owner = _people(images, people, rng)
    male = rng.random(people) < priors["Male"]
    labels[:, names.index("Male")] = male[owner]  # one gender per person
    person = [f"Person_{p + 1:04d}" for p in range(people)]
    in_train = np.zeros(people, bool)
    in_train[rng.permutation(people)[: int(quota(people, [1, 1])[0])]] = True
    number = [int((owner[:i] == owner[i]).sum()) + 1 for i in range(images)]
    rel = [f"{person[o]}/{person[o]}_{k:04d}.jpg" for o, k in zip(owner, number, strict=True)]
    splits = ["train" if in_train[o] else "test" for o in owner]
    with building_dir(out_dir, OWNER) as tmp:
        root = tmp / "LFWA"
        for i, label, photo in _faces(labels, names, (size, size), seed, "synthetic LFWA",
                                      progress):
            _save_jpeg(root / lf.IMAGE_FOLDER / rel[i], photo)
            _save_png(tmp / PARSING / f"{lf.IMAGE_FOLDER}/{rel[i][:-4]}.png", label)
        _write_mat(root / lf.ATTR_FILE, {
            lf.NAME_FIELD: _Cell([r.replace("/", "\\") for r in rel]),
            lf.LABEL_FIELD: labels, lf.ATTR_NAME_FIELD: _Cell(list(names), row=True)},
            mat_version)
        rows = np.arange(1, images + 1)
        _write_mat(root / lf.SPLIT_FILE, {
            lf.SPLIT_FIELDS["train"]: rows[in_train[owner]],
            lf.SPLIT_FIELDS["test"]: rows[~in_train[owner]],
            "indices_identity_train": np.flatnonzero(in_train) + 1,
            "indices_identity_test": np.flatnonzero(~in_train) + 1}, mat_version)
        summary = _summary("lfwa", "LFWA", labels, names, splits, priors, seed=seed, size=size,
                           people=people, mat_version=mat_version)
        write_json(tmp / "synthetic.json", summary)
    return summary
