"""DVC stage `train`: the model named in params.yaml on the train split, picked on val.

Outputs: `models/` (best.pt, last.pt, model.json: how to rebuild it), `metrics/train.json`
(best epoch and its validation scores), the per-epoch curves `plots/train/history.csv`; the
run, its curves and the model are logged to MLflow.
"""

from __future__ import annotations

import csv
import io
import sys
from pathlib import Path
from typing import Any

import torch

from esgar import schema
from esgar.data.dataset import SketchDataset
from esgar.data.table import load_table
from esgar.integrations import tracking
from esgar.io import write_json, write_text
from esgar.masks.store import read_meta
from esgar.models.factory import create_model
from esgar.training import TrainConfig, train
from pipeline.common import load_params, run_stage, stage_args


def model_config(mp: dict[str, Any], region_names: list[str]) -> dict[str, Any]:
    """Keyword arguments of `create_model`, JSON-able, enough to rebuild the network."""
    return {
        "backbone": mp["backbone"], "head": mp["head"],
        "attributes": list(schema.ATTRIBUTE_NAMES), "region_names": region_names,
        "attribute_regions": mp["attribute_regions"], "pretrained": False,
        "img_size": mp["img_size"], **mp.get("head_kwargs", {}),
    }


def build_datasets(table, mask_dir: Path, region_names: list[str], mp: dict[str, Any],
                   grid: tuple[int, int], cache: bool = True) -> dict[str, SketchDataset]:
    return {split: SketchDataset(table[table["split"] == split], mask_dir, region_names,
                                 mp["img_size"], grid, train=split == "train",
                                 grid_rule=mp["grid_rule"], cache=cache)
            for split in ("train", "val", "test")}


def history_csv(history: list[dict[str, float]]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(history[0]))
    writer.writeheader()
    writer.writerows(history)
    return buf.getvalue()


def main() -> None:
    args = stage_args(__doc__)
    mp, tp = load_params("model", args.params), load_params("train", args.params)
    mask_dir = Path(mp["masks"])
    region_names = sorted(set(mp["attribute_regions"].values()))
    table = load_table(mp["table"])
    net = create_model(**{**model_config(mp, region_names), "pretrained": mp["pretrained"]})
    grid = tuple(net.grid_size)
    data = build_datasets(table, mask_dir, region_names, mp, grid)
    cfg = TrainConfig(**{k: v for k, v in tp.items() if k in TrainConfig.__dataclass_fields__})
    out = Path(tp["out"])
    run_params = {"model": mp, "train": tp, "masks_meta": read_meta(mask_dir)}
    tags = {"stage": "train", **tracking.data_version([mp["table"], str(mask_dir)])}

    with tracking.run(f"train-{mp['head']}-{mp['backbone']}", run_params, tags):
        result = train(net, data["train"], data["val"], cfg, out, resume=tp["resume"],
                       on_epoch=lambda e, m: tracking.log_metrics(m, step=e))
        net.load_state_dict(torch.load(out / "best.pt", map_location="cpu"))
        net.cpu()
        example = next(iter(torch.utils.data.DataLoader(data["val"], batch_size=2)))
        tracking.log_model(net, model_config(mp, region_names), list(schema.ATTRIBUTE_NAMES),
                           {"image": example["image"].numpy(), "grids": example["grids"].numpy()})
        best = result.history[result.best_epoch - 1]
        summary = {"best_epoch": result.best_epoch, "epochs_run": result.epochs_run,
                   "stopped_early": result.stopped_early,
                   **{k: v for k, v in best.items() if k.startswith("val/")}}
        tracking.log_metrics({f"best/{k}": v for k, v in summary.items()
                              if isinstance(v, (int, float))})
        run_id = tracking.mlflow.active_run().info.run_id

    write_json(out / "model.json", {"model": model_config(mp, region_names),
                                    "grid": list(grid), "mlflow_run_id": run_id,
                                    "tracking_uri": tracking.tracking_uri()})
    write_json(tp["metrics"], summary)
    write_text(tp["history"], history_csv(result.history))
    print(f"train: best epoch {result.best_epoch}, val mean balanced accuracy "
          f"{result.best_score:.4f} (MLflow run {run_id})", file=sys.stderr)


if __name__ == "__main__":
    run_stage(main, FileNotFoundError, KeyError, RuntimeError, ValueError)
