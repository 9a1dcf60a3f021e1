"""`dvc repro` of train + evaluate on tiny synthetic FS2K, logged to a private MLflow store."""

from __future__ import annotations

import json

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient
from sklearn.metrics import balanced_accuracy_score

from tests.helpers import ran_stages, run, set_params

pytestmark = pytest.mark.slow


def test_repro_trains_evaluates_and_logs_to_mlflow(repo_copy, tmp_path, monkeypatch):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    set_params(repo_copy,
               data={"source": "synthetic", "synthetic.pairs": 80},
               prepare={"val_fraction": 0.25},
               masks={"contact_sheet.n": 2, "grids": [[2, 2]]},
               model={"img_size": 64, "head": "esg"},
               train={"epochs": 2, "batch_size": 16, "loss_kwargs": {"smoothing": 1.0}},
               evaluate={"bootstrap": 50, "attention_samples": 2})
    first = run(["dvc", "repro", "evaluate"], repo_copy)
    assert ran_stages(first) == ["pull", "download", "prepare", "masks", "train", "evaluate"]

    metrics = json.loads((repo_copy / "metrics/evaluate.json").read_text())
    assert set(metrics) == {"val", "test"}
    m = metrics["test"]
    assert 0 <= m["mean_bacc_ci_low"] <= m["mean_bacc"] <= m["mean_bacc_ci_high"] <= 1
    assert "paper_mean_acc_6attr" in m and "recall/earring/with_earring" in m
    plots = repo_copy / "plots/evaluate"
    assert (plots / "confusion_test_hair_color.png").is_file()
    assert (plots / "attention_test.png").is_file()  # esg exposes its attention
    confusion = pd.read_csv(repo_copy / "plots/confusion/test_hair_color.csv")
    balanced = balanced_accuracy_score(confusion.actual, confusion.predicted)
    assert balanced == pytest.approx(m["bacc/hair_color"])  # the DVC plot is of these figures

    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("esgar")
    runs = {r.data.tags["stage"]: r for r in client.search_runs([exp.experiment_id])}
    train, evaluate = runs["train"], runs["evaluate"]
    assert train.data.params["model.head"] == "esg" and train.data.params["train.epochs"] == "2"
    assert len(train.data.tags["git_commit"].split("-")[0]) == 40  # the copy's HEAD
    assert train.data.tags["data.data/prepared"] not in ("", "missing")
    assert train.data.tags["data.data/masks"] not in ("", "missing")
    curve = client.get_metric_history(train.info.run_id, "val/mean_bacc")
    assert [p.step for p in curve] == [1, 2]
    assert evaluate.data.tags["train_run_id"] == train.info.run_id
    assert evaluate.data.metrics["test/mean_bacc"] == pytest.approx(m["mean_bacc"])
    artifacts = {a.path for a in client.list_artifacts(evaluate.info.run_id, "plots")}
    assert "plots/confusion_test_smile.png" in artifacts

    # the logged model loads and predicts for any batch size
    mlflow.set_tracking_uri(uri)
    model = mlflow.pyfunc.load_model(f"runs:/{train.info.run_id}/model")
    for batch in (1, 3):
        x = {"image": np.random.rand(batch, 3, 64, 64).astype(np.float32),
             "grids": np.random.rand(batch, 10, 2, 2).astype(np.float32)}
        out = model.predict(x)
        assert out["hair_color"].shape == (batch, 5)
        assert np.allclose(out["style"].sum(1), 1, atol=1e-5)

    assert ran_stages(run(["dvc", "repro", "evaluate"], repo_copy)) == ["pull"]
    for head in ("lsa", "ssp_ssg", "global"):  # any head named in params.yaml
        set_params(repo_copy, model={"head": head})
        assert ran_stages(run(["dvc", "repro", "evaluate"], repo_copy)) == [
            "pull", "train", "evaluate"], \
            head
    heads = {r.data.params.get("model.head") for r in client.search_runs(
        [exp.experiment_id], "tags.stage = 'train'")}
    assert heads == {"esg", "lsa", "ssp_ssg", "global"}
