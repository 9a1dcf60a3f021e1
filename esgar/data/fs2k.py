"""Read any FS2K-layout folder into one validated sample table.

Every problem found is gathered into one `Report` instead of stopping at the first: a record
that cannot be used is dropped and reported, a record with a harmless oddity (an unknown key,
a malformed colour) is kept and reported. Only data that cannot be used at all raises
`FS2KError`.

The table has one row per photo/sketch pair:

| column | meaning |
|---|---|
| `sample_id` | stable id, `photo1_image0110` |
| `image_name` | FS2K's `photo1/image0110` |
| `subset` | `photo1`, `photo2`, `photo3` |
| `fs2k_split` | the annotation file it came from: `train` or `test` |
| `photo_path`, `sketch_path` | paths as given root / relative path (POSIX) |
| `width`, `height` | pixel size of the sketch (= the photo's) |
| `<attribute>` | the label, int, for every attribute of `schema.FS2K.attributes` |
| `skin_color`, `lip_color`, `eye_color` | list of floats, or None where FS2K has no value |
"""

from __future__ import annotations

import io
import json
import math
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import simplejpeg
from PIL import Image

from esgar import log, schema
from esgar.errors import EsgarError
from esgar.data import layout

REQUIRED_KEYS = frozenset({"image_name", *schema.FS2K.names})
KNOWN_KEYS = REQUIRED_KEYS | set(schema.COLOR_FIELDS) | {"skin_patch"}


class FS2KError(EsgarError, ValueError):
    """The data cannot be used; the message says what and where."""


@dataclass(frozen=True)
class Problem:
    severity: str  # "error": the record was dropped; "warning": kept
    kind: str  # short machine-readable category
    file: str
    message: str
    image_name: str | None = None


@dataclass
class Report:
    problems: list[Problem] = field(default_factory=list)
    missing_colors: Counter = field(default_factory=Counter)

    def add(self, severity: str, kind: str, file: Path | str, message: str,
            image_name: str | None = None) -> None:
        self.problems.append(Problem(severity, kind, str(file), message, image_name))

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "warning"]

    def summary(self) -> dict[str, Any]:
        kinds = Counter(f"{p.severity}:{p.kind}" for p in self.problems)
        return {
            "errors": len(self.errors),
            "warnings": len(self.warnings),
            "by_kind": dict(sorted(kinds.items())),
            "missing_colors": dict(sorted(self.missing_colors.items())),
        }

    def to_dict(self) -> dict[str, Any]:
        return {**self.summary(), "problems": [asdict(p) for p in self.problems]}

    def format(self, limit: int = 20) -> str:
        lines = [f"{len(self.errors)} error(s) (records dropped), {len(self.warnings)} warning(s)"]
        for p in self.problems[:limit]:
            where = f"{p.file}" + (f" [{p.image_name}]" if p.image_name else "")
            lines.append(f"  {p.severity}: {where}: {p.message}")
        if len(self.problems) > limit:
            lines.append(f"  ... and {len(self.problems) - limit} more (see the full report)")
        return "\n".join(lines)


def _is_missing_color(value: Any) -> bool:
    """FS2K marks a missing colour as a list holding NaN, the string "nan", or an empty list."""
    if value is None or value == [] or (isinstance(value, str) and value.strip().lower() == "nan"):
        return True
    if isinstance(value, list):
        return any(
            (isinstance(v, float) and math.isnan(v)) or (isinstance(v, str) and v.lower() == "nan")
            for v in value
        )
    return False


def _parse_color(name: str, value: Any, file: Path, image_name: str,
                 report: Report) -> list[float] | None:
    if _is_missing_color(value):
        report.missing_colors[name] += 1
        return None
    n = schema.COLOR_FIELDS[name]
    ok = (isinstance(value, list) and len(value) == n
          and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value))
    if not ok:
        report.add("warning", "bad_color", file,
                   f"{name} should be {n} numbers or missing, got {value!r}; stored as missing",
                   image_name)
        return None
    return [float(v) for v in value]


def _parse_label(attr: schema.Attribute, value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, int) and 0 <= value < attr.num_classes:
        return value
    return None


