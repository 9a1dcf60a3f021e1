"""DVC stage `train`: the model named in params.yaml on the train split, chosen on val.

Outputs: `train.out/` (best.pt, last.pt, model.json: how to rebuild the network and which
MLflow run holds it), `metrics/train.json` (best epoch and its validation scores) and the
per-epoch curves `plots/train/history.csv`. The run, its curves and the model go to MLflow.
"""

from __future__ import annotations

import csv
import io
import sys
from pathlib import Path
from typing import Any

import torch

from esgar.data.dataset import SketchDataset
from esgar.data.table import load_table
from esgar.integrations import tracking
from esgar.io import write_json, write_text
from esgar.masks.store import read_meta
from esgar.models.backbones import PretrainedWeightsError
from esgar.models.factory import AttributeModel, create_model
from esgar.training import TrainConfig, seed_everything, train
from pipeline.common import load_params, run_stage, stage_args


def build_model(mp: dict[str, Any], pretrained: bool | str | None = None) -> AttributeModel:
    return create_model(
        mp["backbone"], mp["head"], region_names=mp["regions"],
        attribute_regions=mp["attribute_regions"],
        pretrained=mp["pretrained"] if pretrained is None else pretrained,
        img_size=mp["img_size"], **((mp.get("head_kwargs") or {}).get(mp["head"]) or {}))


def datasets(table, mp: dict[str, Any], grid: tuple[int, int]) -> dict[str, SketchDataset]:
    return {split: SketchDataset(table[table["split"] == split], mp["masks"], mp["regions"],
                                 mp["img_size"], grid, train=split == "train",
                                 grid_rule=mp["grid_rule"])
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
    seed_everything(tp["seed"])  # the initial weights too
    net = build_model(mp)
    data = datasets(load_table(mp["table"]), mp, net.grid_size)
    cfg = TrainConfig(**{k: v for k, v in tp.items() if k in TrainConfig.__dataclass_fields__})
    out = Path(tp["out"])
    tags = {"stage": "train", "head": mp["head"], "backbone": mp["backbone"],
            **tracking.data_version([mp["table"], mp["masks"]])}
    params = {"model": mp, "train": tp, "mask_store": read_meta(mp["masks"])}
    with tracking.run(f"train-{mp['head']}-{mp['backbone']}", params, tags) as active:
        result = train(net, data["train"], data["val"], cfg, out, resume=tp["resume"],
                       on_epoch=lambda e, m: tracking.log_metrics(m, step=e))
        net.load_state_dict(torch.load(out / "best.pt", map_location="cpu"))
        net.cpu()
        example = next(iter(torch.utils.data.DataLoader(data["val"], batch_size=2)))
        tracking.log_model(net, {"image": example["image"].numpy(),
                                 "grids": example["grids"].numpy()})
        best = result.history[result.best_epoch - 1]
        summary = {"best_epoch": result.best_epoch, "epochs_run": result.epochs_run,
                   "stopped_early": result.stopped_early,
                   **{k: v for k, v in best.items() if k.startswith("val/")}}
        tracking.log_metrics({f"best/{k}": float(v) for k, v in summary.items()})
        write_text(tp["history"], history_csv(result.history))
        tracking.log_artifact(tp["history"], "plots")
        run_id = active.info.run_id
    write_json(out / "model.json", {"model": {**net.config, "pretrained": False},
                                    "grid": list(net.grid_size), "mlflow_run_id": run_id,
                                    "tracking_uri": tracking.tracking_uri()})
    write_json(tp["metrics"], summary)
    print(f"train: best epoch {result.best_epoch}, val mean balanced accuracy "
          f"{result.best_score:.4f} (MLflow run {run_id})", file=sys.stderr)


if __name__ == "__main__":
    run_stage(main, PretrainedWeightsError, FileNotFoundError)
