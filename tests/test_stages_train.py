"""`dvc repro` of train + evaluate on tiny synthetic FS2K, logged to a private MLflow store."""

from __future__ import annotations

import base64
import json

import mlflow
import pandas as pd
import pytest
import torch
from mlflow.tracking import MlflowClient
from sklearn.metrics import balanced_accuracy_score

from esgar.device import resolve_precision
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

    report = json.loads((repo_copy / "reports/evaluate.json").read_text())
    assert set(report) == {"val", "test"}
    m = report["test"]
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
    # the precision asked for, what it chose on this CPU and why, in MLflow and model.json
    chosen = resolve_precision("auto", torch.device("cpu")).record()
    assert json.loads((repo_copy / "models/esgar/model.json").read_text())["precision"] == chosen
    assert train.data.params["train.precision"] == "auto"
    assert {k: train.data.tags[f"precision.{k}"] for k in chosen} == {
        k: str(v).lower() if isinstance(v, bool) else v for k, v in chosen.items()}
    assert evaluate.data.tags["precision.used"] == chosen["used"]
    curve = client.get_metric_history(train.info.run_id, "val/mean_bacc")
    assert [p.step for p in curve] == [1, 2]
    assert evaluate.data.tags["train_run_id"] == train.info.run_id
    assert evaluate.data.metrics["test/mean_bacc"] == pytest.approx(m["mean_bacc"])
    # MLflow holds every number of the report; DVC's metrics are its headline
    assert evaluate.data.metrics == pytest.approx(
        {f"{split}/{k}": v for split, ms in report.items() for k, v in ms.items()})
    headline = json.loads((repo_copy / "metrics/evaluate.json").read_text())
    assert headline["test"] == {k: m[k] for k in ("mean_bacc", "mean_macro_f1",
                                                  "mean_minority_recall")}
    bacc = json.loads((repo_copy / "metrics/bacc/test.json").read_text())
    assert bacc == {k: v for k, v in m.items() if k.startswith("bacc/") and "_ci_" not in k}
    artifacts = {a.path for a in client.list_artifacts(evaluate.info.run_id, "plots")}
    assert "plots/confusion_test_smile.png" in artifacts

    # the logged model takes sketches as base64 image bytes (tests/test_serve.py serves it)
    mlflow.set_tracking_uri(uri)
    model = mlflow.pyfunc.load_model(f"runs:/{train.info.run_id}/model")
    sketch = repo_copy / "data/fs2k/FS2K/sketch/sketch1/sketch0001.jpg"
    label_map = repo_copy / "data/fs2k/parsing/bisenet/photo1/image0001.png"
    b64 = [base64.b64encode(f.read_bytes()).decode() for f in (sketch, label_map)]
    out = model.predict(pd.DataFrame({"sketch": [b64[0], "bm90IGFuIGltYWdl"],
                                      "masks": [b64[1], b64[1]]}))
    assert list(out["sketch"]) == ["0", "1"]
    assert out["error"][0] == "" and "cannot read the image" in out["error"][1]
    assert out["hair_color"][0] in ("brown", "black", "red", "no_hair", "golden")
    assert out.filter(like="style.").iloc[0].sum() == pytest.approx(1, abs=1e-5)

    assert ran_stages(run(["dvc", "repro", "evaluate"], repo_copy)) == ["pull"]
    for head in ("lsa", "ssp_ssg", "global"):  # any head named in params.yaml
        set_params(repo_copy, model={"head": head})
        assert ran_stages(run(["dvc", "repro", "evaluate"], repo_copy)) == [
            "pull", "train", "evaluate"], \
            head
    heads = {r.data.params.get("model.head") for r in client.search_runs(
        [exp.experiment_id], "tags.stage = 'train'")}
    assert heads == {"esg", "lsa", "ssp_ssg", "global"}
