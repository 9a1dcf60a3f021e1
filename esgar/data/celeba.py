"""Read CelebA and CelebAMask-HQ, in their published layouts, into the project's sample table.

Every problem is gathered into one `Report` (the FS2K reader's): a record that cannot be used
is dropped and reported with its file and line, a harmless oddity is kept and reported. Only a
folder that cannot be used at all raises `DatasetError`.

The table (`read_celeba`, `read_celebamask_hq`; `esgar.data.lfwa.read_lfwa` alike) has one row
per usable image, sorted by `sample_id`:

| column | meaning |
|---|---|
| `sample_id` | `image_name` with "/" replaced by "_": `img_align_celeba_000001` |
| `image_name` | the image's path under the root, POSIX, no extension: `img_align_celeba/000001` |
| `subset` | the image folder: `img_align_celeba`, `CelebA-HQ-img`, `lfw` |
| `dataset_split` | `train`, `val` or `test`: the dataset's own split |
| `photo_path`, `sketch_path` | both the image, `str(root / relative path)`, POSIX (photos only) |
| `width`, `height` | from the image header (opened lazily, not decoded) |
| `<attribute>` | int64 class per attribute, in schema order (0 absent, 1 present) |
| landmarks | CelebA only, where `list_landmarks_align_celeba.txt` is present: its 10 columns |

CelebA (Liu et al., ICCV 2015)::

    <root>/                                (the Google Drive layout: the lists under Anno/ and
      list_attr_celeba.txt                  Eval/, the images under Img/, is found too)
      list_eval_partition.txt
      list_landmarks_align_celeba.txt      (optional)
      img_align_celeba/000001.jpg ...      (178x218 JPEGs; img_align_celeba_png/ also found)

- `list_attr_celeba.txt`: line 1 the image count, line 2 the 40 attribute names (a trailing
  space), then `000001.jpg -1  1  1 -1 ...`: the file name and 40 values, -1 (absent, class 0)
  or 1 (present, class 1), each printed `%2d` and separated by one space, so values are split
  on any run of spaces.
- `list_eval_partition.txt`: `000001.jpg 0`, 0 train, 1 val, 2 test.
- `list_landmarks_align_celeba.txt`: count line, header `lefteye_x lefteye_y righteye_x
  righteye_y nose_x nose_y leftmouth_x leftmouth_y rightmouth_x rightmouth_y`, then the file
  name and 10 integers. Cheap to read: read into those 10 columns (nullable Int64 where a row
  lacks them). `list_bbox_celeba.txt` (header `image_id x_1 y_1 width height`) and
  `list_landmarks_celeba.txt` describe the in-the-wild images (`img_celeba/`), not the aligned
  crops this reader reads, and `identity_CelebA.txt` is not an attribute: all are ignored.

CelebAMask-HQ (Lee et al., CVPR 2020)::

    <root>/
      CelebA-HQ-img/0.jpg ... 29999.jpg         1024x1024
      CelebAMask-HQ-mask-anno/<k // 2000>/<%05d k>_<part>.png   512x512, one per present part
      CelebAMask-HQ-attribute-anno.txt          as list_attr_celeba.txt: `0.jpg -1 1 ...`
      CelebA-HQ-to-CelebA-mapping.txt           `idx orig_idx orig_file`, `0 119613 119614.jpg`

The release has no split of its own ("we use the same train/val/test split as the CelebA
dataset"): a row's split is its CelebA file's in CelebA's `list_eval_partition.txt`, given as
`partition_file=`, else looked for in the root (and root/Eval). `assemble_label_map` paints the
part masks as the official `face_parsing/Data_preprocessing/g_mask.py` does: in its
`label_list` order (`MASK_PARTS`), a later part overwriting an earlier one, any non-zero pixel
of a mask's first channel (cv2's, i.e. blue) inside the part; unlike g_mask.py it numbers the
classes in the canonical (BiSeNet) order. (g_mask.py's own numbering, part index + 1, is
`esgar.masks.labels.PARSENET_CLASSES`.) Masks of another size than 512x512 are resized with
nearest neighbour. Mask problems: a file name that is not `<id>_<part>.png`, a part not among the
18, a mask for an image id without a usable row, a mask outside its `id // 2000` folder (which
g_mask.py would not find; ignored): warnings. A mask whose header cannot be read drops its row
(error); a mask that is not binary (values other than 0 and 255 / 1) is read as g_mask.py reads
it, non-zero inside, with a warning, and a mask whose pixel data cannot be decoded leaves its
row without a label map (error), both found by `write_label_maps`, which decodes them.

Verified against public sources:
- list_attr_celeba.txt's count line, header line with trailing space and `%2d` values; the
  Anno/Eval/Img layout, the landmark and bbox headers: openvinotoolkit/datumaro
  `src/datumaro/plugins/data_formats/celeba/align_celeba.py`, and copies of the file's first
  lines in several repositories' READMEs and docstrings (found by the `code` search).
- list_eval_partition.txt `000001.jpg 0`, 0/1/2 = train/val/test: datumaro (`SUBSETS`), and
  github.com/d-li14/face-attribute-prediction issue #5.
- CelebAMask-HQ's part order, the `k // 2000` folders, `%05d_<part>.png` names and 512x512
  masks: switchablenorms/CelebAMask-HQ `face_parsing/Data_preprocessing/g_mask.py`.
- CelebAMask-HQ-attribute-anno.txt's layout (`30000`, the header, `0.jpg -1 1 1 ...`): a copy
  of the file on huggingface.co (spaces/LogicGoInfotechSpaces/Smile_Changer). The mapping file's
  header and whitespace-separated rows, idx 0..29999, orig_idx 0-based (119613 ->
  119614.jpg): several public loaders (e.g. mit-han-lab/anycost-gan
  `thirdparty/celeba_hq_split.py`) and the release README (cfinlay/ffjord-rnode
  `data/CelebAMask-HQ/README.txt`, "the same train/val/test split as the CelebA dataset").

Assumed: file names are plain names (no folders; one with a folder or `..` is dropped as a
hostile name); a count line that is not a number is a warning (the header is then line 2, or
line 1 where line 1 is the header); a header with the schema's names in another order is read by
name (warning); the mapping file may carry extra columns (CelebA-HQ's own list adds md5 sums).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image

from esgar import log
from esgar.data.fs2k import Report
from esgar.errors import EsgarError
from esgar.io import write_with
from esgar.masks.labels import CANONICAL_CLASSES
from esgar.schema import Schema, load_schema

__all__ = ["ATTR_FILE", "AttributeList", "BASE_COLUMNS", "Candidate", "DatasetError",
           "HQ_ATTR_FILE", "HQ_IMAGE_FOLDER", "HQ_MAPPING_FILE", "HQ_MASK_FOLDER",
           "LANDMARKS_FILE", "LANDMARK_NAMES", "MASK_PARTS", "MaskReadError", "PARTITION_FILE",
           "assemble_label_map", "attach_images", "find_celeba_files",
           "find_celebamask_hq_files", "image_size", "make_row", "mask_path", "no_usable_row",
           "read_attribute_list", "read_celeba", "read_celebamask_hq", "read_partition",
           "report_orphans", "require_layout", "to_table", "write_label_maps"]

ATTR_FILE = "list_attr_celeba.txt"
PARTITION_FILE = "list_eval_partition.txt"
LANDMARKS_FILE = "list_landmarks_align_celeba.txt"
LANDMARK_NAMES: tuple[str, ...] = (
    "lefteye_x", "lefteye_y", "righteye_x", "righteye_y", "nose_x", "nose_y",
    "leftmouth_x", "leftmouth_y", "rightmouth_x", "rightmouth_y")
IMAGE_FOLDERS: tuple[str, ...] = ("img_align_celeba", "img_align_celeba_png")
LIST_DIRS: tuple[str, ...] = ("", "Anno", "Eval")  # "": the root itself
IMAGE_PARENTS: tuple[str, ...] = ("", "Img")
PARTITION_SPLITS: dict[str, str] = {"0": "train", "1": "val", "2": "test"}
VALUE_CLASSES: dict[str, int] = {"-1": 0, "1": 1}
IMAGE_EXTENSIONS: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".bmp")

HQ_IMAGE_FOLDER = "CelebA-HQ-img"
HQ_MASK_FOLDER = "CelebAMask-HQ-mask-anno"
HQ_ATTR_FILE = "CelebAMask-HQ-attribute-anno.txt"
HQ_MAPPING_FILE = "CelebA-HQ-to-CelebA-mapping.txt"
HQ_MAPPING_COLUMNS: tuple[str, ...] = ("idx", "orig_idx", "orig_file")
HQ_IDS_PER_FOLDER = 2000
# g_mask.py's label_list: the order the parts are painted in (a later part overwrites).
MASK_PARTS: tuple[str, ...] = (
    "skin", "nose", "eye_g", "l_eye", "r_eye", "l_brow", "r_brow", "l_ear", "r_ear", "mouth",
    "u_lip", "l_lip", "hair", "hat", "ear_r", "neck_l", "neck", "cloth")
_SINGLE_CHANNEL = ("1", "L", "I", "I;16", "F")
_MASK_NAME = re.compile(r"^(?P<id>\d+)_(?P<part>[A-Za-z_]+)\.png$")
_HQ_NAME = re.compile(r"^(?P<id>0|[1-9]\d*)\.jpg$")

BASE_COLUMNS: tuple[str, ...] = ("sample_id", "image_name", "subset", "dataset_split",
                                 "photo_path", "sketch_path", "width", "height")


class DatasetError(EsgarError, ValueError):
    """The dataset folder cannot be used; the message says what is missing and where."""


class MaskReadError(DatasetError):
    """A part mask cannot be decoded; `path` is the mask."""

    def __init__(self, path: Path, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path


# ---- text lists -------------------------------------------------------------------------------

def _read_lines(path: Path) -> list[str]:
    try:
        return path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise DatasetError(f"{path}: file missing") from None
    except (OSError, UnicodeDecodeError) as e:
        raise DatasetError(f"{path}: not a readable text file ({e})") from None


def _plain_name(name: str) -> bool:
    """A file name without folders, so a list cannot point outside its image folder."""
    return name not in ("", ".", "..") and "/" not in name and "\\" not in name


def _count_line(lines: list[str], path: Path, names: Sequence[str], report: Report
                ) -> tuple[int | None, int]:
    """(the count on line 1 or None, index of the header line)."""
    first = lines[0].strip() if lines else ""
    if first.isdigit():
        return int(first), 1
    if first.split() == list(names) or set(first.split()) == set(names):
        report.add("warning", "no_count_line", path,
                   "line 1: the header, not the image count; reading on")
        return None, 0
    report.add("warning", "bad_count_line", path,
               f"line 1: {first[:40]!r} is not the image count; taking line 2 as the header")
    return None, 1


def _header_order(line: str, path: Path, lineno: int, schema: Schema, report: Report
                  ) -> list[int]:
    """Column of each schema attribute in the file; DatasetError unless the header names them."""
    names, want = line.split(), list(schema.names)
    if names == want:
        return list(range(len(want)))
    missing = [n for n in want if n not in names]
    unknown = [n for n in names if n not in want]
    if missing or unknown or len(set(names)) != len(names):
        msg = (f"line {lineno}: the header is not {schema.name}'s {len(want)} attribute names"
               f" (missing: {', '.join(missing) or 'none'}; unknown: "
               f"{', '.join(unknown) or 'none'}; {len(names)} names)")
        report.add("error", "bad_header", path, msg)
        raise DatasetError(f"{path}: {msg}; expected line {lineno} to be: {' '.join(want)}")
    report.add("warning", "header_order", path,
               f"line {lineno}: the attribute names are in another order; read by name")
    return [names.index(n) for n in want]


@dataclass(frozen=True)
class Listed:
    """An attribute-list row: its line number and class indices in schema order."""

    line: int
    labels: tuple[int, ...]


@dataclass(frozen=True)
class AttributeList:
    """The usable rows {file name: Listed} and every file name the list names, usable or
    not (so an image whose row was dropped is not reported again elsewhere)."""

    rows: dict[str, Listed]
    named: frozenset[str]


def _parse_attr_row(tokens: list[str], order: list[int], schema: Schema, path: Path,
                    lineno: int, report: Report) -> tuple[int, ...] | None:
    name, values = tokens[0], tokens[1:]
    if len(values) != len(order):
        report.add("error", "wrong_count", path, f"line {lineno}: {len(values)} values, "
                   f"expected {len(order)}; row dropped", name)
        return None
    labels = []
    for attr, col in zip(schema.names, order, strict=True):
        cls = VALUE_CLASSES.get(values[col])
        if cls is None:
            report.add("error", "bad_value", path, f"line {lineno}: {attr}={values[col]!r} is "
                       "not -1 or 1; row dropped", name)
            return None
        labels.append(cls)
    return tuple(labels)


def read_attribute_list(path: str | Path, schema: Schema, report: Report) -> AttributeList:
    """CelebA's attribute list (`list_attr_celeba.txt`, `CelebAMask-HQ-attribute-anno.txt`),
    bad rows dropped and reported. DatasetError when the file is missing or its header does
    not name the schema's attributes."""
    path = Path(path)
    lines = _read_lines(path)
    count, head = _count_line(lines, path, schema.names, report)
    if head >= len(lines):
        raise DatasetError(f"{path}: no header line (expected line {head + 1} to name the "
                           f"{len(schema.names)} attributes)")
    order = _header_order(lines[head], path, head + 1, schema, report)
    rows: dict[str, Listed] = {}
    named: set[str] = set()
    seen = 0
    for i in range(head + 1, len(lines)):
        tokens = lines[i].split()
        if not tokens:
            continue
        seen += 1
        name, lineno = tokens[0], i + 1
        named.add(name)
        if not _plain_name(name):
            report.add("error", "bad_image_name", path, f"line {lineno}: {name!r} is not a "
                       "plain file name; row dropped")
            continue
        labels = _parse_attr_row(tokens, order, schema, path, lineno, report)
        if labels is None:
            continue
        if name in rows:
            report.add("error", "duplicate", path, f"line {lineno}: duplicate of line "
                       f"{rows[name].line}; keeping the first", name)
            continue
        rows[name] = Listed(lineno, labels)
    if count is not None and count != seen:
        report.add("warning", "count_mismatch", path,
                   f"line 1: says {count} images, the file lists {seen}")
    return AttributeList(rows, frozenset(named))


