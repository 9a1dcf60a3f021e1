"""`dvc repro` of download + prepare on a small synthetic FS2K, in a private copy of the repo."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from esgar.schema import SPLITS
from tests.helpers import ran_stages, run, set_params

pytestmark = pytest.mark.slow


def test_repro_download_and_prepare(repo_copy):
    set_params(repo_copy, data={"source": "synthetic", "synthetic.pairs": 80, "synthetic.seed": 1})
    first = run(["dvc", "repro", "prepare"], repo_copy)
    assert ran_stages(first) == ["pull", "download", "prepare"]

    source = json.loads((repo_copy / "data/fs2k/source.json").read_text())
    assert source["dataset"] == "synthetic"
    table = pd.read_parquet(repo_copy / "data/prepared/samples.parquet")
    assert len(table) == 80
    assert set(table["split"]) == {"train", "val", "test"}
    metrics = json.loads((repo_copy / "metrics/prepare.json").read_text())
    assert metrics == {"dataset": "synthetic", "relabeled": 0,
                       "samples": {s: int((table["split"] == s).sum()) for s in SPLITS}}
    report = json.loads((repo_copy / "reports/prepare.json").read_text())
    assert report["problems"]["errors"] == 0 and report["problems"]["warnings"] == 0
    assert sum(report["class_counts"]["test"]["gender"]) == metrics["samples"]["test"]
    assert (repo_copy / "plots/prepare/class_distribution.png").stat().st_size > 10_000

    again = run(["dvc", "repro", "prepare"], repo_copy)
    assert ran_stages(again) == ["pull"]  # asked every time; nothing below it changed
    assert "didn't change" in again.stdout + again.stderr

    set_params(repo_copy, prepare={"val_fraction": 0.3})
    third = run(["dvc", "repro", "prepare"], repo_copy)
    assert ran_stages(third) == ["pull", "prepare"]
    table = pd.read_parquet(repo_copy / "data/prepared/samples.parquet")
    assert (table["split"] == "val").sum() > 10


def test_prepare_stops_on_unusable_data(repo_copy):
    set_params(repo_copy, data={"source": "synthetic", "synthetic.pairs": 40})
    run(["dvc", "repro", "download"], repo_copy)
    anno = repo_copy / "data/fs2k/FS2K/anno_test.json"
    records = json.loads(anno.read_text())
    for rec in records:
        rec["hair"] = 9
    anno.write_text(json.dumps(records))
    proc = run(["python", "-m", "pipeline.prepare"], repo_copy, check=False)
    assert proc.returncode == 1
    assert "max_dropped_fraction" in proc.stderr and "anno_test.json" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (repo_copy / "data/prepared/samples.parquet").exists()
