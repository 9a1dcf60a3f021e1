"""DVC stage `crossfit`: out-of-sample class probabilities of every train and val sketch.

The train and val sketches are cut into K stratified folds (`crossfit.folds`); each fold is
judged by what was fitted on the others (see `esgar.active.crossfit`). `crossfit.method`:
- `features` (default): the trained model's (`crossfit.model`) descriptor of every sketch for
  every attribute, and per attribute a logistic regression fitted on the other folds;
- `folds`: K models, each trained on the other folds with the configured backbone and head,
  cheaper than the main model (`crossfit.epochs`, `crossfit.img_size`);
- `both`: the mean of the two (the folds' models ensembled with the main model's view).
`folds` trains `crossfit.processes` folds at once, each in its own process with an equal share of
the CPU's threads. The test split is scored only with `crossfit.score_test: true`. Outputs:
`crossfit.out/probs.parquet` (sample_id, split, fold, per attribute the current label and
`<a>_prob`), the out-of-fold mean balanced accuracy as DVC metrics (`crossfit.metrics`), each
attribute's too and the method in `crossfit.report`; `folds` keeps the folds' checkpoints in
`crossfit.work`, so an interrupted fold resumes.
"""

from __future__ import annotations

import logging
from functools import partial

import numpy as np
import pandas as pd

from esgar import schema
from esgar.active.crossfit import crossfit, crossfit_features
from esgar.data.table import load_table
from esgar.errors import ConfigError
from esgar.io import building_dir, claim_dir, write_json
from esgar.masks.store import region_names
from esgar.metrics import balanced_accuracy
from esgar.models.factory import check_model_regions, create_model, load_trained
from pipeline.common import run_stage, stage_args
from pipeline.params.base import load
from pipeline.params.model import CrossfitParams, ModelParams, TrainParams

log = logging.getLogger("pipeline.crossfit")
OWNER = "crossfit"


def mean_probs(a: pd.DataFrame, b: pd.DataFrame) -> pd.DataFrame:
    """The mean of two crossfit outputs over the same rows in the same order and folds."""
    if not (a["sample_id"].equals(b["sample_id"]) and a["fold"].equals(b["fold"])):
        raise AssertionError("the two crossfit outputs are not over the same rows and folds")
    out = a.copy()
    for col in (c for c in a.columns if c.endswith("_prob")):
        out[col] = [(x + y) / 2 for x, y in zip(a[col], b[col], strict=True)]
    return out


def main() -> None:
    args = stage_args(__doc__)
    params = load(args.params, model=ModelParams, train=TrainParams, crossfit=CrossfitParams)
    mp, tp, cp = params["model"], params["train"], params["crossfit"]
    regions = region_names(mp.masks)
    check_model_regions(schema.ATTRIBUTE_NAMES, regions, mp.attribute_regions)
    table = load_table(mp.table)
    n = int(table["split"].isin(["train", "val"]).sum())
    if cp.folds * 2 > n:  # before any fold trains, or an old fold's checkpoint is touched
        raise ConfigError(f"crossfit.folds {cp.folds}: the {n} train and val sketches make "
                          f"folds of under two sketches; use at most {n // 2}")
    claim_dir(cp.work, OWNER)
    fit = table[table["split"].isin(["train", "val"])]
    test = table[table["split"] == "test"] if cp.score_test else None
    if cp.method in ("features", "both"):
        net, _ = load_trained(cp.model)  # before any fold trains
        probs = crossfit_features(fit, mp.masks, net, cp.folds, cp.seed, cp.regularization,
                                  cp.batch_size, tp.device, tp.precision, extra=test)
    if cp.method in ("folds", "both"):
        cfg = tp.config().model_copy(update={"epochs": cp.epochs, "batch_size": cp.batch_size})

        build = partial(create_model, mp.backbone, mp.head, region_names=regions,
                        attribute_regions=mp.attribute_regions, pretrained=mp.pretrained,
                        img_size=cp.img_size, **mp.kwargs())
        by_folds = crossfit(fit, mp.masks, build, cfg, cp.folds, cp.seed,
                            cp.inner_val_fraction, cp.work, extra=test, processes=cp.processes)
        probs = by_folds if cp.method == "folds" else mean_probs(probs, by_folds)
    oof = probs[probs["fold"] >= 0]
    metrics = {"samples": len(oof), "folds": cp.folds, "method": cp.method,
               **{f"oof/bacc/{a}": balanced_accuracy(
                   oof[a].to_numpy(), np.stack(oof[f"{a}_prob"]).argmax(1),
                   schema.attribute(a).num_classes) for a in schema.ATTRIBUTE_NAMES}}
    metrics["oof/mean_bacc"] = float(np.mean([metrics[f"oof/bacc/{a}"]
                                              for a in schema.ATTRIBUTE_NAMES]))
    with building_dir(cp.out, OWNER) as tmp:
        probs.to_parquet(tmp / "probs.parquet", index=False)
    write_json(cp.report, metrics)
    write_json(cp.metrics, {k: metrics[k] for k in ("samples", "folds", "oof/mean_bacc")})
    log.info("%d sketches scored out of sample by %d folds (%s); out-of-fold mean balanced acc "
             "%.4f", len(probs), cp.folds, cp.method, metrics["oof/mean_bacc"])


if __name__ == "__main__":
    run_stage(main)