def read_partition(path: str | Path, report: Report
                   ) -> tuple[dict[str, tuple[int, str]], set[str]]:
    """`list_eval_partition.txt` -> ({file name: (line, split)}, names whose lines were bad and
    reported, so that a caller does not report them again)."""
    path = Path(path)
    out: dict[str, tuple[int, str]] = {}
    bad: set[str] = set()
    for i, line in enumerate(_read_lines(path)):
        tokens, lineno = line.split(), i + 1
        if not tokens:
            continue
        split = PARTITION_SPLITS.get(tokens[1]) if len(tokens) == 2 else None
        if split is None:
            report.add("error", "bad_partition", path, f"line {lineno}: {line.strip()[:60]!r} "
                       "is not `<image> <0|1|2>`; its image is dropped", tokens[0])
            bad.add(tokens[0])
            continue
        name = tokens[0]
        if name in out and out[name][1] != split:
            report.add("error", "conflicting_partition", path, f"line {lineno}: {split}, but "
                       f"line {out[name][0]} says {out[name][1]}; image dropped", name)
            bad.add(name)
        elif name in out:
            report.add("warning", "duplicate", path,
                       f"line {lineno}: duplicate of line {out[name][0]}", name)
        else:
            out[name] = (lineno, split)
    for name in bad:
        out.pop(name, None)
    return out, bad


