"""Predict new sketches: masks for each (`esgar.inference.masking`), then class probabilities.

    result = predict(predictor, table, MaskOptions(), failures=failures)
    result = predict(predictor, table, options, explain=write_evidence_maps)   # and a callback

Sketches go through in chunks of `CHUNK`: their masks are built into a temporary store by the
masks stage's own `build_store` (regions, fallbacks, grids as the model was trained), then
predicted in batches. A sketch that cannot be used (no mask, no face region found) is listed
with its reason; the others go on.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from torch.utils.data import DataLoader

from esgar import schema
from esgar.data.dataset import SketchDataset
from esgar.device import resolve_precision
from esgar.errors import ConfigError
from esgar.forward import batched_logits, probabilities
from esgar.inference.masking import MaskOptions, SketchMasks
from esgar.inference.model import Predictor
from esgar.inference.results import Prediction
from esgar.log import progress
from esgar.masks.build import build_store
from esgar.models.factory import AttributeModel

__all__ = ["CHUNK", "Explainer", "predict"]

CHUNK = 64  # sketches whose masks are built and predicted together (bounded memory)
# Called per chunk with the network, the chunk's dataset and its class probabilities
# ({attribute: float [N,C]} in dataset order): evidence maps, for example.
Explainer = Callable[[AttributeModel, SketchDataset, Mapping[str, np.ndarray]], Any]
_log = logging.getLogger(__name__)


def _no_region(index_row: pd.Series, names: Sequence[str]) -> bool:
    return all(float(index_row[f"area_{r}"]) == 0 for r in names)


def predict(predictor: Predictor, table: pd.DataFrame, options: MaskOptions | None = None,
            batch_size: int = 16, explain: Explainer | None = None,
            failures: Mapping[str, str] | None = None, chunk: int = CHUNK,
            show_progress: bool = True, precision: str = "auto") -> Prediction:
    """Masks for every row of `table` (from `esgar.inference.files.collect`), then class
    probabilities; `explain` is called on each chunk that was predicted. `failures`: the
    problems `collect` found, carried into the result. `precision`: of the network's forward
    passes (auto, bf16 or fp32; `esgar.device.resolve_precision`), as `train.precision` is
    for the evaluate stage: the same setting on the same machine predicts what it scored."""
    options = options or MaskOptions()
    options.check()
    if batch_size < 1:
        raise ConfigError(f"batch size {batch_size}: give at least 1")
    net, recipe = predictor.net, predictor.recipe
    device = next(net.parameters()).device
    prec = resolve_precision(precision, device)
    prec.prepare(net)
    masks = SketchMasks(predictor, options, device)
    _log.info("predicting %d sketch(es) with %s in %s; %s", len(table), predictor.source,
              prec.describe(), masks.describe())
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
                logits, order = batched_logits(net, DataLoader(ds, batch_size=batch_size),
                                               device, prec)
                p = probabilities({a: z[np.argsort(order)] for a, z in logits.items()})
                for a, v in p.items():
                    probs.setdefault(a, []).append(v)
                if explain is not None:
                    explain(net, ds, p)
                kept.append(part)
                fell += [[r for r in recipe["regions"] if row[f"fell_back_{r}"]]
                         for _, row in index.iterrows()]
            bar.update(len(rows))
    bar.close()
    rows = pd.concat(kept, ignore_index=True) if kept else table.iloc[:0]
    out = {a: np.concatenate(v) for a, v in probs.items()} or {
        a: np.zeros((0, schema.attribute(a).num_classes), np.float32) for a in net.attributes}
    return Prediction(rows, out, fell, failed)
