"""The one sample table every stage reads: the dataset's records, splits and current labels.

Columns beyond those of the dataset's reader (`esgar.data.fs2k`, `esgar.data.celeba`...):
`split` (train / val / test; val is the dataset's own where it has one, else carved out of its
train split; test is the dataset's and is never used to pick models), and per attribute of the
schema `<attr>` (current label), `<attr>_orig` (the dataset's label), `<attr>_source`
(`fs2k`, the dataset's label whichever the dataset, or `relabel`).

A table of another dataset than FS2K names its schema in the parquet file's metadata
(`DataFrame.attrs["schema"]`); a table without one is FS2K's (so FS2K's table is byte for byte
what it was before datasets became a setting). `load_table` refuses a table of another dataset
than the one in use.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from esgar import schema
from esgar.active.relabels import apply_relabels
from esgar.data.splits import iterative_split, labeled_subset
from esgar.errors import EsgarError
from esgar.metrics import class_counts

__all__ = ["TableError", "assign_splits", "build_sample_table", "counts_by_split",
           "labeled_rows", "load_table"]


log = logging.getLogger(__name__)


class TableError(EsgarError, ValueError):
    """The sample table is missing or is not one."""


def assign_splits(table: pd.DataFrame, val_fraction: float, seed: int) -> pd.Series:
    """train / val / test per row: the dataset's own (`fs2k_split` for FS2K, `dataset_split`
    for the others). Where the dataset has no val split, val is carved out of train, stratified
    on the dataset's labels, so a relabel never moves a sample between train and val."""
    own = table["dataset_split"] if "dataset_split" in table else table["fs2k_split"]
    split = pd.Series("test", index=table.index, dtype=object)
    train = table.index[own == "train"]
    split[train] = "train"
    if (own == "val").any():
        split[table.index[own == "val"]] = "val"
    elif val_fraction > 0 and len(train) > 1:
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
    if schema.active() != schema.FS2K:
        table.attrs["schema"] = schema.active().to_dict()
    return table, warnings


def counts_by_split(table: pd.DataFrame) -> dict[str, dict[str, list[int]]]:
    """{split: {attribute: counts per class index}} of the current labels."""
    return {split: {a.name: class_counts(table.loc[table["split"] == split, a.name].to_numpy(),
                                         a.num_classes, allow_zero=True).tolist()
                    for a in schema.ATTRIBUTES}
            for split in schema.SPLITS}


def labeled_rows(train_rows: pd.DataFrame, fraction: float, seed: int) -> pd.DataFrame:
    """The training rows whose labels a run uses: all, or LSA's limited-label protocol's seeded,
    stratified `fraction` of them (`train.labeled_fraction`, `train.labeled_seed`)."""
    if fraction >= 1:
        return train_rows
    keep = labeled_subset(train_rows[list(schema.ATTRIBUTE_NAMES)].to_numpy(np.int64),
                          [a.num_classes for a in schema.ATTRIBUTES], fraction, seed)
    single = [a.name for a in schema.ATTRIBUTES
              if train_rows.loc[keep, a.name].nunique() < 2]
    log.info("limited labels: training on %d of %d training sketches (%.1f %%, seed %d)%s",
             keep.sum(), len(keep), 100 * fraction, seed,
             f"; one class only of {', '.join(single)}" if single else "")
    return train_rows[keep]


def load_table(path: str | Path) -> pd.DataFrame:
    """Read the sample table, checking it has the columns stages rely on."""
    try:
        table = pd.read_parquet(path)
    except FileNotFoundError:
        raise TableError(f"{path}: no sample table (run the prepare stage)") from None
    except (OSError, ValueError) as e:
        raise TableError(f"{path}: not a readable parquet file ({e})") from None
    own = table.attrs.get("schema", {}).get("name", "fs2k")
    if own != schema.active().name:
        raise TableError(f"{path}: a table of {own}, but the dataset in use is "
                         f"{schema.active().name} (data.dataset in params.yaml); run the "
                         "prepare stage again")
    need = {"sample_id", "split", "sketch_path", "photo_path", *schema.ATTRIBUTE_NAMES}
    missing = sorted(need - set(table.columns))
    if missing:
        raise TableError(f"{path}: not a sample table, missing column(s) {', '.join(missing)}")
    return table