def _read_landmarks(path: Path, report: Report) -> dict[str, tuple[int, ...]]:
    """{file name: 10 ints} of `list_landmarks_align_celeba.txt`; {} (reported) if unusable."""
    lines = _read_lines(path)
    _, head = _count_line(lines, path, LANDMARK_NAMES, report)
    if head >= len(lines) or tuple(lines[head].split()) != LANDMARK_NAMES:
        report.add("warning", "bad_header", path, f"line {head + 1}: not the landmark header "
                   f"{' '.join(LANDMARK_NAMES)}; landmarks ignored")
        return {}
    out: dict[str, tuple[int, ...]] = {}
    for i in range(head + 1, len(lines)):
        tokens = lines[i].split()
        if not tokens:
            continue
        try:
            values = tuple(int(v) for v in tokens[1:])
        except ValueError:
            values = ()
        if len(values) != len(LANDMARK_NAMES):
            report.add("warning", "bad_landmarks", path, f"line {i + 1}: expected "
                       f"{len(LANDMARK_NAMES)} integers; no landmarks for it", tokens[0])
            continue
        out.setdefault(tokens[0], values)
    return out


# ---- images and the table ---------------------------------------------------------------------

@dataclass
class Candidate:
    """A row waiting for its image: `row` holds the table's columns but the paths and size;
    `relative` is the image's path under `root` (POSIX, with extension); `source` and `where`
    name the annotation file and line that listed it (for the report)."""

    row: dict[str, Any]
    relative: str
    source: Path
    where: str


