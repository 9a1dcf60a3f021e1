"""DVC stage `train`: the model named in params.yaml on the train split, chosen on val.

Outputs: `train.out/` (best.pt, last.pt, model.json: how to rebuild the network, which MLflow
run holds it, the precision it trained in and on what hardware, and how its masks were made, so
`esgar predict` makes the same for new sketches),
`train.metrics` (DVC metrics: the best epoch and the epochs run), `train.report` (that, the
best epoch's validation scores and the training labels' class counts, which the loss's priors
come from) and the per-epoch curves `plots/train/history.csv`. The run, its curves and the model
go to MLflow.

`train.labeled_fraction` below 1 is LSA's limited-label protocol: the model trains on that
seeded, stratified share of the training sketches' labels (`train.labeled_seed`), the others
unused; validation and test stay whole. The report records the share and how many sketches.

`train.processes` above 1 trains data-parallel on this machine: the stage checks its inputs and
the tracking server, then starts that many copies of itself through torchrun (esgar.distributed);
rank 0 writes every output and the one MLflow run. Started by torchrun directly (several
machines: `torchrun --nnodes ... -m pipeline.train`), it is one rank of that run whatever
`train.processes` says.
"""

from __future__ import annotations

import logging
from functools import partial

import pandas as pd
import torch

from esgar import log as esgar_log
from esgar import schema
from esgar.data.dataset import SketchDataset
from esgar.data.table import labeled_rows, load_table
from esgar.device import resolve_device, resolve_precision
from esgar.distributed import Ranks, launch, under_torchrun
from esgar.errors import ConfigError
from esgar.inference.publish import log_served_model
from esgar.integrations import tracking
from esgar.io import claim_dir, write_json, write_with
from esgar.masks.store import mask_recipe, region_names
from esgar.models.factory import MODEL_FILE, check_model_regions, create_model, save_trained
from esgar.training import BEST, LAST, seed_everything, train
from pipeline.common import run_stage, stage_args
from pipeline.params.base import load
from pipeline.params.model import ModelParams, TrainParams

log = logging.getLogger("pipeline.train")
OWNER = "train"


def main() -> None:
    args = stage_args(__doc__)
    params = load(args.params, model=ModelParams, train=TrainParams)
    mp, tp = params["model"], params["train"]
    ranks = Ranks.from_env()
    if ranks.main:
        tracking.check_tracking()
        claim_dir(tp.out, OWNER, own_files=(BEST, LAST, MODEL_FILE))
    else:
        esgar_log.configure(quiet=True)  # rank 0 speaks for the run
    regions = region_names(mp.masks)
    check_model_regions(schema.ATTRIBUTE_NAMES, regions, mp.attribute_regions)
    table = load_table(mp.table)
    if tp.processes > 1 and not under_torchrun():  # checked above; now the ranks
        gpus = torch.cuda.device_count() if resolve_device(tp.device).type == "cuda" else 0
        if 0 < gpus < tp.processes:
            raise ConfigError(f"train.processes {tp.processes}: this machine has {gpus} CUDA "
                              "device(s), one per process; use at most that many")
        launch("pipeline.train", ["--params", str(args.params), *(["-q"] if args.quiet else [])],
               tp.processes)
        return
    seed_everything(tp.seed)  # the initial weights too
    net = create_model(mp.backbone, mp.head, region_names=regions,
                       attribute_regions=mp.attribute_regions, pretrained=mp.pretrained,
                       img_size=mp.img_size, **mp.kwargs())
    rows = {split: table[table["split"] == split] for split in ("train", "val")}
    rows["train"] = labeled_rows(rows["train"], tp.labeled_fraction, tp.labeled_seed)
    data = {split: SketchDataset.for_model(net, rows[split], mp.masks, train=split == "train")
            for split in ("train", "val")}
    fit = partial(train, net, data["train"], data["val"], tp.config(), tp.out, resume=tp.resume,
                  ranks=ranks)
    if not ranks.main:
        fit()
        return
    precision = resolve_precision(tp.precision, resolve_device(tp.device))
    tags = {"stage": "train", "head": mp.head, "backbone": mp.backbone, **precision.tags(),
            "processes": str(ranks.world), "labeled_fraction": str(tp.labeled_fraction),
            **tracking.data_version([str(mp.table), str(mp.masks)])}
    recipe = mask_recipe(mp.masks)  # how new sketches' masks must be made (esgar predict)
    logged = {"model": mp.model_dump(mode="json", by_alias=True),
              "train": tp.model_dump(mode="json"), "mask_store": recipe}
    with tracking.run(f"train-{mp.head}-{mp.backbone}", logged, tags) as active:
        result = fit(on_epoch=lambda e, m: tracking.log_metrics(m, step=e))
        net.load_state_dict(torch.load(tp.out / BEST, map_location="cpu", weights_only=True))
        net.cpu()
        log_served_model(net, recipe)
        best = result.history[result.best_epoch - 1]
        summary = {"best_epoch": result.best_epoch, "epochs_run": result.epochs_run,
                   "stopped_early": result.stopped_early,
                   **{k: v for k, v in best.items() if k.startswith("val/")}}
        tracking.log_metrics({f"best/{k}": float(v) for k, v in summary.items()})
        history = pd.DataFrame(result.history)
        write_with(tp.history, lambda tmp: history.to_csv(tmp, index=False))
        tracking.log_artifact(tp.history, "plots")
        run_id = active.info.run_id
    save_trained(tp.out, net, BEST, mlflow_run_id=run_id, tracking_uri=tracking.tracking_uri(),
                 masks=recipe, precision=result.precision)
    # the class counts the loss's priors came from (relabels change them)
    write_json(tp.report, {**summary, "processes": ranks.world,
                           "class_counts": result.class_counts,
                           **({"labeled": {"fraction": tp.labeled_fraction,
                                           "seed": tp.labeled_seed,
                                           "samples": len(rows["train"])}}
                              if tp.labeled_fraction < 1 else {})})
    write_json(tp.metrics, {k: summary[k] for k in ("best_epoch", "epochs_run")})
    log.info("best epoch %d, val mean balanced accuracy %.4f (MLflow run %s)",
             result.best_epoch, result.best_score, run_id)


if __name__ == "__main__":
    run_stage(main)
