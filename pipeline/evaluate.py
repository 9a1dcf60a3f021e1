"""DVC stage `evaluate`: the trained model on val and test, balanced metrics first.

Outputs: the headline as DVC metrics, small enough to read in a terminal: `evaluate.metrics`
({split: mean balanced accuracy, mean macro-F1, mean minority-class recall}) and
`evaluate.bacc/<split>.json` (each attribute's balanced accuracy); every metric with its 95 %
interval in the report `evaluate.report` ({split: metrics}, see `esgar.metrics.evaluate`) and in
MLflow (`<split>/<key>`, e.g. `val/bacc/hair_ci_low`); confusion matrices and attention maps as
PNGs under `plots/evaluate/`, the same confusion matrices as DVC plots
(`plots/confusion/<split>_<attribute>.csv`: actual and predicted class names, one row per
sample, drawn by `dvc plots show` with its confusion template), and per-sample predictions
(`evaluate.predictions`, parquet: sample_id, split, and per attribute the label, the prediction
and the predicted class probabilities). Logged to MLflow as a run tagged with the train run.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from esgar import schema
from esgar.data.dataset import SketchDataset
from esgar.data.table import load_table
from esgar.device import resolve_device, resolve_precision
from esgar.forward import attention_batch, predictions_frame
from esgar.integrations import tracking
from esgar.io import write_json, write_text, write_with
from esgar.metrics import confusion_matrix, evaluate, headline, paper_key
from esgar.models.factory import AttributeModel, load_trained
from esgar.scoring import score_split
from esgar.visualize import attention_sheet, denormalise, plot_confusion
from pipeline.common import run_stage, stage_args
from pipeline.params.base import load
from pipeline.params.model import EvaluateParams, ModelParams, TrainParams

log = logging.getLogger("pipeline.evaluate")


def confusion_csv(truth: np.ndarray, pred: np.ndarray, classes: tuple[str, ...]) -> str:
    """`actual,predicted` class names, one row per sample: DVC's confusion template input."""
    names = np.asarray(classes)
    return pd.DataFrame({"actual": names[truth], "predicted": names[pred]}).to_csv(index=False)


def attention_plot(net: AttributeModel, ds: SketchDataset, n: int, path: Path, split: str
                   ) -> None:
    """Attention maps of the first `n` samples of `ds`, if the head has any."""
    got = attention_batch(net, ds, n) if n > 0 and len(ds) else None
    if got is None:
        return
    logits, maps, batch = got
    ids = ds.table["sample_id"].iloc[batch["index"].numpy()].tolist()
    titles = [f"{sid}\n" + " ".join(f"{a[:4]}:{int(logits[a][i].argmax())}" for a in maps)
              for i, sid in enumerate(ids)]
    attention_sheet(denormalise(batch["image"].numpy(), net.mean, net.std), maps, titles, path,
                    f"{split}: where each branch attends (predicted class after the name)")


def main() -> None:
    args = stage_args(__doc__)
    params = load(args.params, model=ModelParams, train=TrainParams, evaluate=EvaluateParams)
    mp, tp, ep = params["model"], params["train"], params["evaluate"]
    tracking.check_tracking()
    device = resolve_device(tp.device)
    precision = resolve_precision(tp.precision, device)
    log.info("scoring in %s", precision.describe())
    net, info = load_trained(tp.out, device)
    precision.prepare(net)
    table = load_table(mp.table)
    attrs = net.attributes
    results, frames = {}, []
    for split in ep.splits:
        scored = score_split(net, table, split, mp.masks, tp.batch_size, device,
                             precision)
        ds, logits, index = scored.dataset, scored.logits, scored.index
        truth, pred = scored.truth, scored.pred
        results[split] = evaluate(truth, pred, attrs, n_resamples=ep.bootstrap, seed=ep.seed)
        for j, a in enumerate(attrs):
            attribute = schema.attribute(a)
            plot_confusion(confusion_matrix(truth[:, j], pred[:, j], attribute.num_classes),
                           attribute.classes, ep.plots / f"confusion_{split}_{a}.png",
                           title=f"{a} ({split}): balanced acc "
                                 f"{results[split][f'bacc/{a}']:.3f}")
            write_text(ep.confusion / f"{split}_{a}.csv",
                       confusion_csv(truth[:, j], pred[:, j], attribute.classes))
        frames.append(predictions_frame(ds.table, split, logits, index))
        attention_plot(net, ds, ep.attention_samples, ep.plots / f"attention_{split}.png", split)
    predictions = pd.concat(frames, ignore_index=True)
    write_with(ep.predictions, lambda tmp: predictions.to_parquet(tmp, index=False))
    write_json(ep.report, results)
    heads = {split: headline(m, attrs) for split, m in results.items()}
    write_json(ep.metrics, {split: means for split, (means, _) in heads.items()})
    for split, (_, bacc) in heads.items():
        write_json(ep.bacc / f"{split}.json", bacc)

    tags = {"stage": "evaluate", "train_run_id": info.get("mlflow_run_id", ""),
            "head": mp.head, "backbone": mp.backbone, **precision.tags(),
            **tracking.data_version([str(mp.table), str(mp.masks), str(tp.out)])}
    logged = {"model": mp.model_dump(mode="json", by_alias=True),
              "evaluate": ep.model_dump(mode="json")}
    with tracking.run(f"evaluate-{mp.head}-{mp.backbone}", logged, tags):
        for split, m in results.items():
            tracking.log_metrics({f"{split}/{k}": v for k, v in m.items()})
        for png in sorted(ep.plots.glob("*.png")):
            tracking.log_artifact(png, "plots")
    for split, m in results.items():
        log.info("%s: mean balanced acc %.4f [%.4f, %.4f], mean macro-F1 %.4f, paper-style mean "
                 "acc (%d attributes) %.4f", split, m["mean_bacc"],
                 m.get("mean_bacc_ci_low", float("nan")), m.get("mean_bacc_ci_high", float("nan")),
                 m["mean_macro_f1"], len(schema.PAPER_ATTRIBUTES),
                 m.get(paper_key(), float("nan")))


if __name__ == "__main__":
    run_stage(main)
