"""A trained model on one split of the sample table: labels, predictions and probabilities.

    scored = score_split(net, table, "val", "data/masks", batch_size=32, device=cpu)
    scored.truth, scored.pred        # int [N, A], columns = net.attributes
    scored.sample_ids                # [N], the rows of both

The evaluate stage and the registry (re-scoring a champion on the current validation split)
score through this one function, so both see the same sketches the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from esgar.data.dataset import SketchDataset
from esgar.device import Precision
from esgar.errors import EsgarError
from esgar.forward import batched_logits
from esgar.training import make_loader

__all__ = ["Scored", "score_split"]


@dataclass(frozen=True)
class Scored:
    """One split scored: `dataset` (its rows in `dataset.table`), `logits` {attribute: float
    [N,C]}, `index` (dataset rows, int [N]), `truth` and `pred` int [N, A] in `attributes`
    order, `sample_ids` [N]."""

    split: str
    attributes: tuple[str, ...]
    dataset: SketchDataset
    logits: dict[str, np.ndarray]
    index: np.ndarray
    truth: np.ndarray
    pred: np.ndarray

    @property
    def sample_ids(self) -> np.ndarray:
        return self.dataset.table["sample_id"].to_numpy()[self.index]


def score_split(net: torch.nn.Module, table: pd.DataFrame, split: str, masks: str | Path,
                batch_size: int, device: torch.device, precision: Precision | None = None
                ) -> Scored:
    """`net` (an `AttributeModel`) on the rows of `table` in `split`, with the mask store
    `masks`; evaluation geometry (center crop), forward passes in `precision` (None: fp32),
    a progress bar. EsgarError when the split is empty."""
    rows = table[table["split"] == split]
    if rows.empty:
        raise EsgarError(f"the sample table has no {split!r} sketches to score")
    ds = SketchDataset.for_model(net, rows, masks, train=False, cache=False)
    logits, index = batched_logits(net, make_loader(ds, batch_size, False, 0, 0), device,
                                   precision, desc=f"score {split}")
    attrs = tuple(net.attributes)
    truth = ds.labels.numpy()[index]
    pred = np.stack([logits[a].argmax(1) for a in attrs], 1)
    return Scored(split, attrs, ds, logits, index, truth, pred)
