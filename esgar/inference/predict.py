"""New sketches in, attributes out: a trained model on files nobody labelled.

    predictor = load_predictor("models:/esgar-fs2k@champion", work_dir)  # or a run id, a folder
    table, failures = collect(["my_sketches/"], photos="my_photos/")
    result = predict(predictor, table, MaskOptions(), explain_dir="evidence/")
    result.frame()        # one row per sketch: its classes and probabilities, or its error

Masks are made the way the `masks` stage makes them, through the same functions
(`esgar.masks.build`): read from ready label maps or region folders (`MaskOptions.masks_dir`),
or parsed by facexlib from the photo when there is one, else from the sketch; then the model's
regions, the fallbacks and the grid rule it was trained with, all recorded in its model.json
(`mask_recipe`). A file that cannot be used (unreadable, no mask, no face region found) is
reported with its reason; the others go on.
"""

from __future__ import annotations

import base64
import logging
import os
import re
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader

from esgar import schema
from esgar.data.dataset import SketchDataset
from esgar.device import resolve_device
from esgar.errors import ConfigError, EsgarError
from esgar.log import progress
from esgar.masks.build import IMPORT_FORMATS, build_store, imported_masks, parsed_masks
from esgar.masks.importer import MaskError
from esgar.masks.labels import LABEL_ORDERS
from esgar.masks.parsers import PARSERS, load_parser
from esgar.models.factory import AttributeModel, ModelLoadError, load_trained
from esgar.predict import predict_logits, probabilities

__all__ = ["IMAGE_SUFFIXES", "MaskOptions", "Prediction", "Predictor", "collect",
           "decode_inputs", "load_predictor", "predict", "result_columns", "serve_frame"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")
CHUNK = 64  # sketches whose masks are built and predicted together (bounded memory)
_RUN_ID = re.compile(r"[0-9a-f]{32}")
RECIPE_KEYS = {"regions", "fallback", "grid_rule", "grid_image_size"}  # of model.json's "masks"
_log = logging.getLogger(__name__)


@dataclass
class Predictor:
    """A trained network with the mask recipe it was trained on and where it came from."""

    net: AttributeModel
    recipe: dict[str, Any]
    source: str

    @classmethod
    def from_dir(cls, model_dir: str | Path, device: str | torch.device = "cpu",
                 source: str | None = None) -> Predictor:
        net, info = load_trained(model_dir, device)
        recipe = info.get("masks")
        where = Path(model_dir) / "model.json"
        if not isinstance(recipe, Mapping) or not RECIPE_KEYS <= set(recipe):
            raise ModelLoadError(f"{where}: the model records no mask recipe (regions, "
                                 "fallbacks, grid rule), so its masks cannot be made for new "
                                 "sketches; retrain it with this version (dvc repro train)")
        regions = {r["name"]: list(r["classes"]) for r in recipe["regions"]}
        missing = [r for r in net.region_names if r not in regions]
        if missing:
            raise ModelLoadError(f"{where}: the model's region(s) {', '.join(missing)} are not "
                                 f"in its mask recipe ({', '.join(regions)})")
        return cls(net, {**recipe, "regions": regions}, source or str(model_dir))


def load_predictor(ref: str | Path, work_dir: str | Path, device: str = "cpu") -> Predictor:
    """A `Predictor` from a trained-model folder (holding model.json), a registry reference
    (`models:/NAME@ALIAS`, `models:/NAME/VERSION`, `NAME@ALIAS`, `NAME/VERSION`) or the id of
    a train run; registry and run models are downloaded under `work_dir`."""
    dev = resolve_device(device)
    if Path(ref).is_dir():
        return Predictor.from_dir(ref, dev)
    from esgar.integrations import registry as reg

    text = str(ref).strip()
    if reg.parse_ref(text) is None and not _RUN_ID.fullmatch(text):
        raise EsgarError(f"{ref}: no such model folder, and not a registry reference "
                         "(models:/NAME@ALIAS, models:/NAME/VERSION) or a run id")
    c = reg.client()
    found = reg.resolve_ref(c, text)
    if found:
        name, version = found
        model_dir = reg.download_model_dir(c, name, version, work_dir)
        return Predictor.from_dir(model_dir, dev, f"{name} version {version}")
    model_dir = reg.download_run_model_dir(c, text, work_dir)
    return Predictor.from_dir(model_dir, dev, f"run {text}")


@dataclass
class MaskOptions:
    """Where masks come from. masks_dir: ready masks (None: parse), as `masks_format`
    (`label_maps`: `<dir>/<sketch stem>.png` in `label_order`, default the model's;
    `region_folders`: `<dir>/seg_<region>/<sketch stem>.png`). parser: facexlib's model
    (default the model's, else bisenet), its weights in `parser_weights` (None: facexlib's
    folder or download). parse_input: `auto` (the photo when given, else the sketch), `photo`
    or `sketch`."""

    masks_dir: Path | None = None
    masks_format: str = "label_maps"
    label_order: str | None = None
    parser: str | None = None
    parser_weights: Path | None = None
    parse_input: str = "auto"
    precision: str = "auto"
    parse_batch_size: int = 8

    def check(self) -> None:
        if self.masks_format not in IMPORT_FORMATS:
            raise ConfigError(f"masks format {self.masks_format!r}: use one of "
                              f"{', '.join(IMPORT_FORMATS)}")
        if self.label_order is not None and self.label_order not in LABEL_ORDERS:
            raise ConfigError(f"label order {self.label_order!r}: use one of "
                              f"{', '.join(LABEL_ORDERS)}")
        if self.parser is not None and self.parser not in PARSERS:
            raise ConfigError(f"parser {self.parser!r}: use one of {', '.join(PARSERS)}")
        if self.parse_input not in ("auto", "photo", "sketch"):
            raise ConfigError(f"parse input {self.parse_input!r}: use auto, photo or sketch")
        if self.masks_dir is not None and not Path(self.masks_dir).is_dir():
            raise ConfigError(f"{self.masks_dir}: no such masks folder")


def _images_in(path: Path) -> list[Path]:
    if path.is_dir():
        return sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES
                      and p.is_file())
    return [path]


