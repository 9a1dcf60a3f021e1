"""A hostile but realistic user against every stage: each bad input ends in one clear `error:`
line and exit status 1, within seconds, before any work, and loses nothing.

Every case runs the stage script for real (`python -m pipeline.<stage> --params bad.yaml`) in one
repository copy that `dvc repro` built once on tiny synthetic FS2K; a case changes settings in a
params file of its own or points them at bad files it writes outside the repository, and the
repository's data, models, metrics and plots must come out byte for byte as they went in.
`bench/bad_inputs.py` counts the cases per stage and class for the README.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pytest
import yaml

from tests.helpers import OFFLINE, copy_repo, free_port, run, set_params, stage_env

pytestmark = pytest.mark.slow

PROTECTED = ("data", "models", "metrics", "reports", "plots", "dvc.lock")
ONE_LINE_ERROR_S = 40  # imports (torch, timm, mlflow) included, on a busy 2-core machine


# ---- the repository every case runs in -------------------------------------------------------


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Iterator[Path]:
    """A repository copy with the whole pipeline run on 40 synthetic pairs (1 epoch)."""
    root = tmp_path_factory.mktemp("bad_inputs")
    path = copy_repo(root / "repo")
    set_params(path, data={"source": "synthetic", "synthetic.pairs": 40},
               prepare={"val_fraction": 0.25},
               masks={"contact_sheet.n": 2, "grids": [[2, 2]]},
               model={"img_size": 64},
               train={"epochs": 1, "batch_size": 16, "loss_kwargs": {"smoothing": 1.0}},
               evaluate={"bootstrap": 10, "attention_samples": 2},
               crossfit={"folds": 2, "epochs": 1, "img_size": 32, "batch_size": 16},
               select={"budget": 5})
    run(["dvc", "repro"], path, env={"MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlflow.db'}"})
    yield path


def digest(repo: Path) -> dict[str, str]:
    """sha256 of every file of the pipeline's outputs (what a bad input must not touch)."""
    out = {}
    for name in PROTECTED:
        top = repo / name
        files = [top] if top.is_file() else sorted(p for p in top.rglob("*") if p.is_file())
        for p in files:
            out[p.relative_to(repo).as_posix()] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


# ---- the cases -------------------------------------------------------------------------------

@dataclass
class Case:
    """A bad input: `params` changed in a params file of its own (dotted keys per section),
    `prepare(tmp, repo)` writes bad files outside the repository and returns more changes,
    `env` for the stage's environment. `expect`: a regex the `error:` line must match."""

    id: str
    stage: str
    kind: str  # the class of bad input (see bench/bad_inputs.py)
    expect: str
    params: dict = field(default_factory=dict)
    prepare: Callable[[Path, Path], dict] | None = None
    env: Callable[[Path], dict] | None = None


def foreign_folder(section: str, key: str) -> Callable[[Path, Path], dict]:
    """An output setting pointed at a folder of the user's own."""
    def make(tmp: Path, repo: Path) -> dict:
        mine = tmp / "my_photos"
        mine.mkdir()
        (mine / "holiday.jpg").write_bytes(b"irreplaceable")
        return {section: {key: str(mine)}}
    return make


def bad_snapshot(text: str) -> Callable[[Path, Path], dict]:
    def make(tmp: Path, repo: Path) -> dict:
        (tmp / "snapshot.csv").write_text(text)
        return {"prepare": {"relabels": str(tmp / "snapshot.csv")}}
    return make


def zip_with(*members: tuple[zipfile.ZipInfo | str, bytes]) -> Callable[[Path, Path], dict]:
    """A local FS2K.zip: the repository's synthetic FS2K plus `members`."""
    def make(tmp: Path, repo: Path) -> dict:
        path = tmp / "FS2K.zip"
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
            root = repo / "data/fs2k"
            for f in sorted((root / "FS2K").rglob("*")):
                if f.is_file() and (f.suffix == ".json" or "0001" in f.name):
                    zf.write(f, f.relative_to(root).as_posix())
            for info, data in members:
                zf.writestr(info, data)
        return {"data": {"source": "local", "archive": str(path)}}
    return make


def symlink_member() -> zipfile.ZipInfo:
    info = zipfile.ZipInfo("FS2K/link")
    info.external_attr = (0o120777 << 16)
    return info