def image_size(path: Path) -> tuple[int, int] | str:
    """(width, height) from the image header (Pillow opens lazily), or why it cannot be read."""
    try:
        with Image.open(path) as im:
            return im.size
    except Exception as e:  # decoders raise many types for broken files
        return f"{type(e).__name__}: {e}"


def attach_images(root: Path, candidates: list[Candidate], report: Report,
                  progress: bool = True, workers: int = 4) -> list[dict[str, Any]]:
    """The candidates whose image exists and has a readable header, with paths and size; the
    others dropped and reported (naming the annotation file and line)."""
    found = []
    for c in candidates:
        path = root / c.relative
        if path.is_file():
            found.append((c, path))
        else:
            report.add("error", "missing_image", c.source, f"{c.where}: image "
                       f"{path.as_posix()} is missing; row dropped", c.row["image_name"])
    with ThreadPoolExecutor(workers) as pool:
        sizes = list(log.progress(pool.map(image_size, [p for _, p in found]), total=len(found),
                                  desc="reading image headers", unit="img",
                                  disable=not progress, leave=False))
    rows = []
    for (c, path), size in zip(found, sizes, strict=True):
        if isinstance(size, str):
            report.add("error", "unreadable_image", path, f"{c.where} of {c.source.name}: "
                       f"unreadable image ({size}); row dropped", c.row["image_name"])
            continue
        rows.append({**c.row, "photo_path": path.as_posix(), "sketch_path": path.as_posix(),
                     "width": int(size[0]), "height": int(size[1])})
    return rows


def make_row(relative: str, subset: str, split: str, schema: Schema,
             labels: Sequence[int]) -> dict[str, Any]:
    """The table columns known before the image is opened."""
    image_name = PurePosixPath(relative).with_suffix("").as_posix()
    return {"sample_id": image_name.replace("/", "_"), "image_name": image_name,
            "subset": subset, "dataset_split": split,
            **dict(zip(schema.names, labels, strict=True))}


def to_table(rows: list[dict[str, Any]], schema: Schema, report: Report, source: Path
             ) -> pd.DataFrame:
    """The sorted table; rows sharing a sample_id after the first are dropped (reported)."""
    seen: dict[str, str] = {}
    kept = []
    for row in rows:
        if row["sample_id"] in seen:
            report.add("error", "duplicate_sample_id", source, f"{row['image_name']} and "
                       f"{seen[row['sample_id']]} share the id {row['sample_id']}; keeping the "
                       "first", row["image_name"])
            continue
        seen[row["sample_id"]] = row["image_name"]
        kept.append(row)
    cols = [*BASE_COLUMNS, *schema.names]
    table = pd.DataFrame(kept, columns=cols)
    table = table.sort_values("sample_id", kind="stable").reset_index(drop=True)
    for c in ("width", "height", *schema.names):
        table[c] = table[c].astype("int64")
    return table


