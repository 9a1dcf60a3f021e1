"""A served request's rows as files, predicted, and back as rows: what the served model does.

    out = serve_frame(predictor, frame)   # frame: `sketch`, optional `photo` and `masks`,
                                          # base64 image bytes per row

`esgar.inference.pyfunc` (the model MLflow serves) calls `serve_frame`; it is plain pandas in
and out, so it is tested without a server too.
"""

from __future__ import annotations

import base64
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from esgar.errors import EsgarError
from esgar.inference.files import collect
from esgar.inference.masking import MaskOptions
from esgar.inference.model import Predictor
from esgar.inference.predict import predict
from esgar.masks.importer import MaskError

__all__ = ["WEIGHTS_VARIABLE", "decode_inputs", "serve_frame"]

WEIGHTS_VARIABLE = "ESGAR_PARSER_WEIGHTS"  # the folder holding the face parser's weights


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
    """A request frame (`sketch`, optional `photo`, `masks`: base64 image bytes; give masks for
    every row or for none) -> `Prediction.frame`, one row per request row in its order,
    `sketch` holding the row number. Without masks the face parser runs, its weights from the
    folder `ESGAR_PARSER_WEIGHTS` names (else facexlib's)."""
    weights = os.environ.get(WEIGHTS_VARIABLE) or None
    with tempfile.TemporaryDirectory(prefix="esgar-serve-") as tmp:
        sketches, photos, masks, problems = decode_inputs(frame, tmp)
        table, failures = collect([p for p in sketches if str(p) not in problems], photos)
        options = MaskOptions(masks_dir=masks, parser_weights=Path(weights) if weights else None,
                              point_to=f"set {WEIGHTS_VARIABLE} to that folder where the model "
                                       "is served")
        result = predict(predictor, table, options, failures={**problems, **failures},
                         show_progress=False)
        out = result.frame(order=[str(p) for p in sketches])
        out["error"] = [e.replace(f"{tmp}{os.sep}", "") for e in out["error"]]
    out["sketch"] = [str(i) for i in range(len(out))]
    return out