def broken_model(damage: Callable[[Path], None]) -> Callable[[Path, Path], dict]:
    """A copy of the trained model's folder, damaged."""
    def make(tmp: Path, repo: Path) -> dict:
        out = tmp / "model"
        out.mkdir()
        for name in ("model.json", "best.pt"):
            (out / name).write_bytes((repo / "models/esgar" / name).read_bytes())
        damage(out)
        return {"train": {"out": str(out)}}
    return make


def model_of_other_regions(tmp: Path, repo: Path) -> dict:
    """The trained model, described as seeing a region the mask store does not have."""
    def rename(folder: Path) -> None:
        info = json.loads((folder / "model.json").read_text())
        m = info["model"]
        m["region_names"] = ["piercing" if r == "earring" else r for r in m["region_names"]]
        m["attribute_regions"]["earring"] = "piercing"
        (folder / "model.json").write_text(json.dumps(info))
    return {"crossfit": {"model": broken_model(rename)(tmp, repo)["train"]["out"]}}


def truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def closed_mlflow(tmp: Path) -> dict:
    return {"MLFLOW_TRACKING_URI": f"http://127.0.0.1:{free_port()}"}


CASES = [
    # download
    Case("source-typo", "download", "params", r"data.source: 'gdriv' is not one of auto",
         {"data": {"source": "gdriv"}}),
    Case("unknown-key", "download", "params", r"data.soruce: unknown key; did you mean 'source'",
         {"data": {"soruce": "auto"}}),
    Case("pairs-zero", "download", "params", r"data.synthetic.pairs: .*greater than or equal "
         r"to 20", {"data": {"synthetic.pairs": 0}}),
    Case("ratio-zero", "download", "params", r"data.max_compression_ratio",
         {"data": {"max_compression_ratio": 0}}),
    Case("noise-class", "download", "params", r"noise.earring.5: class must be in 0..1",
         {"data": {"synthetic.noise": {"earring": {5: 0.1}}}}),
    Case("noise-confusion-over-1", "download", "params",
         r"noise.hair_color.2: the shares add up to 1.1, over 1",
         {"data": {"synthetic.noise": {"hair_color": {2: {0: 0.7, 1: 0.4}}}}}),
    Case("archive-missing", "download", "data", r"no such file \(data.archive\)",
         {"data": {"source": "local", "archive": "nowhere/FS2K.zip"}}),
    Case("zip-bomb", "download", "archive", r"unpacks to .* raise data.max_unpacked_mb",
         {"data": {"max_unpacked_mb": 1}},
         zip_with(("FS2K/photo/bomb.bin", bytes(2 << 20)))),
    Case("zip-ratio", "download", "archive", r"expands .*-fold.* raise data.max_compression",
         {}, zip_with(("FS2K/photo/bomb.bin", bytes(4 << 20)))),
    Case("zip-symlink", "download", "archive", r"member 'FS2K/link' is a symbolic link",
         {}, zip_with((symlink_member(), b"/etc"), ("FS2K/link/passwd", b"x"))),
    Case("out-foreign", "download", "output", r"my_photos: exists and is not written by this "
         r"project", {"data": {"source": "synthetic"}}, foreign_folder("data", "out")),
    # prepare
    Case("val-zero", "prepare", "params", r"prepare.val_fraction: .*greater than 0",
         {"prepare": {"val_fraction": 0}}),
    Case("dropped-share", "prepare", "params", r"prepare.max_dropped_fraction",
         {"prepare": {"max_dropped_fraction": 2}}),
    Case("root-missing", "prepare", "data", r"nowhere: no such dataset folder",
         {"prepare": {"root": "nowhere"}}),
    Case("snapshot-columns", "prepare", "data", r"snapshot.csv: missing column\(s\) annotated_at",
         {}, bad_snapshot("sample_id,attribute,label,previous,annotator,task_id\n")),
    Case("snapshot-garbage", "prepare", "data", r"snapshot.csv: missing column\(s\) sample_id",
         {}, bad_snapshot("\x00\x01\x02\"unclosed\n")),
    # masks
    Case("region-class", "masks", "params", r"region 'face': unknown class\(es\) \['beard'\]",
         {"masks": {"regions.face": ["skin", "beard"]}}),
    Case("fallback-region", "masks", "params", r"fallback earring -> earlobe: 'earlobe' is not "
         r"a region", {"masks": {"fallback.earring": "earlobe"}}),
    Case("grid-zero", "masks", "params", r"masks.grids.0.0: .*greater than or equal to 1",
         {"masks": {"grids": [[0, 7]]}}),
    Case("parser-typo", "masks", "params", r"masks.parser: 'bisnet' is not one of bisenet",
         {"masks": {"parser": "bisnet"}}),
    Case("degrade-rate", "masks", "params", r"masks.degrade.swap: .*less than or equal to 1",
         {"masks": {"degrade.level": 1, "degrade.swap": 2}}),
    Case("degrade-region-folders", "masks", "params", r"masks.degrade needs label maps",
         {"masks": {"degrade.level": 1, "source": "import", "import.format": "region_folders",
                    "import.dir": "data/fs2k/parsing/bisenet"}}),
    Case("table-missing", "masks", "data", r"nowhere.parquet: no sample table",
         {"masks": {"table": "nowhere.parquet"}}),
    Case("import-missing", "masks", "data", r"no mask file for this sample",
         {"masks": {"source": "import", "import.dir": "data"}}),
    Case("out-foreign", "masks", "output", r"my_photos: exists and is not written",
         {}, foreign_folder("masks", "out")),
    # train
    Case("head-typo", "train", "params", r"model.head: unknown head 'esgg'",
         {"model": {"head": "esgg"}}),
    Case("backbone-typo", "train", "params", r"unknown backbone 'resnet1'.*did you mean resnet18",
         {"model": {"backbone": "resnet1"}}),
    Case("epochs-zero", "train", "params", r"train.epochs: .*greater than or equal to 1",
         {"train": {"epochs": 0}}),
    Case("epochs-negative", "train", "params", r"train.epochs", {"train": {"epochs": -1}}),
    Case("img-size-zero", "train", "params", r"model.img_size", {"model": {"img_size": 0}}),
    Case("loss-typo", "train", "params", r"unknown loss 'bal'", {"train": {"loss": "bal"}}),
    Case("loss-option", "train", "params", r"loss 'balanced_bce' takes no option\(s\) beta",
         {"train": {"loss_kwargs": {"beta": 0.9}}}),
    Case("head-option", "train", "params", r"head 'esg' takes no option\(s\) pool",
         {"model": {"head_kwargs.esg": {"pool": "mean"}}}),
    Case("lr-text", "train", "params", r"train.lr: .*valid number",
         {"train": {"lr": "fast"}}),
    Case("region-unknown", "train", "params", r"earring -> 'earings' is not one of the regions",
         {"model": {"attribute_regions.earring": "earings"}}),
    Case("attribute-of-another-dataset", "train", "params", r"model.attribute_regions: unknown "
         r"attribute\(s\) Smiling; the attributes of fs2k are hair, hair_color",
         {"model": {"attribute_regions": {"Smiling": "mouth"}}}),
    Case("weights-missing", "train", "params", r"pretrained: missing.pth is not a file",
         {"model": {"pretrained": "missing.pth"}}),
    Case("cuda-absent", "train", "params", r"no CUDA device is available",
         {"train": {"device": "cuda"}}),
    Case("precision-typo", "train", "params", r"train.precision: 'fp16' is not one of auto, "
         r"bf16, fp32", {"train": {"precision": "fp16"}}),
    Case("amp-of-old-params", "train", "params", r"train: amp was replaced by precision: auto",
         {"train": {"amp": True}}),
    Case("mlflow-closed", "train", "service", r"MLflow tracking at http://127.0.0.1:\d+ is "
         r"unavailable: connection refused", env=closed_mlflow),
    Case("out-foreign", "train", "output", r"my_photos: exists and is not written",
         {}, foreign_folder("train", "out")),
    # evaluate
    Case("split-typo", "evaluate", "params", r"evaluate.splits.0: 'tset' is not one of",
         {"evaluate": {"splits": ["tset"]}}),
    Case("bootstrap-negative", "evaluate", "params", r"evaluate.bootstrap",
         {"evaluate": {"bootstrap": -1}}),
    Case("model-missing", "evaluate", "data", r"nowhere/model.json: no trained model here",
         {"train": {"out": "nowhere"}}),
    Case("weights-truncated", "evaluate", "data", r"best.pt: not weights of the model",
         {}, broken_model(lambda d: truncate(d / "best.pt"))),
    Case("model-json-garbage", "evaluate", "data", r"model.json: not a model description",
         {}, broken_model(lambda d: (d / "model.json").write_text("{"))),
    Case("mlflow-closed", "evaluate", "service", r"MLflow tracking at .* connection refused",
         env=closed_mlflow),
    # crossfit
    Case("folds-one", "crossfit", "params", r"crossfit.folds: .*greater than or equal to 2",
         {"crossfit": {"folds": 1}}),
    Case("inner-val-all", "crossfit", "params", r"crossfit.inner_val_fraction",
         {"crossfit": {"inner_val_fraction": 1}}),
    Case("work-foreign", "crossfit", "output", r"my_photos: exists and is not written",
         {}, foreign_folder("crossfit", "work")),
    Case("method-unknown", "crossfit", "params", r"crossfit.method: 'trees' is not one of "
         r"features, folds, both", {"crossfit": {"method": "trees"}}),
    Case("regularization-zero", "crossfit", "params", r"crossfit.regularization: .*greater "
         r"than 0", {"crossfit": {"regularization": 0}}),
    Case("features-no-model", "crossfit", "data", r"nowhere/model.json: no trained model here "
         r"\(run the train stage\)", {"crossfit": {"model": "nowhere"}}),
    Case("features-model-regions", "crossfit", "data", r"the mask store has no region\(s\) "
         r"piercing", {}, model_of_other_regions),
    # select
    Case("budget-zero", "select", "params", r"select.budget: .*greater than 0",
         {"select": {"budget": 0}}),
    Case("budget-fraction", "select", "params", r"select.budget 2.5: a share is below 1",
         {"select": {"budget": 2.5}}),
    Case("uncertainty-typo", "select", "params", r"select.uncertainty: 'gini' is not one of",
         {"select": {"uncertainty": "gini"}}),
    Case("test-split", "select", "params", r"select.splits.0: 'test' is not one of train, val",
         {"select": {"splits": ["test"]}}),
    Case("val-share-no-val", "select", "params",
         r"select.val_share 0.5: a share of the budget for validation needs select.splits to "
         r"hold val and another split", {"select": {"val_share": 0.5, "splits": ["train"]}}),
    Case("val-share-above-one", "select", "params", r"select.val_share: .*less than or equal to 1",
         {"select": {"val_share": 1.5}}),
    Case("probs-missing", "select", "data", r"nowhere.parquet: missing \(run the crossfit stage",
         {"select": {"probs": "nowhere.parquet"}}),
    # push, pull
    Case("manifest-missing", "push", "data", r"nowhere.parquet: missing \(run the select stage",
         {"push": {"manifest": "nowhere.parquet"}}),
    Case("label-config-missing", "push", "params", r"push.label_config: no such file "
         r"'nowhere.xml' \(give Label Studio's interface file, or from_schema",
         {"push": {"label_config": "nowhere.xml"}}),
    Case("project-short", "push", "params", r"labelstudio.project: .*at least 3 characters",
         {"labelstudio": {"project": "x"}}),
    Case("folds-over-sketches", "crossfit", "params", r"crossfit.folds 5000: the \d+ train and "
         r"val sketches make folds of under two sketches", {"crossfit": {"folds": 5000}}),
    Case("relabels-mistyped", "select", "params", r"select.relabels: .*snapshot.cvs does not "
         r"exist.*is the path right", {"select": {"relabels": "data/relabels/snapshot.cvs"}}),
    Case("relabels-mistyped", "prepare", "params", r"prepare.relabels: .*snapshot.cvs does not "
         r"exist", {"prepare": {"relabels": "data/relabels/snapshot.cvs"}}),
    Case("outside-document-root", "push", "data", r"is not inside the document root .*serves "
         r"only files below its document root", env=lambda tmp: {
             "LABEL_STUDIO_DOCUMENT_ROOT": str(tmp)}),
    Case("pretrained-offline", "train", "service", r"could not get pretrained weights for "
         r"'resnet18' from the Hugging Face hub", {"model": {"pretrained": True}},
         env=lambda tmp: {**OFFLINE, "HF_HOME": str(tmp / "hf")}),
    Case("prefill-unknown", "push", "params", r"push.prefill: 'guess' is not one of none, "
         r"current, model", {"push": {"prefill": "guess"}}),
    Case("no-annotator", "push", "params", r"labelstudio.annotators_per_task: .*greater than or "
         r"equal to 1", {"labelstudio": {"annotators_per_task": 0}}),
    Case("consensus-unknown", "pull", "params", r"pull.consensus: 'vote' is not one of "
         r"gold_weighted, dawid_skene, majority", {"pull": {"consensus": "vote"}}),
    Case("confidence-above-1", "pull", "params", r"pull.min_confidence: .*less than or equal "
         r"to 1", {"pull": {"min_confidence": 1.5}}),
    Case("url-not-http", "pull", "service", r"LABEL_STUDIO_URL='ftp://x' is not an http\(s\) URL",
         env=lambda tmp: {"LABEL_STUDIO_URL": "ftp://x", "LABEL_STUDIO_API_KEY": "k"}),
    Case("key-missing", "push", "service", r"LABEL_STUDIO_API_KEY is not set",
         env=lambda tmp: {"LABEL_STUDIO_URL": "http://127.0.0.1:9"}),
]