def report_orphans(folder: Path, listed: Iterable[str], report: Report,
                   pattern: str = "*") -> None:
    """Images under `folder` (matching `pattern`) whose path under the folder, without
    extension, is not in `listed`: warnings (they are not in the table)."""
    wanted = set(listed)
    for path in sorted(folder.glob(pattern)):
        if path.suffix.lower() in IMAGE_EXTENSIONS and path.is_file():
            if path.relative_to(folder).with_suffix("").as_posix() not in wanted:
                report.add("warning", "orphan_image", path, "no annotation row names it")


def no_usable_row(root: Path, report: Report) -> DatasetError:
    return DatasetError(f"{root}: no usable image\n{report.format()}")


def require_layout(root: Path, names: Sequence[str], layout: str) -> None:
    """DatasetError naming the first of `names` (files or folders) missing under the dataset
    folder `root`, or `root` itself; `layout` says what the folder should hold."""
    if not root.is_dir():
        raise DatasetError(f"{root}: no such dataset folder ({layout})")
    for name in names:
        if not (root / name).exists():
            raise DatasetError(f"{root / name}: missing ({layout})")


# ---- CelebA ----------------------------------------------------------------------------------

def _find(root: Path, name: str, dirs: Sequence[str]) -> Path | None:
    for d in dirs:
        if (root / d / name).exists():
            return root / d / name
    return None


def find_celeba_files(root: Path) -> tuple[Path, Path, Path]:
    """(attribute list, partition list, image folder); DatasetError naming what is missing."""
    if not root.is_dir():
        raise DatasetError(f"{root}: no such dataset folder (a CelebA folder holds {ATTR_FILE}, "
                           f"{PARTITION_FILE} and {IMAGE_FOLDERS[0]}/, or Anno/, Eval/, Img/)")
    attr = _find(root, ATTR_FILE, LIST_DIRS)
    part = _find(root, PARTITION_FILE, LIST_DIRS)
    images = next((p for p in (_find(root, f, IMAGE_PARENTS) for f in IMAGE_FOLDERS) if p), None)
    packed = next((p for p in (_find(root, f"{f}.zip", IMAGE_PARENTS) for f in IMAGE_FOLDERS)
                   if p), None)
    if images is None and packed is not None:  # CelebA's release ships the images zipped
        raise DatasetError(f"{packed}: the images are still zipped; unpack it where it lies "
                           f"(cd {packed.parent} && unzip {packed.name}), then run again")
    for what, found, name in (("attribute list", attr, ATTR_FILE),
                              ("partition list", part, PARTITION_FILE),
                              ("image folder", images, f"{IMAGE_FOLDERS[0]}/")):
        if found is None:
            raise DatasetError(f"{root}: {what} {name} missing (looked in {root} and its "
                               f"Anno/, Eval/, Img/); is {root} a CelebA folder?")
    if images is None or not images.is_dir() or attr is None or part is None:
        raise DatasetError(f"{images}: not a folder of images")
    return attr, part, images


def _locate(folder: Path, name: str) -> str:
    """The image's file name in `folder`: as listed, else with the other extension
    (img_align_celeba_png holds 000001.png for the list's 000001.jpg)."""
    if (folder / name).is_file():
        return name
    for ext in (".png", ".jpg"):
        alt = PurePosixPath(name).with_suffix(ext).name
        if (folder / alt).is_file():
            return alt
    return name


def _join_partition(attrs: AttributeList, partition: dict[str, tuple[int, str]],
                    bad: set[str], attr_file: Path, part_file: Path, report: Report
                    ) -> list[tuple[str, Listed, str]]:
    """(name, listed, split) of the images in both lists; the others reported."""
    out = []
    for name, listed in attrs.rows.items():
        if name in partition:
            out.append((name, listed, partition[name][1]))
        elif name not in bad:
            report.add("error", "not_in_partition", attr_file, f"line {listed.line}: {name} is "
                       f"not in {part_file.name}; row dropped", name)
    for name, (lineno, _) in partition.items():
        if name not in attrs.named:
            report.add("warning", "not_in_attributes", part_file,
                       f"line {lineno}: {name} has no row in {attr_file.name}", name)
    return out


def _add_landmarks(table: pd.DataFrame, names: dict[str, str],
                   landmarks: dict[str, tuple[int, ...]], path: Path, report: Report) -> None:
    """Landmark columns from {file name: values}; nullable Int64 where a row lacks them.
    `names`: {sample_id: file name}."""
    values = [landmarks.get(names[sid]) for sid in table["sample_id"]]
    for image_name, sid, v in zip(table["image_name"], table["sample_id"], values, strict=True):
        if v is None:
            report.add("warning", "no_landmarks", path, f"no landmarks for {names[sid]}",
                       image_name)
    complete = all(v is not None for v in values)
    for j, col in enumerate(LANDMARK_NAMES):
        column = [v[j] if v is not None else None for v in values]
        table[col] = pd.array(column, dtype="int64" if complete else "Int64")


