"""Masks for new sketches, made by the masks stage's own functions (`esgar.masks.build`).

    options = MaskOptions(masks_dir=None, parser="bisenet")       # parse; or ready masks
    masks = SketchMasks(predictor, options, device)
    made = masks.make(rows)     # {row position: label map [H,W] / bool masks [R,H,W] / problem}

Ready masks are label maps (`<dir>/<sketch stem>.png`) or region folders
(`<dir>/seg_<region>/<sketch stem>.png`); otherwise facexlib parses each sketch's photo (when
there is one) or the sketch. The regions, fallbacks and grid rule are the model's own.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from esgar.errors import ConfigError
from esgar.inference.files import companion
from esgar.inference.model import Predictor
from esgar.masks.build import IMPORT_FORMATS, imported_masks, parsed_masks
from esgar.masks.importer import MaskError
from esgar.masks.labels import LABEL_ORDERS
from esgar.masks.parsers import PARSERS, load_parser

__all__ = ["MaskOptions", "SketchMasks"]


@dataclass
class MaskOptions:
    """Where masks come from. masks_dir: ready masks (None: parse), as `masks_format`
    (`label_maps`: `<dir>/<sketch stem>.png` in `label_order`, default the model's;
    `region_folders`: `<dir>/seg_<region>/<sketch stem>.png`). parser: facexlib's model
    (default the model's, else bisenet), its weights in `parser_weights` (None: facexlib's
    folder or download); `point_to`: how the user names that folder, for the message when the
    weights are missing. parse_input: `auto` (the photo when given, else the sketch), `photo`
    or `sketch`."""

    masks_dir: Path | None = None
    masks_format: str = "label_maps"
    label_order: str | None = None
    parser: str | None = None
    parser_weights: Path | None = None
    parse_input: str = "auto"
    precision: str = "auto"
    parse_batch_size: int = 8
    point_to: str = "pass that folder as the parser's weights folder"

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


class SketchMasks:
    """Label maps (or region masks) for rows of a collected table (`esgar.inference.files`);
    the parser is loaded once, on first use."""

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
        if o.masks_dir is None:
            return self._parse(rows)
        out: dict[int, np.ndarray | str] = {}
        for i in range(len(rows)):
            row = rows.iloc[[i]].copy()
            if o.masks_format == "label_maps":
                found = companion(Path(o.masks_dir), row["image_name"].iat[0], (".png",))
                if found is not None:
                    row["image_name"] = found.stem
            try:
                _, got = next(imported_masks(row, o.masks_dir, o.masks_format,
                                             self.label_order, self.names))
                out[i] = got
            except MaskError as e:
                out[i] = str(e)
        return out

    def _parse(self, rows: pd.DataFrame) -> dict[int, np.ndarray | str]:
        if self._parser is None:
            self._parser = load_parser(self.parser_name, self.options.parser_weights,
                                       str(self.device), point_to=self.options.point_to)
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