def run_case(repo: Path, tmp: Path, case: Case, env: dict | None = None
             ) -> subprocess.CompletedProcess:
    params = yaml.safe_load((repo / "params.yaml").read_text())
    bad = tmp / "bad.yaml"
    bad.write_text(yaml.safe_dump(params))
    changes = [case.params] + ([case.prepare(tmp, repo)] if case.prepare else [])
    for change in changes:
        set_params(bad, **change)
    return run(["python", "-m", f"pipeline.{case.stage}", "--params", str(bad)], repo,
               check=False, timeout=300, env=env)


def _marks(case: Case) -> list[pytest.MarkDecorator]:
    marks = [pytest.mark.bad_input(stage=case.stage, kind=case.kind)]
    if case.id == "cuda-absent":
        import torch

        marks.append(pytest.mark.skipif(torch.cuda.is_available(),
                                        reason="this host has CUDA: the case needs one without"))
    return marks


@pytest.mark.parametrize("case", [pytest.param(c, id=f"{c.stage}-{c.id}", marks=_marks(c))
                                  for c in CASES])
def test_bad_input_is_one_clear_line_and_loses_nothing(repo, tmp_path, case):
    before = digest(repo)
    mlflow_db = tmp_path / "mlflow.db"
    env = {"MLFLOW_TRACKING_URI": f"sqlite:///{mlflow_db}", **(case.env(tmp_path)
                                                                if case.env else {})}
    start = time.monotonic()
    proc = run_case(repo, tmp_path, case, env)
    took = time.monotonic() - start
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, proc.stderr[-3000:]
    message = proc.stderr[proc.stderr.index("error: "):]
    assert re.search(case.expect, message, re.S), message
    assert took < ONE_LINE_ERROR_S, f"took {took:.0f} s"
    assert digest(repo) == before
    mine = tmp_path / "my_photos"
    if mine.exists():
        assert [p.name for p in mine.iterdir()] == ["holiday.jpg"]
    if mlflow_db.exists():  # a failure before the work opens no run
        with sqlite3.connect(mlflow_db) as db:
            assert db.execute("select count(*) from runs").fetchone() == (0,)