def read_celeba(root: str | Path, schema: Schema | None = None, progress: bool = True
                ) -> tuple[pd.DataFrame, Report]:
    """Read the CelebA folder `root` (see the module docstring for the layout).

    Returns the table (module docstring; landmark columns when the landmark list is present)
    and the report. Raises DatasetError when a list or the image folder is missing, the header
    does not name the schema's attributes (default: `load_schema("celeba")`), or no row is
    usable.
    """
    root, schema = Path(root), schema or load_schema("celeba")
    attr_file, part_file, image_dir = find_celeba_files(root)
    report = Report()
    attrs = read_attribute_list(attr_file, schema, report)
    partition, bad = read_partition(part_file, report)
    subset, relative_dir = image_dir.name, image_dir.relative_to(root).as_posix()
    candidates, names = [], {}
    for name, listed, split in _join_partition(attrs, partition, bad, attr_file, part_file,
                                               report):
        rel = f"{relative_dir}/{_locate(image_dir, name)}"
        row = make_row(rel, subset, split, schema, listed.labels)
        names[row["sample_id"]] = name
        candidates.append(Candidate(row, rel, attr_file, f"line {listed.line}"))
    rows = attach_images(root, candidates, report, progress)
    report_orphans(image_dir, {PurePosixPath(n).stem for n in attrs.named}, report)
    if not rows:
        raise no_usable_row(root, report)
    table = to_table(rows, schema, report, attr_file)
    landmark_file = _find(root, LANDMARKS_FILE, LIST_DIRS)
    if landmark_file is not None:
        landmarks = _read_landmarks(landmark_file, report)
        if landmarks:
            _add_landmarks(table, names, landmarks, landmark_file, report)
    return table, report


# ---- CelebAMask-HQ ---------------------------------------------------------------------------

@dataclass(frozen=True)
class _Mapped:
    line: int
    orig_file: str


def _read_mapping(path: Path, report: Report) -> dict[int, _Mapped]:
    """{CelebA-HQ id: (line, CelebA file)} of `CelebA-HQ-to-CelebA-mapping.txt`."""
    lines = _read_lines(path)
    header = lines[0].split() if lines else []
    if any(c not in header for c in HQ_MAPPING_COLUMNS):
        raise DatasetError(f"{path}: line 1 should be the header {' '.join(HQ_MAPPING_COLUMNS)}"
                           f", got {' '.join(header)[:80]!r}")
    col_idx, col_file = header.index("idx"), header.index("orig_file")
    out: dict[int, _Mapped] = {}
    for i in range(1, len(lines)):
        tokens, lineno = lines[i].split(), i + 1
        if not tokens:
            continue
        ok = len(tokens) >= len(header) and tokens[col_idx].isdigit()
        if not ok or not _plain_name(tokens[col_file]):
            report.add("error", "bad_mapping", path, f"line {lineno}: {lines[i].strip()[:60]!r}"
                       f" is not `{' '.join(HQ_MAPPING_COLUMNS)}`; row ignored")
            continue
        hq_id = int(tokens[col_idx])
        if hq_id in out:
            report.add("error", "duplicate", path, f"line {lineno}: idx {hq_id} again (line "
                       f"{out[hq_id].line}); keeping the first", f"{HQ_IMAGE_FOLDER}/{hq_id}")
            continue
        out[hq_id] = _Mapped(lineno, tokens[col_file])
    return out


def find_celebamask_hq_files(root: Path, partition_file: str | Path | None
                             ) -> tuple[Path, Path, Path, Path]:
    """(attribute list, mapping, partition list, image folder); DatasetError if one is missing."""
    layout = (f"a CelebAMask-HQ folder holds {HQ_IMAGE_FOLDER}/, {HQ_MASK_FOLDER}/, "
              f"{HQ_ATTR_FILE} and {HQ_MAPPING_FILE}")
    require_layout(root, (HQ_ATTR_FILE, HQ_MAPPING_FILE, HQ_IMAGE_FOLDER), layout)
    part = Path(partition_file) if partition_file is not None else _find(root, PARTITION_FILE,
                                                                         ("", "Eval"))
    if part is None or not part.is_file():
        where = part if part is not None else f"{root} or {root / 'Eval'}"
        raise DatasetError(f"{where}: CelebA's {PARTITION_FILE} not found; CelebAMask-HQ takes "
                           "its splits from it: pass partition_file= (CelebA's Eval/"
                           f"{PARTITION_FILE}) or copy it into {root}")
    return root / HQ_ATTR_FILE, root / HQ_MAPPING_FILE, part, root / HQ_IMAGE_FOLDER


def _hq_id(name: str) -> int | None:
    m = _HQ_NAME.match(name)
    return int(m["id"]) if m else None


