"""DVC stage `evaluate`: the trained model on val and test, balanced metrics first.

Outputs: `metrics/evaluate.json` ({split: metrics}, see `esgar.metrics.evaluate`), confusion
matrices and attention maps as PNGs under `plots/evaluate/`, the same confusion matrices as
DVC plots (`plots/confusion/<split>_<attribute>.csv`: actual and predicted class names, one row
per sample, drawn by `dvc plots show` with its confusion template), and per-sample predictions
(`evaluate.predictions`, parquet: sample_id, split, and per attribute the label, the prediction
and the predicted class probabilities). Logged to MLflow as a run tagged with the train run.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from esgar import schema
from esgar.data.dataset import IMAGENET_MEAN, IMAGENET_STD, SketchDataset
from esgar.data.table import load_table
from esgar.integrations import tracking
from esgar.io import write_json, write_text, write_with
from esgar.metrics import confusion_matrix, evaluate, plot_confusion
from esgar.models.factory import create_model
from esgar.training import make_loader, predict_logits, resolve_device
from esgar.visualize import attention_sheet, denormalise
from pipeline.common import load_params, run_stage, stage_args


def load_trained(model_dir: Path) -> tuple[torch.nn.Module, dict]:
    info = json.loads((model_dir / "model.json").read_text())
    net = create_model(**info["model"])
    net.load_state_dict(torch.load(model_dir / "best.pt", map_location="cpu"))
    return net.eval(), info


def predictions_frame(ds: SketchDataset, split: str, logits: dict[str, np.ndarray],
                      index: np.ndarray) -> pd.DataFrame:
    rows = ds.table.iloc[index]
    out = pd.DataFrame({"sample_id": rows["sample_id"].to_numpy(), "split": split})
    for a, z in logits.items():
        p = torch.softmax(torch.as_tensor(z), 1).numpy()
        out[a] = rows[a].to_numpy()
        out[f"{a}_pred"] = p.argmax(1)
        out[f"{a}_prob"] = list(p.astype(np.float32))
    return out


def confusion_csv(truth: np.ndarray, pred: np.ndarray, classes: tuple[str, ...]) -> str:
    """`actual,predicted` class names, one row per sample: DVC's confusion template input."""
    names = np.asarray(classes)
    rows = pd.DataFrame({"actual": names[truth], "predicted": names[pred]})
    return rows.to_csv(index=False)


def attention_plot(net, ds: SketchDataset, n: int, path: Path, split: str) -> bool:
    """Attention maps of the first `n` samples, if the head has any. Returns whether drawn."""
    batch = next(iter(torch.utils.data.DataLoader(ds, batch_size=n)))
    with torch.inference_mode():
        logits, maps = net(batch["image"], batch["grids"], return_attention=True)
    if not maps:
        return False
    ids = ds.table["sample_id"].iloc[batch["index"].numpy()].tolist()
    titles = [f"{sid}\n" + " ".join(f"{a[:4]}:{int(logits[a][i].argmax())}" for a in maps)
              for i, sid in enumerate(ids)]
    attention_sheet(denormalise(batch["image"], IMAGENET_MEAN, IMAGENET_STD),
                    {a: m.numpy() for a, m in maps.items()}, titles, path,
                    f"{split}: where each branch attends (predicted class after the name)")
    return True


def main() -> None:
    args = stage_args(__doc__)
    mp, ep = load_params("model", args.params), load_params("evaluate", args.params)
    tp = load_params("train", args.params)
    model_dir = Path(tp["out"])
    net, info = load_trained(model_dir)
    device = resolve_device(tp["device"])
    net.to(device)
    table = load_table(mp["table"])
    plots = Path(ep["plots"])
    attrs = tuple(net.attributes)
    results, frames = {}, []
    for split in ep["splits"]:
        ds = SketchDataset(table[table["split"] == split], mp["masks"], mp["regions"],
                           mp["img_size"], tuple(info["grid"]), train=False,
                           grid_rule=mp["grid_rule"], cache=False)
        logits, index = predict_logits(net, make_loader(ds, tp["batch_size"], False, 0, 0),
                                       device, attrs, amp=tp["amp"], progress=True)
        truth = ds.labels.numpy()[index]
        pred = np.stack([logits[a].argmax(1) for a in attrs], 1)
        results[split] = evaluate(truth, pred, attrs, n_resamples=ep["bootstrap"],
                                  seed=ep["seed"])
        for j, a in enumerate(attrs):
            attribute = schema.attribute(a)
            plot_confusion(confusion_matrix(truth[:, j], pred[:, j], attribute.num_classes),
                           attribute.classes, plots / f"confusion_{split}_{a}.png",
                           title=f"{a} ({split}): balanced acc "
                                 f"{results[split][f'bacc/{a}']:.3f}")
            write_text(Path(ep["confusion"]) / f"{split}_{a}.csv",
                       confusion_csv(truth[:, j], pred[:, j], attribute.classes))
        frames.append(predictions_frame(ds, split, logits, index))
        net.cpu()
        attention_plot(net, ds, ep["attention_samples"], plots / f"attention_{split}.png", split)
        net.to(device)
    predictions = pd.concat(frames, ignore_index=True)
    write_with(ep["predictions"], lambda tmp: predictions.to_parquet(tmp, index=False))
    write_json(ep["metrics"], results)

    tags = {"stage": "evaluate", "train_run_id": info.get("mlflow_run_id", ""),
            "head": mp["head"], "backbone": mp["backbone"],
            **tracking.data_version([mp["table"], mp["masks"], str(model_dir)])}
    with tracking.run(f"evaluate-{mp['head']}-{mp['backbone']}", {"model": mp, "evaluate": ep},
                      tags):
        for split, m in results.items():
            tracking.log_metrics({f"{split}/{k}": v for k, v in m.items()})
        for png in sorted(plots.glob("*.png")):
            tracking.log_artifact(png, "plots")
    for split, m in results.items():
        print(f"evaluate: {split}: mean balanced acc {m['mean_bacc']:.4f} "
              f"[{m.get('mean_bacc_ci_low', float('nan')):.4f}, "
              f"{m.get('mean_bacc_ci_high', float('nan')):.4f}], mean macro-F1 "
              f"{m['mean_macro_f1']:.4f}, paper-style mean acc (6 attributes) "
              f"{m.get('paper_mean_acc_6attr', float('nan')):.4f}", file=sys.stderr)


if __name__ == "__main__":
    run_stage(main, FileNotFoundError)