# ---- what needs more than one line to set up -------------------------------------------------

def private_outputs(tmp: Path, stage: str) -> dict:
    """Settings that send `stage`'s outputs into `tmp`, so the repository stays as it is."""
    if stage == "train":
        return {"train": {"out": str(tmp / "model"), "metrics": str(tmp / "train.json"),
                          "report": str(tmp / "train_report.json"),
                          "history": str(tmp / "history.csv")}}
    return {"prepare": {"out": str(tmp / "prepared"), "metrics": str(tmp / "prepare.json"),
                        "report": str(tmp / "prepare_report.json"),
                        "plot": str(tmp / "counts.png")}}


def run_status(db: Path) -> list[str]:
    with sqlite3.connect(db) as con:
        return [s for (s,) in con.execute("select status from runs")]


@pytest.mark.bad_input(stage="train", kind="service")
def test_silent_mlflow_server_fails_within_the_timeout(repo, tmp_path, silent_url):
    """A server that accepts connections and never answers: no hang, one line."""
    before = digest(repo)
    case = Case("mlflow-silent", "train", "service", "")
    start = time.monotonic()
    proc = run_case(repo, tmp_path, case, env={"MLFLOW_TRACKING_URI": silent_url})
    assert time.monotonic() - start < ONE_LINE_ERROR_S
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert re.search(r"error: MLflow tracking at http://127.0.0.1:\d+ is unavailable: no answer "
                     r"within \d+ s", proc.stderr), proc.stderr[-2000:]
    assert digest(repo) == before