def _hq_candidates(attrs: AttributeList, mapping: dict[int, _Mapped],
                   partition: dict[str, tuple[int, str]], bad: set[str], files: tuple[Path, ...],
                   schema: Schema, report: Report) -> list[Candidate]:
    attr_file, map_file, part_file = files
    out = []
    for name, listed in attrs.rows.items():
        hq_id = _hq_id(name)
        mapped = mapping.get(hq_id) if hq_id is not None else None
        if mapped is None:
            report.add("error", "not_in_mapping", attr_file, f"line {listed.line}: {name} is "
                       f"not an idx of {map_file.name}; row dropped", name)
            continue
        if mapped.orig_file not in partition:
            if mapped.orig_file not in bad:
                report.add("error", "not_in_partition", map_file, f"line {mapped.line}: CelebA "
                           f"file {mapped.orig_file} of {name} is not in {part_file.name}; "
                           "row dropped", f"{HQ_IMAGE_FOLDER}/{hq_id}")
            continue
        rel = f"{HQ_IMAGE_FOLDER}/{name}"
        row = make_row(rel, HQ_IMAGE_FOLDER, partition[mapped.orig_file][1], schema,
                       listed.labels)
        out.append(Candidate(row, rel, attr_file, f"line {listed.line}"))
    named = {_hq_id(n) for n in attrs.named}
    for hq_id, mapped in mapping.items():
        if hq_id not in named:
            report.add("warning", "not_in_attributes", map_file, f"line {mapped.line}: idx "
                       f"{hq_id} has no row in {attr_file.name}", f"{HQ_IMAGE_FOLDER}/{hq_id}")
    return out


