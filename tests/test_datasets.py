"""CelebA (with CelebAMask-HQ's masks) and LFWA through the whole pipeline, chosen in params.yaml
only: `dvc repro` on their synthetic stand-ins, the 40 attributes followed by every stage; the
licensed sets' local folders checked before anything is copied."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml

from esgar import schema
from esgar.active.label_config import config_problems
from esgar.active.simulate import SimulatedAnnotator
from esgar.data.synthetic_faces import generate_lfwa
from esgar.integrations import labelstudio as ls
from esgar.schema import load_schema
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
def test_celebamask_hq_runs_end_to_end_by_params_alone(labelstudio, tmp_path):
    """From the stand-in's files to a relabel pulled back from a real Label Studio, through
    CelebAMask-HQ's 40 attributes, with LSA's limited labels on the way."""
    repo = copy_repo(labelstudio.document_root / "repo")  # its images must be served
    tiny(repo, **CELEBAMASK_HQ, train={"labeled_fraction": 0.5, "labeled_seed": 0},
         select={"budget": 4})
    env = {"LABEL_STUDIO_URL": labelstudio.url, "LABEL_STUDIO_API_KEY": labelstudio.api_key,
           "LABEL_STUDIO_DOCUMENT_ROOT": str(labelstudio.document_root),
           "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}"}
    run(["dvc", "repro", "evaluate", "push"], repo, timeout=900, env=env)

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
    # the loop: tasks in a project with the generated interface (Label Studio validates an
    # interface when it makes the project: 40 questions in ten groups); an annotator answers one
    # (the stand-in has no noise: its labels are the truth, but one answer they flip); pull
    # brings the answers back as CelebA's class names
    with ls.connect(labelstudio.server) as client:
        project = ls.find_project(client, "ESGAR: FS2K attribute check")
        stored = client.sdk.projects.get(project).label_config
        assert config_problems(stored, load_schema("celeba")) == []
        tasks = ls.list_tasks(client, project)
        task = next(t for t in tasks if not t["meta"].get("gold"))
        asked = task["data"]["questions"]
        assert asked and set(asked) <= set(table.attrs["schema"]["attributes"])
        labels = table.set_index("sample_id")
        sid, flip = task["data"]["sample_id"], asked[0]

        def truth(s: str, a: str) -> str:
            k = int(labels.loc[s, a])
            return ("absent", "present")[1 - k if (s, a) == (sid, flip) else k]

        careful = SimulatedAnnotator("admin", accuracy=1.0, laziness=0.0)
        with schema.using(load_schema("celeba")):  # the annotator's view of this project
            result = careful.answer(task["data"], truth)[0]
        assert {r["from_name"] for r in result} >= set(asked)
        ls.annotate(client, task["id"], result, lead_time=8.0)
    run(["dvc", "repro", "prepare"], repo, env=env)
    answers = pd.read_csv(repo / "data/relabels/answers.csv", dtype=str)
    assert set(answers["attribute"]) == set(asked)
    assert set(answers["answer"]) <= {"absent", "present"}
    snap = pd.read_csv(repo / "data/relabels/snapshot.csv", dtype=str)
    assert set(snap["attribute"]) <= set(asked)


@pytest.mark.slow
def test_lfwa_runs_to_the_selection_by_params_alone(tmp_path):
    """LFWA: its reader, its own train/test split (val carved out of train, no person on both
    sides), its schema carried by the table and the model, its metrics, the questions for the
    annotators in its attribute names; push and pull are CelebA's test's."""
    repo = copy_repo(tmp_path / "repo")
    tiny(repo, data={"dataset": "lfwa", "synthetic.pairs": 120},
         prepare={"root": "data/fs2k/LFWA"}, model={"attribute_regions": {"Male": "face"}})
    run(["dvc", "repro", "evaluate", "select"], repo, timeout=900,
        env={"MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}"})
    table = pd.read_parquet(repo / "data/prepared/samples.parquet")
    assert table.attrs["schema"]["name"] == "lfwa" and len(table) == 120
    assert set(table["split"]) == {"train", "val", "test"}  # val carved out of LFWA's train
    people = table["image_name"].str.split("/").str[1]
    assert not set(people[table["split"] == "test"]) & set(people[table["split"] != "test"])
    index = pd.read_parquet(repo / "data/masks/index.parquet")
    assert len(index) == 120  # the stand-in's drawn label maps, imported
    model = json.loads((repo / "models/esgar/model.json").read_text())["model"]
    assert model["schema"]["name"] == "lfwa" and len(model["attributes"]) == 40
    assert model["attribute_regions"]["Male"] == "face"  # params override the schema's
    assert model["attribute_regions"]["Wearing_Earrings"] == "earring"
    report = json.loads((repo / "reports/evaluate.json").read_text())["test"]
    assert 0.0 <= report["paper_mean_acc_40attr"] <= 1.0
    assert {f"bacc/{a}" for a in load_schema("lfwa").names} <= set(report)
    scored = pd.read_parquet(repo / "data/predictions/predictions.parquet")
    assert (scored["split"] == "test").sum() == (table["split"] == "test").sum()
    manifest = pd.read_parquet(repo / "data/selection/manifest.parquet")
    assert manifest["task"].nunique() > 0 and set(manifest["split"]) <= {"train", "val"}
    assert set(manifest["attribute"]) <= set(load_schema("lfwa").names)
    assert set(manifest["label"]) | set(manifest["guess"]) <= {"absent", "present"}


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