def _image_size(path: Path) -> tuple[int, int] | str:
    """(width, height) of an image as the parser and the dataset read it, or the problem."""
    if not path.is_file():
        return "no such file"
    im = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if im is None:
        return "cannot read the image (not an image file, or damaged)"
    return im.shape[1], im.shape[0]


def _stems(stem: str) -> list[str]:
    """The names a sketch's photo or mask may have: its own stem, and FS2K's pairing
    (sketch `sketch0001` <-> photo and label map `image0001`)."""
    return [stem, *([f"image{stem[6:]}"] if stem.startswith("sketch") else [])]


def _companion(folder: Path | None, stem: str, suffixes: Sequence[str] = IMAGE_SUFFIXES
               ) -> Path | None:
    """The file in `folder` named like the sketch `stem` (see `_stems`), if any."""
    if folder is None:
        return None
    return next((folder / f"{s}{x}" for s in _stems(stem) for x in suffixes
                 if (folder / f"{s}{x}").is_file()), None)


def collect(paths: Iterable[str | Path], photos: str | Path | None = None
            ) -> tuple[pd.DataFrame, dict[str, str]]:
    """Sketch files (folders are searched recursively for images) -> a table with one row per
    usable sketch (sample_id, sketch_path, photo_path or "", image_name = the stem the masks
    and photos are looked up by, name = a unique output name, width, height, split) and
    {path: problem} for the files that cannot be used. A photo, looked up in `photos` by the
    sketch's stem, must have the sketch's size."""
    photo_dir = Path(photos) if photos is not None else None
    if photo_dir is not None and not photo_dir.is_dir():
        raise ConfigError(f"{photo_dir}: no such photos folder")
    rows, failures, names = [], {}, set()
    for given in paths:
        files = _images_in(Path(given))
        if not files:
            failures[str(given)] = "no images in this folder"
        for path in files:
            size = _image_size(path)
            if isinstance(size, str):
                failures[str(path)] = size
                continue
            photo = _companion(photo_dir, path.stem)
            photo_size = _image_size(photo) if photo is not None else size
            if photo_size != size:
                failures[str(path)] = (
                    f"its photo {photo} is {photo_size[0]}x{photo_size[1]}, the sketch "
                    f"{size[0]}x{size[1]}" if isinstance(photo_size, tuple)
                    else f"its photo {photo}: {photo_size}")
                continue
            name, k = path.stem, 2
            while name in names:
                name, k = f"{path.stem}_{k}", k + 1
            names.add(name)
            rows.append({"sample_id": f"s{len(rows):06d}", "sketch_path": str(path),
                         "photo_path": str(photo or ""), "image_name": path.stem, "name": name,
                         "width": size[0], "height": size[1], "split": "predict"})
    columns = ["sample_id", "sketch_path", "photo_path", "image_name", "name", "width",
               "height", "split"]
    return pd.DataFrame(rows, columns=columns), failures


