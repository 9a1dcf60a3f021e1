"""What the relabeling benchmarks share: a synthetic FS2K whose label noise sits in the minority
classes, built by the pipeline's own stages, and its ground truth. Imported by the bench
scripts, which run from this folder (`python bench/<script>.py`)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import yaml

from esgar import schema
from esgar.data.dataset import SketchDataset
from esgar.data.datasets import DATASETS
from esgar.device import resolve_precision
from esgar.forward import batched_logits
from esgar.metrics import evaluate, per_class_recall
from esgar.models.factory import create_model
from esgar.training import TrainConfig, make_loader, train

REPO = Path(__file__).resolve().parents[1]
# Flipped shares per attribute and TRUE class: the rare classes, where a few wrong labels move
# a balanced accuracy most (a flipped hair flips its hair colour too).
NOISE = {"hair": {1: 0.3}, "hair_color": {2: 0.3, 4: 0.1}, "earring": {0: 0.25},
         "frontal_face": {1: 0.25}, "smile": {1: 0.1}, "gender": {1: 0.05}}


def build(work: Path, pairs: int, stages: tuple[str, ...], noise: dict | None = None,
          dataset: str = "fs2k", **overrides: dict) -> dict:
    """Run the pipeline's `stages` in `work` on noisy synthetic FS2K (`noise`, default NOISE;
    params.yaml's settings, `overrides` per section on top); returns the params used. Another
    `dataset` (`esgar.data.datasets`): its stand-in, without noise, with its schema's regions."""
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["data"].update(source="synthetic", dataset=dataset)
    if dataset != "fs2k":
        noise = {}
        params["prepare"]["root"] = f"data/fs2k/{DATASETS[dataset].folder}"
        params["model"]["attribute_regions"] = {}
    params["data"]["synthetic"].update(pairs=pairs, noise=NOISE if noise is None else noise)
    params["masks"]["source"] = "import"
    params["push"]["label_config"] = str(REPO / "label_config.xml")
    for section, values in overrides.items():
        params[section].update(values)
    (work / "params.yaml").write_text(yaml.safe_dump(params))
    (work / "data/relabels").mkdir(parents=True, exist_ok=True)
    snapshot = work / "data/relabels/snapshot.csv"
    if not snapshot.is_file():  # as a fresh clone has it: no decision yet
        shutil.copy(REPO / "data/relabels/snapshot.csv", snapshot)
    for stage in stages:
        stage_run(work, stage)
    return params


def stage_run(work: Path, stage: str, *args: str, env: dict | None = None) -> None:
    subprocess.run([sys.executable, "-m", f"pipeline.{stage}", "-q", *args], cwd=work,
                   check=True, env={**os.environ, **(env or {})})


def truth(work: Path) -> dict[tuple[str, str], int]:
    """{(sample_id, attribute): true class} of every label the generator flipped."""
    log = pd.read_csv(work / "data/fs2k/label_noise.csv")
    return {(r.image_name.replace("/", "_"), r.attribute): int(r.true_label)
            for r in log.itertuples()}


def truth_snapshot(true: dict[tuple[str, str], int]) -> pd.DataFrame:
    """A relabel snapshot that sets every flipped label back to its true class."""
    return pd.DataFrame([{"sample_id": s, "attribute": a, "label": v, "previous": "",
                          "annotator": "truth", "annotated_at": "2026-01-01T00:00:00Z",
                          "task_id": "", "status": "decided"} for (s, a), v in true.items()])


def true_labels(table: pd.DataFrame, true: dict[tuple[str, str], int]) -> np.ndarray:
    """The true class of every row and attribute of `table` (int [N, A])."""
    labels = table[list(schema.ATTRIBUTE_NAMES)].to_numpy().copy()
    for i, sid in enumerate(table["sample_id"]):
        for j, a in enumerate(schema.ATTRIBUTE_NAMES):
            if (sid, a) in true:
                labels[i, j] = true[(sid, a)]
    return labels


def minority_recall(labels: np.ndarray, pred: np.ndarray) -> float:
    """Mean over attributes of the recall of each attribute's rarest class in FS2K's train."""
    return float(np.mean([per_class_recall(labels[:, j], pred[:, j], a.num_classes)[
        int(np.argmin(schema.FS2K_COUNTS["train"][a.name]))]
        for j, a in enumerate(schema.ATTRIBUTES)]))


def train_and_score(table: pd.DataFrame, params: dict, seed: int, true: dict, img_size: int,
                    epochs: int, predictions: dict | None = None) -> dict[str, float]:
    """Train params.yaml's model (at `img_size` for `epochs`, seed `seed`) on `table`'s train
    split, the checkpoint picked on its val split as `train` does, from the mask store
    data/masks of the working folder; score val and test against the TRUE labels and against
    the labels the table holds (what the project would report).

    Returns {"<split>/<true|reported>/<mean_bacc|minority_recall>": value}, and `mean_bacc`
    and `minority_recall` for test on the true labels. `predictions`, when given, receives per
    split {"sample_id": str [N], "pred", "true", "reported": int [N, A]}.
    """
    regions = list(params["masks"]["regions"])
    head = params["model"]["head"]
    torch.manual_seed(seed)
    net = create_model(params["model"]["backbone"], head, region_names=regions,
                       attribute_regions=params["model"]["attribute_regions"], pretrained=False,
                       img_size=img_size, **(params["model"]["head_kwargs"].get(head) or {}))
    data = {s: SketchDataset.for_model(net, table[table["split"] == s], "data/masks",
                                       train=s == "train") for s in ("train", "val", "test")}
    tp = {k: v for k, v in params["train"].items() if k in TrainConfig.model_fields}
    cfg = TrainConfig(**{**tp, "epochs": epochs, "seed": seed, "patience": epochs})
    with tempfile.TemporaryDirectory() as out:
        result = train(net, data["train"], data["val"], cfg, out, resume=False)
        net.load_state_dict(torch.load(Path(out) / "best.pt", weights_only=True))
    cpu = torch.device("cpu")
    scores: dict[str, float] = {}
    for split in ("val", "test"):
        ds = data[split]
        logits, index = batched_logits(net, make_loader(ds, 64, False, 0, 0), cpu,
                                       resolve_precision(result.precision["used"], cpu))
        pred = np.stack([logits[a].argmax(1) for a in schema.ATTRIBUTE_NAMES], 1)
        labelled = {"true": true_labels(ds.table, true)[index],
                    "reported": ds.labels.numpy()[index]}
        if predictions is not None:
            predictions[split] = {"sample_id": ds.table["sample_id"].to_numpy()[index],
                                  "pred": pred, **labelled}
        for which, labels in labelled.items():
            m = evaluate(labels, pred, n_resamples=0)
            scores[f"{split}/{which}/mean_bacc"] = m["mean_bacc"]
            scores[f"{split}/{which}/minority_recall"] = minority_recall(labels, pred)
    return {"mean_bacc": scores["test/true/mean_bacc"],
            "minority_recall": scores["test/true/minority_recall"], **scores,
            "precision": result.precision["used"]}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