def _parse_record(rec: Any, file: Path, index: int, report: Report) -> dict[str, Any] | None:
    """One annotation record -> a row without image checks, or None (reported) if unusable."""
    if not isinstance(rec, dict):
        report.add("error", "bad_record", file, f"record #{index} is not an object: {rec!r:.80}")
        return None
    name = rec.get("image_name")
    missing = sorted(REQUIRED_KEYS - rec.keys())
    if missing:
        report.add("error", "missing_keys", file, f"record #{index} lacks {', '.join(missing)}",
                   name if isinstance(name, str) else None)
        return None
    try:
        layout.parse_image_name(name)
    except (ValueError, TypeError) as e:
        report.add("error", "bad_image_name", file, f"record #{index}: {e}")
        return None
    unknown = sorted(rec.keys() - KNOWN_KEYS)
    if unknown:
        report.add("warning", "unknown_keys", file, f"ignoring unknown key(s) {', '.join(unknown)}",
                   name)
    row: dict[str, Any] = {"sample_id": layout.sample_id(name), "image_name": name,
                           "subset": name.split("/")[0]}
    for attr in schema.FS2K.attributes:
        label = _parse_label(attr, rec[attr.name])
        if label is None:
            report.add("error", "bad_label", file,
                       f"{attr.name}={rec[attr.name]!r} is not a class index in "
                       f"0..{attr.num_classes - 1}", name)
            return None
        row[attr.name] = label
    colors = dict(rec)
    if "skin_color" not in colors and "skin_patch" in colors:  # the README's name for the field
        colors["skin_color"] = colors["skin_patch"]
    for cname in schema.COLOR_FIELDS:
        row[cname] = _parse_color(cname, colors.get(cname), file, name, report)
    if (row["hair"] == 1) != (row["hair_color"] == schema.HAIR_COLOR_NO_HAIR):
        report.add("warning", "inconsistent_hair", file,
                   f"hair={row['hair']} but hair_color={row['hair_color']} "
                   "(no-hair colour is 3 exactly when hair is 1)", name)
    return row


