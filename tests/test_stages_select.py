"""`dvc repro` of crossfit and select on tiny synthetic FS2K with label noise."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from esgar import schema
from tests.helpers import ran_stages, run, set_params
from tests.test_stages_experiments import check_headline

pytestmark = pytest.mark.slow


def test_crossfit_scores_every_sketch_out_of_sample_and_select_never_reasks(repo_copy):
    set_params(repo_copy,
               data={"source": "synthetic", "synthetic.pairs": 60,
                     "synthetic.noise": {"earring": {0: 0.3}}},
               prepare={"val_fraction": 0.25},
               masks={"contact_sheet.n": 2, "grids": [[2, 2]]},
               model={"img_size": 64},  # the train stage runs before crossfit: kept small
               train={"epochs": 1, "batch_size": 16, "loss_kwargs": {"smoothing": 1.0}},
               crossfit={"folds": 3, "epochs": 1, "img_size": 32, "batch_size": 16},
               select={"budget": 6})
    first = run(["dvc", "repro", "select"], repo_copy)  # crossfit.method: features, the default
    assert ran_stages(first) == ["pull", "download", "prepare", "masks", "train", "crossfit",
                                 "select"]

    table = pd.read_parquet(repo_copy / "data/prepared/samples.parquet")
    probs = pd.read_parquet(repo_copy / "data/crossfit/probs.parquet")
    fit = table[table["split"] != "test"]
    assert sorted(probs["sample_id"]) == sorted(fit["sample_id"])  # each once, no test sketch
    assert set(probs["fold"]) == {0, 1, 2}
    for a in schema.ATTRIBUTES:
        p = np.stack(probs[f"{a.name}_prob"])
        assert p.shape == (len(fit), a.num_classes)
        np.testing.assert_allclose(p.sum(1), 1, atol=1e-5)
    metrics = json.loads((repo_copy / "metrics/crossfit.json").read_text())
    assert metrics["samples"] == len(fit) and 0 <= metrics["oof/mean_bacc"] <= 1

    manifest = pd.read_parquet(repo_copy / "data/selection/manifest.parquet")
    assert 0 < manifest["task"].nunique() <= 6
    assert set(manifest["split"]) <= {"train", "val"}
    assert set(manifest["reason"]) <= {"suspect", "uncertain"}
    summary = json.loads((repo_copy / "metrics/select.json").read_text())
    assert summary["tasks"] == manifest["task"].nunique() and summary["budget"] == 6
    check_headline(repo_copy, "metrics/crossfit.json", "metrics/select.json")
    report = json.loads((repo_copy / "reports/select.json").read_text())
    assert sum(report["per_attribute"].values()) == summary["questions"]
    assert set(json.loads((repo_copy / "reports/crossfit.json").read_text())) > set(metrics)
    assert json.loads((repo_copy / "reports/crossfit.json").read_text())["method"] == "features"

    # whole models per fold instead: only crossfit and select rerun, the same folds
    set_params(repo_copy, crossfit={"method": "folds"})
    assert ran_stages(run(["dvc", "repro", "select"], repo_copy)) == ["pull", "crossfit", "select"]
    by_folds = pd.read_parquet(repo_copy / "data/crossfit/probs.parquet")
    assert by_folds.set_index("sample_id")["fold"].to_dict() == \
        probs.set_index("sample_id")["fold"].to_dict()
    assert (repo_copy / "models/crossfit/fold2/best.pt").is_file()
    set_params(repo_copy, crossfit={"method": "both"})  # their mean
    assert ran_stages(run(["dvc", "repro", "select"], repo_copy)) == ["pull", "crossfit", "select"]
    both = pd.read_parquet(repo_copy / "data/crossfit/probs.parquet")
    for a in schema.ATTRIBUTE_NAMES:
        np.testing.assert_allclose(np.stack(both[f"{a}_prob"]), (np.stack(
            probs[f"{a}_prob"]) + np.stack(by_folds[f"{a}_prob"])) / 2, atol=1e-6)

    # a human answers the first question: it is never asked again
    q = manifest.iloc[0]
    (repo_copy / "data/relabels/snapshot.csv").write_text(
        "sample_id,attribute,label,previous,annotator,annotated_at,task_id\n"
        f"{q.sample_id},{q.attribute},{q.guess},{q.label},ann,2026-11-25T10:00:00Z,1\n")
    second = run(["dvc", "repro", "select"], repo_copy)
    assert "prepare" in ran_stages(second) and "select" in ran_stages(second)
    again = pd.read_parquet(repo_copy / "data/selection/manifest.parquet")
    asked = set(zip(again["sample_id"], again["attribute"], strict=True))
    assert (q.sample_id, q.attribute) not in asked

    # a share of the budget kept for validation: that many tasks on validation sketches
    set_params(repo_copy, select={"budget": 6, "val_share": 0.5})
    run(["dvc", "repro", "select"], repo_copy)
    shared = pd.read_parquet(repo_copy / "data/selection/manifest.parquet")
    per_split = shared.drop_duplicates("task")["split"].value_counts().to_dict()
    assert per_split == {"val": 3, "train": 3}
    asked = set(zip(shared["sample_id"], shared["attribute"], strict=True))
    assert (q.sample_id, q.attribute) not in asked