@dataclass
class Prediction:
    """Class probabilities of the sketches that could be used and the problems of the others.

    rows: the collected table's usable rows (in input order); probs: {attribute: float [N,C]};
    fell_back: per row the regions filled from their fallback; failures: {path: problem}."""

    rows: pd.DataFrame
    probs: dict[str, np.ndarray]
    fell_back: list[list[str]]
    failures: dict[str, str] = field(default_factory=dict)

    def frame(self, order: Sequence[str] | None = None) -> pd.DataFrame:
        """One row per sketch: `sketch`, `error` ("" when predicted), and per attribute `<a>`
        (the class name) and `<a>.<class>` (its probability; NaN for a failed sketch).
        `order`: sketch paths in the order wanted (default: predicted ones, then failures)."""
        out = {"sketch": list(self.rows["sketch_path"]), "error": [""] * len(self.rows)}
        for a, p in self.probs.items():
            classes = schema.attribute(a).classes
            out[a] = [classes[k] for k in p.argmax(1)]
            for j, c in enumerate(classes):
                out[f"{a}.{c}"] = p[:, j].astype(float)
        good = pd.DataFrame(out, columns=result_columns(list(self.probs)))
        bad = pd.DataFrame({"sketch": list(self.failures), "error": list(self.failures.values())})
        frame = pd.concat([good, bad], ignore_index=True) if len(bad) else good
        frame["fell_back"] = [",".join(f) for f in self.fell_back] + [""] * len(bad)
        if order is not None:
            frame = frame.set_index("sketch").loc[list(order)].reset_index()
        return frame

    def records(self) -> list[dict[str, Any]]:
        """JSON-able: per sketch {"sketch", "error"} or {"sketch", "attributes": {a: {"class",
        "probability", "probabilities": {class: p}}}, "fell_back": [regions]}."""
        out: list[dict[str, Any]] = []
        for i, path in enumerate(self.rows["sketch_path"]):
            attrs = {}
            for a, p in self.probs.items():
                classes = schema.attribute(a).classes
                k = int(p[i].argmax())
                attrs[a] = {"class": classes[k], "probability": round(float(p[i, k]), 6),
                            "probabilities": {c: round(float(v), 6)
                                              for c, v in zip(classes, p[i], strict=True)}}
            out.append({"sketch": path, "attributes": attrs, "fell_back": self.fell_back[i]})
        out += [{"sketch": path, "error": why} for path, why in self.failures.items()]
        return out


def result_columns(attributes: Sequence[str]) -> list[str]:
    """The columns of `Prediction.frame` before `fell_back`."""
    cols = ["sketch", "error"]
    for a in attributes:
        cols += [a, *(f"{a}.{c}" for c in schema.attribute(a).classes)]
    return cols


