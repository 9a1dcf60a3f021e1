"""The one sample table every stage reads: FS2K's records, splits and current labels.

Columns beyond those of `esgar.data.fs2k`: `split` (train / val / test; val is carved out of
FS2K's train split, test is FS2K's test split and is never used to pick models), and per
attribute `<attr>` (current label), `<attr>_orig` (FS2K's label), `<attr>_source`
(`fs2k` or `relabel`).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from esgar import schema
from esgar.active.relabels import apply_relabels
from esgar.data.splits import iterative_split
from esgar.errors import EsgarError
from esgar.metrics import class_counts

__all__ = ["TableError", "assign_splits", "build_sample_table", "counts_by_split", "load_table"]


class TableError(EsgarError, ValueError):
    """The sample table is missing or is not one."""


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


def counts_by_split(table: pd.DataFrame) -> dict[str, dict[str, list[int]]]:
    """{split: {attribute: counts per class index}} of the current labels."""
    return {split: {a.name: class_counts(table.loc[table["split"] == split, a.name].to_numpy(),
                                         a.num_classes, allow_zero=True).tolist()
                    for a in schema.ATTRIBUTES}
            for split in schema.SPLITS}


def load_table(path: str | Path) -> pd.DataFrame:
    """Read the sample table, checking it has the columns stages rely on."""
    try:
        table = pd.read_parquet(path)
    except FileNotFoundError:
        raise TableError(f"{path}: no sample table (run the prepare stage)") from None
    except (OSError, ValueError) as e:
        raise TableError(f"{path}: not a readable parquet file ({e})") from None
    need = {"sample_id", "split", "sketch_path", "photo_path", *schema.ATTRIBUTE_NAMES}
    missing = sorted(need - set(table.columns))
    if missing:
        raise TableError(f"{path}: not a sample table, missing column(s) {', '.join(missing)}")
    return table
