"""Read LFWA (the LFWA+ release of Liu et al., ICCV 2015) into the project's sample table.

The table is `esgar.data.celeba`'s (one row per usable image, sorted by `sample_id`;
`subset` is `lfw`, `dataset_split` `train` or `test`: LFWA has no val split). Problems are
gathered into one `Report`; only an unusable folder raises `DatasetError`.

Layout (the release's Google Drive folder, linked from the CelebA project page)::

    <root>/
      lfw/<Name>/<Name>_0001.jpg          LFW's 250x250 JPEGs
      lfw_att_40.mat                      name: N image paths relative to lfw/, backslash-
                                          separated (`Aaron_Eckhart\\Aaron_Eckhart_0001.jpg`);
                                          label: N x 40, 1 present, 0 absent;
                                          AttrName: the 40 attribute names, in label's order
      indices_train_test.mat              indices_img_train, indices_img_test: 1-based rows of
                                          name/label (MATLAB indices); also
                                          indices_identity_train/test (not used)

Verified against public loaders of the release (found with the `code` search):
- the field names `name`, `label`, `AttrName`, `indices_img_train`, `indices_img_test` (and
  `indices_identity_train/test`); `name` relative to `lfw/` with backslashes; label rows in
  name's order; indices 1-based (every loader subtracts 1): e.g. XuJ1E's `lfwa_dataset.py`
  (`mat73.loadmat(...)['indices_img_train']`, `name_all[int(i - 1)].replace("\\\\", "/")`),
  a loader listing the files' keys with h5py (`['#refs#' 'AttrName' 'label' 'name']`,
  `['indices_identity_test' 'indices_identity_train' 'indices_img_test' 'indices_img_train']`),
  and Hao Yang's LFWA dataset (`os.path.join(root, 'lfw', *name.split('\\\\'))`, "It can be
  downloaded from https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html").
- both files are MATLAB v7.3 (HDF5) files: public loaders open them with h5py or mat73, and
  `label` comes out of h5py as 40 x N (HDF5 stores MATLAB's column-major arrays transposed).
  `scipy.io.loadmat` cannot read v7.3: such a file is read with h5py, which is an optional
  dependency (a clear DatasetError says to install it); v5 files (what scipy.io.savemat and
  `esgar.data.synthetic_faces.generate_lfwa` write) are read with scipy.io.loadmat.
- AttrName spells the attributes as CelebA does (a loader selects `attr_name == 'Smiling'`).

Assumed (not found stated in a public source): label values are 0/1 (a loader treats
`attr == 1` as present and sizes one-hot vectors `max + 1`; the Label2Label authors describe
LFWA's labels as 1 positive, 0 negative); a file whose labels are all -1/1 is read with -1 as
absent (warning). AttrName is compared to the schema ignoring case, spaces and underscores;
names in another order are read by name (warning); a file without AttrName is read in the
schema's order (warning). The field names are the module constants below.

Bad input: a label value other than 0/1 (row dropped), an index that is not an integer in
1..N (ignored), an image in both train and test (dropped), an image in neither (dropped), an
image name that is absolute or climbs out of lfw/ (dropped), a duplicate name (the first
kept), an image listed but missing or with an unreadable header (dropped); images in lfw/ that
no row names: warnings.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import pandas as pd
import scipy.io

from esgar.data.celeba import (
    Candidate,
    DatasetError,
    attach_images,
    make_row,
    no_usable_row,
    report_orphans,
    require_layout,
    to_table,
)
from esgar.data.fs2k import Report
from esgar.schema import Schema, load_schema

__all__ = ["ATTR_FILE", "ATTR_NAME_FIELD", "DatasetError", "IMAGE_FOLDER", "LABEL_FIELD",
           "NAME_FIELD", "SPLIT_FIELDS", "SPLIT_FILE", "find_lfwa_files", "load_mat", "read_lfwa"]

ATTR_FILE = "lfw_att_40.mat"
SPLIT_FILE = "indices_train_test.mat"
IMAGE_FOLDER = "lfw"
NAME_FIELD = "name"
LABEL_FIELD = "label"
ATTR_NAME_FIELD = "AttrName"
SPLIT_FIELDS: dict[str, str] = {"train": "indices_img_train", "test": "indices_img_test"}
LABEL_ENCODINGS: tuple[dict[float, int], ...] = ({0.0: 0, 1.0: 1}, {-1.0: 0, 1.0: 1})


# ---- .mat files ------------------------------------------------------------------------------

def _from_v5(value: Any) -> Any:
    """scipy.io.loadmat's value -> str (char), list (cell) or ndarray (MATLAB's shape)."""
    arr = np.asarray(value)
    if arr.dtype.kind == "U":
        return "".join(arr.ravel(order="F").tolist())
    if arr.dtype == object:
        return [_from_v5(v) for v in arr.ravel(order="F")]
    return arr


def _from_h5(f: Any, ds: Any) -> Any:
    """An h5py dataset of a v7.3 file -> str (char), list (cell) or ndarray (MATLAB's shape:
    HDF5 holds MATLAB's column-major array with its dimensions reversed)."""
    import h5py

    cls = ds.attrs.get("MATLAB_class", b"")
    cls = cls.decode() if isinstance(cls, bytes) else str(cls)
    empty = bool(ds.attrs.get("MATLAB_empty", 0))
    data = np.asarray(ds[()])
    if h5py.check_ref_dtype(ds.dtype) is not None:
        return [] if empty else [_from_h5(f, f[r]) for r in data.ravel()]
    if cls == "char":
        return "" if empty else "".join(map(chr, data.ravel().tolist()))
    return np.zeros((0, 0)) if empty else data.T


def _load_mat73(path: Path) -> dict[str, Any]:
    try:
        import h5py
    except ImportError:
        raise DatasetError(f"{path}: a MATLAB v7.3 (HDF5) file, as LFWA+ publishes it; reading "
                           "it needs the h5py package (pip install h5py)") from None
    try:
        with h5py.File(path, "r") as f:
            return {k: _from_h5(f, v) for k, v in f.items()
                    if not k.startswith("#") and isinstance(v, h5py.Dataset)}
    except (OSError, KeyError, ValueError) as e:
        raise DatasetError(f"{path}: not a readable MATLAB v7.3 file ({e})") from None


def load_mat(path: str | Path) -> dict[str, Any]:
    """The variables of a MATLAB file (v5 by scipy, v7.3 by h5py): {name: str | list | ndarray},
    a cell array as a list in MATLAB's (column-major) order, a numeric array in MATLAB's shape.
    DatasetError when the file is missing or unreadable."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: file missing")
    try:
        raw = scipy.io.loadmat(path)
    except NotImplementedError:  # scipy's answer to a v7.3 (HDF5) file
        return _load_mat73(path)
    except Exception as e:  # scipy raises many types for a file that is not a .mat
        raise DatasetError(f"{path}: not a readable MATLAB file ({type(e).__name__}: {e})"
                           ) from None
    return {k: _from_v5(v) for k, v in raw.items() if not k.startswith("__")}


def _field(mat: dict[str, Any], field: str, path: Path) -> Any:
    if field not in mat:
        raise DatasetError(f"{path}: no variable {field!r} (found: "
                           f"{', '.join(sorted(mat)) or 'none'}); is it LFWA+'s {path.name}?")
    return mat[field]


# ---- attributes ------------------------------------------------------------------------------

def _names(value: Any, path: Path) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise DatasetError(f"{path}: {NAME_FIELD} should be a cell array of image paths")
    if not value:
        raise DatasetError(f"{path}: {NAME_FIELD} is empty")
    return value


def _label_matrix(value: Any, n: int, k: int, path: Path) -> np.ndarray:
    """float [n, k]: label as N x 40, or transposed (40 x N)."""
    arr = np.asarray(value)
    if arr.dtype.kind not in "biuf" or arr.ndim != 2:
        raise DatasetError(f"{path}: {LABEL_FIELD} should be a numeric N x {k} matrix")
    if arr.shape == (n, k):
        return arr.astype(float)
    if arr.shape == (k, n):
        return arr.T.astype(float)
    raise DatasetError(f"{path}: {LABEL_FIELD} is {arr.shape[0]} x {arr.shape[1]}, expected "
                       f"{n} x {k} (one row per {NAME_FIELD}, one column per attribute)")


def _norm(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def _attribute_order(value: Any, path: Path, schema: Schema, report: Report) -> list[int]:
    """Column of each schema attribute in label."""
    want = list(schema.names)
    if value is None:
        report.add("warning", "no_attr_names", path, f"no {ATTR_NAME_FIELD}; reading label's "
                   f"columns in the {schema.name} schema's order")
        return list(range(len(want)))
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise DatasetError(f"{path}: {ATTR_NAME_FIELD} should be a cell array of names")
    got = [_norm(v) for v in value]
    missing = [w for w in want if _norm(w) not in got]
    if missing or len(got) != len(want) or len(set(got)) != len(got):
        raise DatasetError(f"{path}: {ATTR_NAME_FIELD} ({len(value)} names) is not the "
                           f"{schema.name} schema's {len(want)} attributes (missing: "
                           f"{', '.join(missing) or 'none'})")
    order = [got.index(_norm(w)) for w in want]
    if order != list(range(len(want))):
        report.add("warning", "header_order", path, f"{ATTR_NAME_FIELD} lists the attributes "
                   "in another order; read by name")
    return order


def _encoding(labels: np.ndarray, path: Path, report: Report) -> dict[float, int]:
    values = set(np.unique(labels[np.isfinite(labels)]).tolist())
    if values <= {-1.0, 1.0} and -1.0 in values:
        report.add("warning", "minus_one_labels", path, "labels are -1/1, not 0/1: -1 read as "
                   "absent")
        return LABEL_ENCODINGS[1]
    return LABEL_ENCODINGS[0]


# ---- splits ----------------------------------------------------------------------------------

def _indices(value: Any, field: str, n: int, path: Path, report: Report) -> dict[int, int]:
    """{0-based row: 1-based entry number} of one index list; bad entries reported."""
    arr = np.asarray(value)
    if arr.dtype.kind not in "biuf":
        raise DatasetError(f"{path}: {field} should be a numeric vector of 1-based indices")
    out: dict[int, int] = {}
    for pos, v in enumerate(arr.ravel().tolist(), 1):
        if not (np.isfinite(v) and float(v).is_integer() and 1 <= v <= n):
            report.add("error", "bad_index", path, f"{field} entry {pos}: {v!r} is not an "
                       f"image index in 1..{n} (MATLAB's 1-based rows); ignored")
        elif int(v) - 1 in out:
            report.add("warning", "duplicate_index", path, f"{field} entry {pos}: index "
                       f"{int(v)} again (entry {out[int(v) - 1]})")
        else:
            out[int(v) - 1] = pos
    return out


def _read_splits(path: Path, names: Sequence[str], report: Report
                 ) -> tuple[dict[int, str], set[int]]:
    """({0-based row: split}, rows in both lists: reported here and left out)."""
    mat = load_mat(path)
    placed = {s: _indices(_field(mat, f, path), f, len(names), path, report)
              for s, f in SPLIT_FIELDS.items()}
    train, test = placed["train"], placed["test"]
    split_of = {i: "train" for i in train} | {i: "test" for i in test}
    both = set(train) & set(test)
    for i in sorted(both):
        report.add("error", "in_both_splits", path, f"row {i + 1} ({names[i]}) is in "
                   f"{SPLIT_FIELDS['train']} (entry {train[i]}) and {SPLIT_FIELDS['test']} "
                   f"(entry {test[i]}); row dropped", _image_name(names[i]))
        split_of.pop(i)
    return split_of, both


# ---- rows ------------------------------------------------------------------------------------

def _relative(name: str) -> str | None:
    """`Aaron_Eckhart\\Aaron_Eckhart_0001.jpg` -> `lfw/Aaron_Eckhart/Aaron_Eckhart_0001.jpg`;
    None for a name that is empty, absolute or climbs out of lfw/."""
    rel = PurePosixPath(name.strip().replace("\\", "/"))
    if not rel.parts or rel.is_absolute() or ".." in rel.parts or ":" in rel.parts[0]:
        return None
    return f"{IMAGE_FOLDER}/{rel.as_posix()}"


def _image_name(name: str) -> str:
    rel = _relative(name)
    return PurePosixPath(rel).with_suffix("").as_posix() if rel else name


def _row_labels(values: np.ndarray, encoding: dict[float, int], schema: Schema, path: Path,
                row: int, name: str, report: Report) -> list[int] | None:
    labels = []
    for attr, v in zip(schema.names, values.tolist(), strict=True):
        cls = encoding.get(v)
        if cls is None:
            report.add("error", "bad_label", path, f"row {row}: {attr}={v:g} is not "
                       f"{'/'.join(f'{k:g}' for k in encoding)}; row dropped", name)
            return None
        labels.append(cls)
    return labels


def _candidates(names: list[str], labels: np.ndarray, encoding: dict[float, int],
                splits: tuple[dict[int, str], set[int]], files: tuple[Path, Path],
                schema: Schema, report: Report) -> list[Candidate]:
    attr_file, split_file = files
    split_of, both = splits
    out, seen = [], {}
    for i, name in enumerate(names):
        row_no, rel = i + 1, _relative(name)
        if rel is None:
            report.add("error", "bad_image_name", attr_file, f"row {row_no}: {name!r} is not a "
                       f"path inside {IMAGE_FOLDER}/; row dropped")
            continue
        if rel in seen:
            report.add("error", "duplicate", attr_file, f"row {row_no}: {name} again (row "
                       f"{seen[rel]}); keeping the first", _image_name(name))
            continue
        seen[rel] = row_no
        row_labels = _row_labels(labels[i], encoding, schema, attr_file, row_no,
                                 _image_name(name), report)
        if row_labels is None or i in both:
            continue
        if i not in split_of:
            report.add("error", "no_split", split_file, f"row {row_no} ({name}) is in neither "
                       f"{' nor '.join(SPLIT_FIELDS.values())}; row dropped", _image_name(name))
            continue
        out.append(Candidate(make_row(rel, IMAGE_FOLDER, split_of[i], schema, row_labels),
                             rel, attr_file, f"row {row_no}"))
    return out


def find_lfwa_files(root: Path) -> tuple[Path, Path, Path]:
    """(attribute file, split file, image folder); DatasetError naming what is missing."""
    layout = (f"an LFWA folder holds {IMAGE_FOLDER}/ (LFW's <Name>/<Name>_0001.jpg), {ATTR_FILE} "
              f"and {SPLIT_FILE}")
    require_layout(root, (ATTR_FILE, SPLIT_FILE, IMAGE_FOLDER), layout)
    return root / ATTR_FILE, root / SPLIT_FILE, root / IMAGE_FOLDER


def read_lfwa(root: str | Path, schema: Schema | None = None, progress: bool = True
              ) -> tuple[pd.DataFrame, Report]:
    """Read the LFWA+ folder `root` (module docstring) into the table and a report.

    Raises DatasetError when a file or the image folder is missing or unreadable (a v7.3 file
    without h5py installed), a variable is missing or mis-shaped, AttrName does not name the
    schema's attributes (default `load_schema("lfwa")`), or no row is usable.
    """
    root, schema = Path(root), schema or load_schema("lfwa")
    attr_file, split_file, image_dir = find_lfwa_files(root)
    report = Report()
    mat = load_mat(attr_file)
    names = _names(_field(mat, NAME_FIELD, attr_file), attr_file)
    order = _attribute_order(mat.get(ATTR_NAME_FIELD), attr_file, schema, report)
    labels = _label_matrix(_field(mat, LABEL_FIELD, attr_file), len(names), len(order),
                           attr_file)[:, order]
    encoding = _encoding(labels, attr_file, report)
    splits = _read_splits(split_file, names, report)
    candidates = _candidates(names, labels, encoding, splits, (attr_file, split_file), schema,
                             report)
    rows = attach_images(root, candidates, report, progress)
    listed = {PurePosixPath(r).relative_to(IMAGE_FOLDER).with_suffix("").as_posix()
              for n in names if (r := _relative(n))}
    report_orphans(image_dir, listed, report, "*/*")
    if not rows:
        raise no_usable_row(root, report)
    return to_table(rows, schema, report, attr_file), report