class _Masks:
    """Label maps (or region masks) for rows of the collected table, made by the masks
    stage's functions; the parser is loaded once, on first use."""

    def __init__(self, predictor: Predictor, options: MaskOptions, device: torch.device):
        self.recipe, self.options, self.device = predictor.recipe, options, device
        self.names = list(predictor.recipe["regions"])
        self.parser_name = options.parser or self.recipe.get("parser") or "bisenet"
        self.label_order = options.label_order or self.recipe.get("label_order") or "canonical"
        self._parser = None
        if options.masks_dir is not None and options.masks_format == "region_folders":
            missing = [r for r in predictor.net.region_names
                       if not (Path(options.masks_dir) / f"seg_{r}").is_dir()]
            if missing:
                raise ConfigError(f"{options.masks_dir}: no seg_<region> folder for the "
                                  f"model's region(s) {', '.join(missing)}")

    def describe(self) -> str:
        o = self.options
        if o.masks_dir is not None:
            return f"masks read from {o.masks_dir} ({o.masks_format}, {self.label_order} order)"
        source = {"auto": "each sketch's photo, else the sketch", "photo": "the photos",
                  "sketch": "the sketches"}[o.parse_input]
        return f"masks parsed by facexlib {self.parser_name} from {source}"

    def make(self, rows: pd.DataFrame) -> dict[int, np.ndarray | str]:
        """{row position: label map [H,W] / bool masks [R,H,W] / the problem}."""
        o = self.options
        if o.masks_dir is not None:
            out: dict[int, np.ndarray | str] = {}
            for i in range(len(rows)):
                row = rows.iloc[[i]].copy()
                if o.masks_format == "label_maps":
                    found = _companion(Path(o.masks_dir), row["image_name"].iat[0], (".png",))
                    if found is not None:
                        row["image_name"] = found.stem
                try:
                    _, got = next(imported_masks(row, o.masks_dir, o.masks_format,
                                                 self.label_order, self.names))
                    out[i] = got
                except MaskError as e:
                    out[i] = str(e)
            return out
        return self._parse(rows)

    def _parse(self, rows: pd.DataFrame) -> dict[int, np.ndarray | str]:
        if self._parser is None:
            self._parser = load_parser(self.parser_name, self.options.parser_weights,
                                       str(self.device))
        use_photo = {"photo": np.ones(len(rows), bool), "sketch": np.zeros(len(rows), bool),
                     "auto": (rows["photo_path"] != "").to_numpy()}[self.options.parse_input]
        out: dict[int, np.ndarray | str] = {}
        for photo in (True, False):
            pos = np.flatnonzero(use_photo == photo)
            if not len(pos):
                continue
            part = rows.iloc[pos]
            if photo and (part["photo_path"] == "").any():
                for k in pos[(part["photo_path"] == "").to_numpy()]:
                    out[int(k)] = "no photo to parse (give --photos, or parse the sketch)"
                keep = part["photo_path"] != ""
                pos, part = pos[keep.to_numpy()], part[keep]
            column = "photo" if photo else "sketch"
            for k, label in parsed_masks(part, self.parser_name, None, str(self.device),
                                         self.options.parse_batch_size, self.options.precision,
                                         column, model=self._parser):
                out[int(pos[k])] = label
        return out


def _no_region(index_row: pd.Series, names: Sequence[str]) -> bool:
    return all(float(index_row[f"area_{r}"]) == 0 for r in names)


def predict(predictor: Predictor, table: pd.DataFrame, options: MaskOptions | None = None,
            batch_size: int = 16, explain_dir: str | Path | None = None,
            explain_method: str = "auto", failures: Mapping[str, str] | None = None,
            chunk: int = CHUNK, show_progress: bool = True) -> Prediction:
    """Masks for every row of `table` (from `collect`), then class probabilities; with
    `explain_dir`, one evidence-map grid per sketch there (`esgar.explain`). `failures`: the
    problems `collect` found, carried into the result."""
    options = options or MaskOptions()
    options.check()
    if batch_size < 1:
        raise ConfigError(f"batch size {batch_size}: give at least 1")
    if explain_dir is not None:
        from esgar.explain import METHODS

        if explain_method not in METHODS:
            raise ConfigError(f"evidence method {explain_method!r}: use one of "
                              f"{', '.join(METHODS)}")
    net, recipe = predictor.net, predictor.recipe
    device = next(net.parameters()).device
    masks = _Masks(predictor, options, device)
    _log.info("predicting %d sketch(es) with %s; %s", len(table), predictor.source,
              masks.describe())
    failed = dict(failures or {})
    kept, probs, fell = [], {}, []
    bar = progress(total=len(table), desc="predict", unit="sketch", disable=not show_progress)
    with tempfile.TemporaryDirectory(prefix="esgar-predict-") as tmp:
        for start in range(0, len(table), chunk):
            rows = table.iloc[start:start + chunk].reset_index(drop=True)
            made = masks.make(rows)
            ok = [i for i in range(len(rows)) if not isinstance(made[i], str)]
            for i in range(len(rows)):
                if isinstance(made[i], str):
                    failed[rows.at[i, "sketch_path"]] = made[i]
            part = rows.iloc[ok].reset_index(drop=True)
            if part.empty:
                bar.update(len(rows))
                continue
            store = Path(tmp) / f"masks_{start}"
            index = build_store(store, part, [(k, made[i]) for k, i in enumerate(ok)],
                                recipe["regions"], recipe["fallback"], [net.grid_size],
                                recipe["grid_rule"], int(recipe["grid_image_size"]),
                                {"source": "predict"}, desc=None)
            empty = [k for k in range(len(part)) if _no_region(index.iloc[k], recipe["regions"])]
            for k in empty:
                failed[part.at[k, "sketch_path"]] = ("no face region found in its masks "
                                                     f"({masks.describe()})")
            usable = [k for k in range(len(part)) if k not in set(empty)]
            part, index = part.iloc[usable].reset_index(drop=True), index.iloc[usable]
            if len(part):
                ds = SketchDataset(part, store, net.region_names, net.backbone.img_size,
                                   net.grid_size, train=False, mean=net.mean, std=net.std,
                                   cache=False, attributes=())
                logits, order = predict_logits(net, DataLoader(ds, batch_size=batch_size),
                                               device)
                p = probabilities({a: z[np.argsort(order)] for a, z in logits.items()})
                for a, v in p.items():
                    probs.setdefault(a, []).append(v)
                if explain_dir is not None:
                    from esgar.explain import explain_dataset

                    explain_dataset(net, ds, p, explain_dir, batch_size, explain_method)
                kept.append(part)
                fell += [[r for r in recipe["regions"] if row[f"fell_back_{r}"]]
                         for _, row in index.iterrows()]
            bar.update(len(rows))
    bar.close()
    rows = pd.concat(kept, ignore_index=True) if kept else table.iloc[:0]
    out = {a: np.concatenate(v) for a, v in probs.items()} or {
        a: np.zeros((0, schema.attribute(a).num_classes), np.float32) for a in net.attributes}
    return Prediction(rows, out, fell, failed)


