"""CelebA (with CelebAMask-HQ's masks) and LFWA through the whole pipeline, chosen in params.yaml
only: `dvc repro` on their synthetic stand-ins, the 40 attributes followed by every stage; the
licensed sets' local folders checked before anything is copied."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml

from esgar.data.synthetic_faces import generate_lfwa
from tests.helpers import commit_all, copy_repo, run, set_params
from tests.tiny_repo import TINY

# the keys a user changes for another dataset (README, "Other datasets")
CELEBAMASK_HQ = {"data": {"dataset": "celebamask_hq", "synthetic.pairs": 120},
                 "prepare": {"root": "data/fs2k/CelebAMask-HQ"},
                 "model": {"attribute_regions": {}},
                 "push": {"label_config": "from_schema"}}


def tiny(repo: Path, **changes) -> None:
    set_params(repo, **TINY)
    set_params(repo, **changes)
    commit_all(repo, "another dataset")


@pytest.mark.slow
def test_celebamask_hq_runs_end_to_end_by_params_alone(tmp_path):
    repo = copy_repo(tmp_path / "repo")
    tiny(repo, **CELEBAMASK_HQ, train={"labeled_fraction": 0.5, "labeled_seed": 0})
    run(["dvc", "repro", "evaluate", "push"], repo, timeout=900)

    table = pd.read_parquet(repo / "data/prepared/samples.parquet")
    assert table.attrs["schema"]["name"] == "celeba"
    assert len(table) == 120 and set(table["split"]) == {"train", "val", "test"}
    assert {"Smiling", "Wearing_Earrings", "Young"} <= set(table.columns)
    # CelebAMask-HQ's part masks, assembled by the download stage, were imported
    assert (repo / "data/fs2k/parsing/bisenet/CelebA-HQ-img/0.png").is_file()
    masks = json.loads((repo / "metrics/masks/empty.json").read_text())
    assert masks, "the masks stage reported nothing"
    model = json.loads((repo / "models/esgar/model.json").read_text())["model"]
    assert len(model["attributes"]) == 40 and model["schema"]["name"] == "celeba"
    assert model["attribute_regions"]["Wearing_Earrings"] == "earring"  # the schema's
    report = json.loads((repo / "reports/train.json").read_text())
    train_rows = int((table["split"] == "train").sum())
    assert report["labeled"]["fraction"] == 0.5
    assert abs(report["labeled"]["samples"] - train_rows / 2) <= 2  # LSA's limited labels
    report = json.loads((repo / "reports/evaluate.json").read_text())
    assert "paper_mean_acc_40attr" in json.dumps(report) and "mean_bacc" in json.dumps(report)
    # the loop's first half: tasks with the generated interface's 40 questions
    tasks = json.loads((repo / "data/labelstudio/tasks.json").read_text())
    assert tasks and all(set(t["data"]) >= {"sketch", "photo", "overlay"} for t in tasks)
    asked = {a for t in tasks for a in t["data"]["questions"]}
    assert asked and asked <= set(table.attrs["schema"]["attributes"])


@pytest.mark.slow
def test_lfwa_runs_end_to_end_by_params_alone(tmp_path):
    repo = copy_repo(tmp_path / "repo")
    tiny(repo, data={"dataset": "lfwa", "synthetic.pairs": 120},
         prepare={"root": "data/fs2k/LFWA"}, model={"attribute_regions": {"Male": "face"}})
    run(["dvc", "repro", "evaluate"], repo, timeout=900)
    table = pd.read_parquet(repo / "data/prepared/samples.parquet")
    assert table.attrs["schema"]["name"] == "lfwa" and len(table) == 120
    assert set(table["split"]) == {"train", "val", "test"}  # val carved out of LFWA's train
    model = json.loads((repo / "models/esgar/model.json").read_text())["model"]
    assert model["attribute_regions"]["Male"] == "face"  # given in params.yaml
    assert (repo / "plots/evaluate").exists() or (repo / "reports/evaluate.json").exists()


@pytest.mark.bad_input(stage="download", kind="data")
def test_a_local_copy_with_a_file_missing_is_refused_before_anything_is_copied(tmp_path):
    generate_lfwa(tmp_path / "made", images=12, progress=False)
    folder = tmp_path / "made" / "LFWA"
    (folder / "indices_train_test.mat").unlink()
    params = yaml.safe_load((Path(__file__).resolve().parents[1] / "params.yaml").read_text())
    params["data"].update(dataset="lfwa", source="local", archive=str(folder),
                          out=str(tmp_path / "out"))
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    proc = run(["python", "-m", "pipeline.download", "--params", str(tmp_path / "params.yaml")],
               tmp_path, check=False)
    assert proc.returncode != 0
    assert "indices_train_test.mat: missing (an LFWA folder holds lfw/" in proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "out").exists()
    params["data"]["source"] = "gdrive"
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    proc = run(["python", "-m", "pipeline.download", "--params", str(tmp_path / "params.yaml")],
               tmp_path, check=False)
    assert "data.source gdrive: LFWA is licensed for research and is not downloaded" in proc.stderr