@pytest.mark.bad_input(stage="train", kind="data")
def test_failure_inside_a_run_closes_it_as_failed(repo, tmp_path):
    """Training that fails after the MLflow run opened (a class with no training sample, which
    the balanced loss cannot weight) leaves the run FAILED, not RUNNING."""
    table = pd.read_parquet(repo / "data/prepared/samples.parquet")
    table.loc[table["split"] == "train", "hair"] = 0
    table.to_parquet(tmp_path / "samples.parquet", index=False)
    db = tmp_path / "mlflow.db"
    case = Case("empty-class", "train", "data", "", private_outputs(tmp_path, "train"))
    case.params["model"] = {"table": str(tmp_path / "samples.parquet")}
    case.params["train"]["loss_kwargs"] = {}
    proc = run_case(repo, tmp_path, case, env={"MLFLOW_TRACKING_URI": f"sqlite:///{db}"})
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert re.search(r"error: hair: class\(es\) \[1\] have no training sample", proc.stderr)
    assert run_status(db) == ["FAILED"]
    assert not (tmp_path / "model/best.pt").exists()


@pytest.mark.bad_input(stage="train", kind="interrupt")
def test_killed_training_closes_its_run_as_killed(repo, tmp_path):
    db = tmp_path / "mlflow.db"
    bad = tmp_path / "kill.yaml"
    bad.write_text((repo / "params.yaml").read_text())
    settings = private_outputs(tmp_path, "train")
    settings["train"]["epochs"] = 50
    set_params(bad, **settings)
    proc = subprocess.Popen([sys.executable, "-m", "pipeline.train", "--params", str(bad)],
                            cwd=repo,
                            env={**stage_env(), "MLFLOW_TRACKING_URI": f"sqlite:///{db}"},
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not (
                db.exists() and "RUNNING" in _statuses_or_empty(db)):
            time.sleep(0.5)
        assert "RUNNING" in _statuses_or_empty(db), "the run never started"
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode != 0
    assert run_status(db) == ["KILLED"], out[-2000:]
    assert not (tmp_path / "train.json").exists()  # no summary of a run that did not finish


def _statuses_or_empty(db: Path) -> list[str]:
    try:
        return run_status(db)
    except sqlite3.Error:  # the store is still being created
        return []


@pytest.mark.bad_input(stage="prepare", kind="relabel")
def test_relabel_by_class_name_is_applied(repo, tmp_path):
    table = json.loads((repo / "metrics/prepare.json").read_text())
    assert table["relabeled"] == 0
    sample = pd.read_parquet(repo / "data/prepared/samples.parquet").query("gender == 0").iloc[0]
    (tmp_path / "snapshot.csv").write_text(
        "sample_id,attribute,label,previous,annotator,annotated_at,task_id\n"
        f"{sample.sample_id},gender,male,male,ann,2026-11-01T10:00:00+02:00,1\n"
        f"{sample.sample_id},gender,female,male,ann,2026-11-01T08:30:00Z,2\n")
    case = Case("class-name", "prepare", "data", "", private_outputs(tmp_path, "prepare"))
    case.params["prepare"]["relabels"] = str(tmp_path / "snapshot.csv")
    proc = run_case(repo, tmp_path, case)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = pd.read_parquet(tmp_path / "prepared/samples.parquet").set_index("sample_id")
    # 10:00+02:00 is 08:00Z, before 08:30Z: the later decision, by name, is `female` (as text,
    # "...T10:00" would sort last and `male` would win)
    assert out.loc[sample.sample_id, "gender"] == 1
    assert out.loc[sample.sample_id, "gender_source"] == "relabel"


def test_outputs_are_written_with_the_users_umask(repo):
    """Other users and a shared DVC cache must be able to read what the stages wrote."""
    umask = os.umask(0)
    os.umask(umask)
    for path in ("data/masks", "data/masks/meta.json", "data/prepared/samples.parquet",
                 "data/fs2k", "models/esgar", "models/esgar/best.pt", "metrics/evaluate.json"):
        p = repo / path
        want = (0o777 if p.is_dir() else 0o666) & ~umask
        assert p.stat().st_mode & 0o777 == want, path
