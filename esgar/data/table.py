"""The one sample table every stage reads: FS2K's records, splits and current labels.

Columns beyond those of `esgar.data.fs2k`: `split` (train / val / test; val is carved out of
FS2K's train split, test is FS2K's test split and is never used to pick models), and per
attribute `<attr>` (current label), `<attr>_orig` (FS2K's label), `<attr>_source`
(`fs2k` or `relabel`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from esgar import schema
from esgar.active.relabels import apply_relabels
from esgar.data.splits import iterative_split

SPLITS: tuple[str, ...] = ("train", "val", "test")


def assign_splits(table: pd.DataFrame, val_fraction: float, seed: int) -> pd.Series:
    """train / val / test per row. Stratified on FS2K's original labels, so a relabel never
    moves a sample between train and val."""
    split = pd.Series("test", index=table.index, dtype=object)
    train = table.index[table["fs2k_split"] == "train"]
    split[train] = "train"
    if val_fraction > 0 and len(train) > 1:
        labels = table.loc[train, [f"{n}_orig" for n in schema.ATTRIBUTE_NAMES]].to_numpy()
        is_val = iterative_split(labels, [a.num_classes for a in schema.ATTRIBUTES],
                                 val_fraction, seed)
        split[train[is_val]] = "val"
    return split


def build_sample_table(fs2k: pd.DataFrame, val_fraction: float, seed: int,
                       snapshot: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """The sample table from `read_fs2k`'s table and a relabel snapshot (may be empty).

    Returns the table and the warnings of the relabel merge.
    """
    table = fs2k.rename(columns={n: f"{n}_orig" for n in schema.ATTRIBUTE_NAMES})
    table, warnings = apply_relabels(table, snapshot)
    table.insert(1, "split", assign_splits(table, val_fraction, seed))
    return table, warnings


def class_counts(table: pd.DataFrame) -> dict[str, dict[str, list[int]]]:
    """{split: {attribute: counts per class index}} of the current labels."""
    out: dict[str, dict[str, list[int]]] = {}
    for split in SPLITS:
        part = table[table["split"] == split]
        out[split] = {
            a.name: np.bincount(part[a.name], minlength=a.num_classes).tolist()
            for a in schema.ATTRIBUTES
        }
    return out


def load_table(path: str | Path) -> pd.DataFrame:
    """Read the sample table, checking it has the columns stages rely on."""
    table = pd.read_parquet(path)
    need = {"sample_id", "split", "sketch_path", "photo_path", *schema.ATTRIBUTE_NAMES}
    missing = sorted(need - set(table.columns))
    if missing:
        raise ValueError(f"{path}: not a sample table, missing column(s) {', '.join(missing)}")
    return table
