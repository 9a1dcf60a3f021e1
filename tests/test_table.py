"""Splits and the assembled sample table (the relabel rules: test_relabels.py)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from esgar import schema
from esgar.data.splits import iterative_split, labeled_subset
from esgar.data.table import assign_splits, build_sample_table, counts_by_split


def fs2k_like_labels(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    cols = []
    for a in schema.ATTRIBUTES:
        lab = np.repeat(np.arange(a.num_classes), schema.FS2K_COUNTS["train"][a.name])
        cols.append(rng.permutation(lab))
    return np.stack(cols, 1)


def test_iterative_split_keeps_every_class_share():
    labels = fs2k_like_labels()
    mask = iterative_split(labels, [a.num_classes for a in schema.ATTRIBUTES], 0.15, seed=3)
    assert abs(mask.sum() - 0.15 * len(labels)) <= 5
    for j, a in enumerate(schema.ATTRIBUTES):
        got = np.bincount(labels[mask, j], minlength=a.num_classes)
        want = np.array(schema.FS2K_COUNTS["train"][a.name]) * 0.15
        assert np.all(np.abs(got - want) <= 4), (a.name, got, want)
        assert np.all(got > 0), f"{a.name}: a class vanished from val"


@pytest.mark.parametrize("fraction", [0.005, 0.05, 0.1])
def test_limited_labels_are_a_seeded_stratified_share(fraction):
    labels = fs2k_like_labels()
    k = [a.num_classes for a in schema.ATTRIBUTES]
    keep = labeled_subset(labels, k, fraction, seed=1)
    assert abs(keep.sum() - fraction * len(labels)) <= 3
    assert np.array_equal(keep, labeled_subset(labels, k, fraction, seed=1))
    assert not np.array_equal(keep, labeled_subset(labels, k, fraction, seed=2))
    if fraction >= 0.05:  # enough rows for every class's share to show
        for j, a in enumerate(schema.ATTRIBUTES):
            share = np.bincount(labels[keep, j], minlength=a.num_classes) / keep.sum()
            want = np.array(schema.FS2K_COUNTS["train"][a.name]) / len(labels)
            assert np.abs(share - want).max() < 0.06, a.name
    assert labeled_subset(labels, k, 1.0, seed=1).all()
    assert labeled_subset(labels[:3], k, 0.01, seed=0).sum() == 1  # never none


def test_iterative_split_is_seeded():
    labels = fs2k_like_labels()
    k = [a.num_classes for a in schema.ATTRIBUTES]
    assert np.array_equal(iterative_split(labels, k, 0.2, 1), iterative_split(labels, k, 0.2, 1))
    assert not np.array_equal(iterative_split(labels, k, 0.2, 1),
                              iterative_split(labels, k, 0.2, 2))
    with pytest.raises(ValueError, match="fraction"):
        iterative_split(labels, k, 1.5)


def small_table(n_train: int = 60, n_test: int = 20) -> pd.DataFrame:
    labels = fs2k_like_labels()[: n_train + n_test]
    df = pd.DataFrame(labels, columns=list(schema.ATTRIBUTE_NAMES))
    df.insert(0, "sample_id", [f"photo1_image{i:04d}" for i in range(len(df))])
    df.insert(1, "fs2k_split", ["train"] * n_train + ["test"] * n_test)
    return df


def snapshot(rows):
    cols = ["sample_id", "attribute", "label", "previous", "annotator", "annotated_at", "task_id"]
    return pd.DataFrame(rows, columns=cols)


def test_test_split_is_never_carved():
    table = small_table()
    split = assign_splits(table.rename(columns={n: f"{n}_orig" for n in schema.ATTRIBUTE_NAMES}),
                          0.25, 0)
    assert (split[table["fs2k_split"] == "test"] == "test").all()
    assert set(split[table["fs2k_split"] == "train"]) == {"train", "val"}


def test_relabel_does_not_move_samples_between_train_and_val():
    table = small_table()
    before, _ = build_sample_table(table, 0.2, 0, snapshot([]))
    flips = [(s, "hair", 1 - h, h, "a", "2026-01-01T00:00:00Z", "1")
             for s, h in zip(table["sample_id"][:30], table["hair"][:30], strict=True)]
    after, warnings = build_sample_table(table, 0.2, 0, snapshot(flips))
    assert warnings == [] and (after["hair_source"][:30] == "relabel").all()
    assert (before["split"] == after["split"]).all()


def test_class_counts_per_split():
    out, _ = build_sample_table(small_table(), 0.2, 0, snapshot([]))
    counts = counts_by_split(out)
    assert set(counts) == {"train", "val", "test"}
    assert sum(counts["test"]["style"]) == 20
    assert sum(counts["train"]["hair"]) + sum(counts["val"]["hair"]) == 60
