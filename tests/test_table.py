"""Splits, relabels and the assembled sample table."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from esgar import schema
from esgar.active.relabels import RelabelError, apply_relabels, read_snapshot
from esgar.data.splits import iterative_split
from esgar.data.table import assign_splits, build_sample_table, class_counts


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


def test_relabels_apply_latest_decision_and_keep_originals():
    table = small_table()
    sid = table.loc[0, "sample_id"]
    old = int(table.loc[0, "smile"])
    snap = snapshot([
        (sid, "smile", 1 - old, old, "ann1", "2026-01-01T10:00:00", "1"),
        (sid, "smile", old, 1 - old, "ann2", "2026-01-02T10:00:00", "2"),  # latest: back again
        (sid, "earring", 0, 1, "ann1", "2026-01-01T10:00:00", "1"),
        ("photo9_image9999", "smile", 0, 1, "ann1", "2026-01-01T10:00:00", "3"),
        (sid, "mood", 0, 1, "ann1", "2026-01-01T10:00:00", "3"),
        (sid, "style", 7, 1, "ann1", "2026-01-01T10:00:00", "3"),
    ])
    out, warnings = build_sample_table(table, 0.2, 0, snap)
    row = out.set_index("sample_id").loc[sid]
    assert row.smile == old and row.smile_source == "relabel"
    assert row.earring == 0 and row.earring_orig == table.loc[0, "earring"]
    assert row.earring_source == "relabel" and row.gender_source == "fs2k"
    assert len(warnings) == 3
    assert any("no such sample" in w for w in warnings)
    assert any("unknown attribute" in w for w in warnings)
    assert any("not in 0..2" in w for w in warnings)


def test_relabel_does_not_move_samples_between_train_and_val():
    table = small_table()
    before, _ = build_sample_table(table, 0.2, 0, snapshot([]))
    flips = [(s, "hair", 1, 0, "a", "2026-01-01", "1") for s in table["sample_id"][:30]]
    after, _ = build_sample_table(table, 0.2, 0, snapshot(flips))
    assert (before["split"] == after["split"]).all()


def test_class_counts_per_split():
    out, _ = build_sample_table(small_table(), 0.2, 0, snapshot([]))
    counts = class_counts(out)
    assert set(counts) == {"train", "val", "test"}
    assert sum(counts["test"]["style"]) == 20
    assert sum(counts["train"]["hair"]) + sum(counts["val"]["hair"]) == 60


def test_snapshot_file_errors(tmp_path):
    assert read_snapshot(tmp_path / "absent.csv").empty
    bad = tmp_path / "snap.csv"
    bad.write_text("sample_id,label\nx,1\n")
    with pytest.raises(RelabelError, match="snap.csv: missing column"):
        read_snapshot(bad)
    empty, warnings = apply_relabels(
        small_table().rename(columns={n: f"{n}_orig" for n in schema.ATTRIBUTE_NAMES}),
        snapshot([]))
    assert warnings == [] and (empty["hair_source"] == "fs2k").all()