def read_annotations(root: Path, report: Report) -> tuple[list[dict[str, Any]], set[str]]:
    """All usable records of both annotation files, duplicates dropped (first one kept), and
    every image name any record gives, usable or not (so its images are not called orphans)."""
    rows: list[dict[str, Any]] = []
    seen: dict[str, str] = {}
    named: set[str] = set()
    for split, fname in layout.ANNOTATION_FILES.items():
        file = root / fname
        if not file.is_file():
            raise FS2KError(f"{file}: annotation file missing (an FS2K folder holds "
                            f"{' and '.join(layout.ANNOTATION_FILES.values())})")
        try:
            records = json.loads(file.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise FS2KError(f"{file}: not valid JSON ({e})") from None
        if not isinstance(records, list):
            raise FS2KError(f"{file}: expected a JSON list of records, "
                            f"got {type(records).__name__}")
        for i, rec in enumerate(records):
            if isinstance(rec, dict) and isinstance(rec.get("image_name"), str):
                named.add(rec["image_name"])
            row = _parse_record(rec, file, i, report)
            if row is None:
                continue
            if row["image_name"] in seen:
                report.add("error", "duplicate", file,
                           f"duplicate of a record in {seen[row['image_name']]}; keeping the first",
                           row["image_name"])
                continue
            seen[row["image_name"]] = fname
            rows.append({**row, "fs2k_split": split})
    return rows, named


@dataclass(frozen=True)
class _BadImage:
    kind: str  # `unreadable_image` or `corrupt_image`
    message: str


_JPEG_MAGIC = b"\xff\xd8\xff"


def _image_size(path: Path) -> tuple[int, int] | _BadImage:
    """(width, height) of an image that decodes to the end without a complaint, or why not.

    Pillow decodes JPEGs with damaged data silently (libjpeg's "Corrupt JPEG data" warnings are
    dropped), so JPEGs are decoded by simplejpeg in strict mode, which raises on them."""
    try:
        data = path.read_bytes()
        if data.startswith(_JPEG_MAGIC):
            try:
                h, w = simplejpeg.decode_jpeg(data, colorspace="GRAY", strict=True).shape[:2]
                return w, h
            except ValueError as e:
                if "Corrupt JPEG data" in str(e) or "Premature end" in str(e):
                    return _BadImage("corrupt_image", f"corrupt image data, decodes to damaged "
                                                      f"pixels (decoder: {e})")
                raise
        with Image.open(io.BytesIO(data)) as im:
            im.load()
            return im.size
    except Exception as e:  # decoders raise many types for broken files
        return _BadImage("unreadable_image", f"unreadable image ({type(e).__name__}: {e})")


def attach_images(root: Path, rows: list[dict[str, Any]], report: Report,
                  workers: int = 4, progress: bool = True) -> list[dict[str, Any]]:
    """Find, decode and pair each record's photo and sketch; drop (and report) broken pairs."""
    located = []
    for row in rows:
        photo = layout.find_image(root, layout.photo_stem(row["image_name"]))
        sketch = layout.find_image(root, layout.sketch_stem(row["image_name"]))
        for kind, path, stem in (("photo", photo, layout.photo_stem(row["image_name"])),
                                 ("sketch", sketch, layout.sketch_stem(row["image_name"]))):
            if path is None:
                report.add("error", f"missing_{kind}", root / stem,
                           f"no {kind} file {stem}.* for this record", row["image_name"])
        if photo is not None and sketch is not None:
            located.append((row, photo, sketch))

    paths = [p for _, photo, sketch in located for p in (photo, sketch)]
    with ThreadPoolExecutor(workers) as pool:
        sizes = list(log.progress(pool.map(_image_size, paths), total=len(paths),
                                  desc="checking images", unit="img", disable=not progress,
                                  leave=False))
    out = []
    for i, (row, photo, sketch) in enumerate(located):
        psize, ssize = sizes[2 * i], sizes[2 * i + 1]
        bad = [(p, s) for p, s in ((photo, psize), (sketch, ssize)) if isinstance(s, _BadImage)]
        for path, problem in bad:
            report.add("error", problem.kind, path, problem.message, row["image_name"])
        if bad:
            continue
        if psize != ssize:
            report.add("error", "size_mismatch", sketch,
                       f"sketch is {ssize[0]}x{ssize[1]} but its photo {photo.name} is "
                       f"{psize[0]}x{psize[1]}: photo/sketch pairing is broken", row["image_name"])
            continue
        out.append({**row, "photo_path": photo.as_posix(), "sketch_path": sketch.as_posix(),
                    "width": ssize[0], "height": ssize[1]})
    return out


def _report_orphans(root: Path, names: set[str], report: Report) -> None:
    """Images on disk that no record names (kept out of the table, reported as warnings)."""
    wanted = set()
    for n in names:
        try:
            wanted |= {layout.photo_stem(n), layout.sketch_stem(n)}
        except ValueError:
            pass
    for kind in ("photo", "sketch"):
        for path in sorted((root / kind).glob("*/*")):
            if path.suffix.lower() in layout.IMAGE_EXTENSIONS:
                stem = path.relative_to(root).with_suffix("").as_posix()
                if stem not in wanted:
                    report.add("warning", "orphan_image", path, "no annotation record names it")


def read_fs2k(root: str | Path, progress: bool = True) -> tuple[pd.DataFrame, Report]:
    """Read the FS2K-layout folder `root` (the folder holding photo/, sketch/, anno_*.json).

    Returns the table (columns in the module docstring, sorted by `sample_id`) and the report.
    Raises FS2KError when the folder itself is unusable or no valid pair remains.
    """
    root = Path(root)
    if not root.is_dir():
        raise FS2KError(f"{root}: no such dataset folder (expected FS2K's photo/, sketch/, "
                        "anno_train.json, anno_test.json)")
    for sub in ("photo", "sketch"):
        if not (root / sub).is_dir():
            raise FS2KError(f"{root / sub}: folder missing; is {root} an FS2K folder?")
    report = Report()
    records, named = read_annotations(root, report)
    rows = attach_images(root, records, report, progress=progress)
    _report_orphans(root, named, report)
    if not rows:
        raise FS2KError(f"{root}: no usable photo/sketch pair\n{report.format()}")
    table = pd.DataFrame(rows)
    cols = ["sample_id", "image_name", "subset", "fs2k_split", "photo_path", "sketch_path",
            "width", "height", *schema.FS2K.names, *schema.COLOR_FIELDS]
    table = table[cols].sort_values("sample_id", kind="stable").reset_index(drop=True)
    for name in schema.FS2K.names:
        table[name] = table[name].astype("int64")
    return table, report
