"""Batched forward passes of an `AttributeModel`: a loader in, logits and probabilities out.

    net, info = load_trained("models/esgar")
    logits, index = batched_logits(net, loader, device)     # {attribute: float [N,C]}, int [N]
    probs = probabilities(logits)                           # rows sum to 1

Training (validation), evaluation, cross-fitting and `esgar.inference` all go through
`batched_logits`; predicting new sketches from files is `esgar.inference.predict`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from esgar.device import Precision
from esgar.log import progress

__all__ = ["attention_batch", "batched_logits", "predictions_frame", "probabilities"]


def probabilities(logits: Mapping[str, np.ndarray | torch.Tensor]) -> dict[str, np.ndarray]:
    """{attribute: logits [N,C]} -> {attribute: float32 class probabilities [N,C]} (softmax)."""
    return {a: torch.softmax(torch.as_tensor(z, dtype=torch.float32), -1).numpy()
            for a, z in logits.items()}


@torch.inference_mode()
def batched_logits(model: nn.Module, loader: DataLoader, device: torch.device,
                   precision: Precision | None = None, desc: str | None = None
                   ) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Logits per attribute (float32 [N, C]) and the dataset row index of each (int [N]).

    Batches carry `image`, `grids` and `index` (see `esgar.data.dataset.SketchDataset`);
    `precision`: how the forward passes compute (`esgar.device.resolve_precision`; None: fp32).
    `desc`: show a progress bar with this label.
    """
    model.eval()
    out: dict[str, list[np.ndarray]] = {}
    index = []
    for batch in progress(loader, desc=desc, disable=desc is None, leave=False):
        images = batch["image"].to(device)
        if precision is None:
            logits = model(images, batch["grids"].to(device))
        else:
            with precision.autocast():
                logits = model(precision.images(images), batch["grids"].to(device))
        for a, z in logits.items():
            out.setdefault(a, []).append(z.float().cpu().numpy())
        index.append(np.asarray(batch["index"]))
    return {a: np.concatenate(v) for a, v in out.items()}, np.concatenate(index)


def predictions_frame(table: pd.DataFrame, split: str, logits: Mapping[str, np.ndarray],
                      index: np.ndarray) -> pd.DataFrame:
    """One row per predicted sample: sample_id, split, and per attribute its current label,
    `<a>_pred` (argmax) and `<a>_prob` (float32 [C]). `index`: rows of `table`."""
    rows = table.iloc[index]
    cols: dict[str, Any] = {"sample_id": rows["sample_id"].to_numpy(), "split": split}
    for a, p in probabilities(logits).items():  # built whole: 40 attributes x 3 columns
        cols[a] = rows[a].to_numpy()
        cols[f"{a}_pred"] = p.argmax(1)
        cols[f"{a}_prob"] = list(p)
    return pd.DataFrame(cols)


@torch.inference_mode()
def attention_batch(model: nn.Module, ds: Dataset, n: int
                    ) -> tuple[dict[str, torch.Tensor], dict[str, np.ndarray], dict] | None:
    """The first `n` items of `ds` through `model` with attention: (logits, maps {attribute:
    float [n,h,w]}, the batch), or None when the head has no attention maps."""
    model.eval()
    batch = next(iter(DataLoader(ds, batch_size=n)))
    device = next(model.parameters()).device
    logits, maps = model(batch["image"].to(device), batch["grids"].to(device),
                         return_attention=True)
    if not maps:
        return None
    return logits, {a: m.float().cpu().numpy() for a, m in maps.items()}, batch