def _decode(text: Any, what: str, row: int) -> bytes | None:
    if text is None or (isinstance(text, float) and np.isnan(text)) or text == "":
        return None
    try:
        return base64.b64decode(str(text), validate=True)
    except ValueError:
        raise MaskError(f"row {row}: {what} is not base64") from None


def decode_inputs(frame: pd.DataFrame, folder: str | Path) -> tuple[list[Path], Path | None,
                                                                     Path | None, dict[str, str]]:
    """A served request (`sketch`, optional `photo` and `masks`: base64 image bytes per row)
    written as files under `folder`: the sketch paths (in row order), the photo and mask
    folders (None when no row has one) and {sketch path: problem} for undecodable rows."""
    root = Path(folder)
    if "sketch" not in frame.columns:
        raise EsgarError("the request needs a `sketch` column (base64 image bytes)")
    sketches, problems = [], {}
    dirs = {k: root / k for k in ("sketch", "photo", "masks")}
    used = set()
    for i, row in enumerate(frame.to_dict("records")):
        path = dirs["sketch"] / f"{i:06d}.png"
        sketches.append(path)
        for key, folder_ in dirs.items():
            try:
                data = _decode(row.get(key), key, i)
            except MaskError as e:
                problems[str(path)] = str(e)
                continue
            if data is None:
                if key == "sketch":
                    problems[str(path)] = f"row {i}: no sketch"
                continue
            folder_.mkdir(parents=True, exist_ok=True)
            (folder_ / f"{i:06d}.png").write_bytes(data)
            used.add(key)
    return (sketches, dirs["photo"] if "photo" in used else None,
            dirs["masks"] if "masks" in used else None, problems)


def serve_frame(predictor: Predictor, frame: pd.DataFrame) -> pd.DataFrame:
    """The served model's `predict`: a request frame (`sketch`, optional `photo`, `masks`:
    base64 image bytes; give masks for every row or for none) -> `Prediction.frame`, one row
    per request row in its order, `sketch` holding the row number. Without masks the face
    parser runs, its weights from the folder `ESGAR_PARSER_WEIGHTS` names (else facexlib's)."""
    weights = os.environ.get("ESGAR_PARSER_WEIGHTS") or None
    with tempfile.TemporaryDirectory(prefix="esgar-serve-") as tmp:
        sketches, photos, masks, problems = decode_inputs(frame, tmp)
        table, failures = collect([p for p in sketches if str(p) not in problems], photos)
        options = MaskOptions(masks_dir=masks, parser_weights=Path(weights) if weights else None)
        result = predict(predictor, table, options, failures={**problems, **failures},
                         show_progress=False)
        out = result.frame(order=[str(p) for p in sketches])
        out["error"] = [e.replace(f"{tmp}{os.sep}", "") for e in out["error"]]
    out["sketch"] = [str(i) for i in range(len(out))]
    return out