def mask_path(mask_root: str | Path, hq_id: int, part: str) -> Path:
    """Where CelebAMask-HQ keeps part `part` of image `hq_id`: `<id // 2000>/<%05d>_<part>.png`."""
    return Path(mask_root) / str(hq_id // HQ_IDS_PER_FOLDER) / f"{hq_id:05d}_{part}.png"


def _scan_masks(mask_dir: Path, ids: set[int], known: set[int | None], report: Report
                ) -> dict[int, list[Path]]:
    """{image id: its part files} of the usable `ids`; masks of `known` ids whose rows were
    dropped are skipped (already reported), every other file is reported (warnings)."""
    parts: dict[int, list[Path]] = {}
    for path in sorted(mask_dir.glob("*/*")):
        m = _MASK_NAME.match(path.name)
        if not m or not path.is_file():
            report.add("warning", "unknown_mask_file", path, "not `<id>_<part>.png`; ignored")
            continue
        hq_id, part = int(m["id"]), m["part"]
        if part not in MASK_PARTS:
            report.add("warning", "unknown_part", path, f"part {part!r} is not one of "
                       f"CelebAMask-HQ's {len(MASK_PARTS)}; ignored")
        elif path != mask_path(mask_dir, hq_id, part):
            report.add("warning", "misplaced_mask", path, f"belongs in folder "
                       f"{hq_id // HQ_IDS_PER_FOLDER}/ (id // {HQ_IDS_PER_FOLDER}); ignored")
        elif hq_id in ids:
            parts.setdefault(hq_id, []).append(path)
        elif hq_id not in known:
            report.add("warning", "orphan_mask", path, f"mask of image id {hq_id}, which the "
                       "attribute list does not name; ignored")
    return parts


def _check_masks(root: Path, rows: list[dict[str, Any]], known: set[int | None],
                 report: Report, progress: bool) -> list[dict[str, Any]]:
    """Rows whose part masks all have readable headers; mask problems reported. `known`: the
    ids the attribute list names."""
    mask_dir = root / HQ_MASK_FOLDER
    if not mask_dir.is_dir():
        report.add("warning", "no_masks", mask_dir, "mask folder missing: no label maps")
        return rows
    by_id = {int(PurePosixPath(r["image_name"]).name): r for r in rows}
    parts = _scan_masks(mask_dir, set(by_id), known, report)
    files = [p for ps in parts.values() for p in ps]
    with ThreadPoolExecutor(4) as pool:
        sizes = list(log.progress(pool.map(image_size, files), total=len(files),
                                  desc="reading mask headers", unit="mask",
                                  disable=not progress, leave=False))
    size_of = dict(zip(files, sizes, strict=True))
    dropped = set()
    for hq_id, row in by_id.items():
        for path in parts.get(hq_id, []):
            if isinstance(size_of[path], str):
                report.add("error", "unreadable_mask", path, f"unreadable mask of image id "
                           f"{hq_id} ({size_of[path]}); row dropped", row["image_name"])
                dropped.add(hq_id)
        if hq_id not in parts:
            report.add("warning", "no_masks", mask_dir, f"no part mask for image id {hq_id}",
                       row["image_name"])
    return [r for i, r in by_id.items() if i not in dropped]


def read_celebamask_hq(root: str | Path, schema: Schema | None = None, progress: bool = True,
                       *, partition_file: str | Path | None = None, check_masks: bool = True
                       ) -> tuple[pd.DataFrame, Report]:
    """Read the CelebAMask-HQ folder `root` (module docstring) into the table and a report.

    `partition_file`: CelebA's `list_eval_partition.txt` (default: looked for in `root`, then
    `root/Eval`). `check_masks`: check the mask folder's names and headers (a mask whose
    header cannot be read drops its row). Raises DatasetError when a file or folder is
    missing, the header does not name the schema's attributes, or no row is usable.
    """
    root, schema = Path(root), schema or load_schema("celeba")
    attr_file, map_file, part_file, image_dir = find_celebamask_hq_files(root, partition_file)
    report = Report()
    attrs = read_attribute_list(attr_file, schema, report)
    mapping = _read_mapping(map_file, report)
    partition, bad = read_partition(part_file, report)
    candidates = _hq_candidates(attrs, mapping, partition, bad, (attr_file, map_file, part_file),
                                schema, report)
    rows = attach_images(root, candidates, report, progress)
    report_orphans(image_dir, {PurePosixPath(n).stem for n in attrs.named}, report)
    if check_masks:
        rows = _check_masks(root, rows, {_hq_id(n) for n in attrs.named}, report, progress)
    if not rows:
        raise no_usable_row(root, report)
    return to_table(rows, schema, report, attr_file), report


# ---- label maps ------------------------------------------------------------------------------

def _read_mask(path: Path, size: tuple[int, int], report: Report | None) -> np.ndarray:
    """bool [H,W] at `size` (W, H): the part's pixels. DatasetError if it cannot be decoded."""
    try:
        with Image.open(path) as im:
            im.load()
            if im.mode in _SINGLE_CHANNEL:
                arr = np.asarray(im)
            else:  # g_mask.py reads with cv2 (BGR) and keeps channel 0: blue
                arr = np.asarray(im.convert("RGB"))[..., 2]
    except Exception as e:  # decoders raise many types for broken files
        raise MaskReadError(path, f"unreadable mask ({type(e).__name__}: {e})") from None
    values = np.unique(arr)
    if report is not None and not (set(values.tolist()) <= {0, 255} or
                                   set(values.tolist()) <= {0, 1}):
        report.add("warning", "non_binary_mask", path, f"values {values[:6].tolist()}... are "
                   "not binary; non-zero read as inside (as g_mask.py does)")
    mask = arr != 0
    if mask.shape != (size[1], size[0]):
        mask = np.asarray(Image.fromarray(mask.astype(np.uint8)).resize(size, Image.NEAREST)) > 0
    return mask


def assemble_label_map(mask_root: str | Path, hq_id: int, size: int | tuple[int, int],
                       report: Report | None = None) -> np.ndarray:
    """Image `hq_id`'s label map from its part masks: uint8 [H, W], canonical class indices
    (`esgar.masks.labels.CANONICAL_CLASSES`; 0 background), painted in g_mask.py's order
    (`MASK_PARTS`, a later part over an earlier one), each mask resized to `size` (an int for
    a square, or (W, H)) with nearest neighbour. Parts without a file are absent. A non-binary
    mask is reported to `report` (when given); an undecodable one raises MaskReadError (a
    DatasetError)."""
    w, h = (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
    out = np.zeros((h, w), np.uint8)
    for part in MASK_PARTS:
        path = mask_path(mask_root, hq_id, part)
        if path.is_file():
            out[_read_mask(path, (w, h), report)] = CANONICAL_CLASSES.index(part)
    return out


def _write_one(row: tuple[str, int, int], mask_root: Path, out_dir: Path) -> Report:
    image_name, w, h = row
    report = Report()
    try:
        label = assemble_label_map(mask_root, int(PurePosixPath(image_name).name), (w, h),
                                   report)
    except MaskReadError as e:
        report.add("error", "unreadable_mask", e.path, f"{e}; no label map written", image_name)
        return report
    write_with(out_dir / f"{image_name}.png",
               lambda tmp: Image.fromarray(label).save(tmp, format="PNG"))
    report.problems = [replace(p, image_name=image_name) for p in report.problems]
    return report


def write_label_maps(table: pd.DataFrame, mask_root: str | Path, out_dir: str | Path,
                     progress: bool = True, workers: int = 4) -> Report:
    """Write `<out_dir>/<image_name>.png` (canonical label map at the row's width x height,
    `assemble_label_map`) for every row of `read_celebamask_hq`'s table, each file atomically,
    for the masks stage to import with `label_order: canonical`. Returns the problems: a
    non-binary mask (warning), an undecodable one (error: that row's map is not written)."""
    mask_root, out_dir = Path(mask_root), Path(out_dir)
    rows = list(zip(table["image_name"], table["width"].astype(int),
                    table["height"].astype(int), strict=True))
    report = Report()
    with ThreadPoolExecutor(workers) as pool:
        done = pool.map(lambda r: _write_one(r, mask_root, out_dir), rows)
        for part in log.progress(done, total=len(rows), desc="writing label maps", unit="map",
                                 disable=not progress):
            report.problems.extend(part.problems)
    return report

