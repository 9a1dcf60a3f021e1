"""DVC metrics a person reads in a terminal, and experiments compared DVC's way (`dvc exp`)."""

from __future__ import annotations

import json

import pytest

from esgar import schema
from tests.helpers import commit_all, run

pytestmark = pytest.mark.slow

WIDTH = 160  # a terminal's columns
MEANS = ("mean_bacc", "mean_macro_f1", "mean_minority_recall")
REGIONS = ("hair", "earring", "face", "foreground", "mouth", "eyes", "brows", "nose", "ears",
           "neck")
# Every DVC metrics file and its flattened keys: the headline. The detail goes to reports/ and
# MLflow; a key added here widens `dvc metrics show` and `dvc exp show`.
HEADLINE = {
    "metrics/prepare.json": {"dataset", "relabeled", "samples.train", "samples.val",
                             "samples.test"},
    "metrics/masks/empty.json": set(REGIONS),
    "metrics/masks/fell_back.json": set(REGIONS),
    "metrics/train.json": {"best_epoch", "epochs_run"},
    "metrics/evaluate.json": {f"{split}.{k}" for split in ("val", "test") for k in MEANS},
    "metrics/bacc/val.json": {f"bacc/{a}" for a in schema.ATTRIBUTE_NAMES},
    "metrics/bacc/test.json": {f"bacc/{a}" for a in schema.ATTRIBUTE_NAMES},
    "metrics/crossfit.json": {"samples", "folds", "oof/mean_bacc"},
    "metrics/select.json": {"tasks", "budget", "questions", "suspect"},
}
GIT_USER = {"GIT_AUTHOR_NAME": "test", "GIT_AUTHOR_EMAIL": "test@localhost",
            "GIT_COMMITTER_NAME": "test", "GIT_COMMITTER_EMAIL": "test@localhost"}


def metrics_show(repo, *targets: str) -> dict[str, dict]:
    """{path: flattened metrics} by `dvc metrics show --json` in `repo`."""
    shown = json.loads(run(["dvc", "metrics", "show", "--json", *targets], repo).stdout)
    files = shown[""]["data"]
    return {path: flatten(f["data"]) for path, f in files.items()}


def flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def check_headline(repo, *paths: str) -> dict[str, dict]:
    """Each metrics file of `paths` (files or folders) holds exactly its `HEADLINE` keys and
    `dvc metrics show <path>` fits `WIDTH` columns; returns {file: flattened metrics}."""
    shown = metrics_show(repo, *paths)
    assert {p: set(m) for p, m in shown.items()} == {p: HEADLINE[p] for p in shown}
    assert shown
    for path in paths:
        table = run(["dvc", "metrics", "show", path], repo).stdout.splitlines()
        assert max(map(len, table)) <= WIDTH, "\n".join(table)
    return shown


def test_metrics_files_hold_their_headline_and_fit_a_terminal(tiny_repo):
    files = [p for p in HEADLINE if not p.startswith(("metrics/crossfit", "metrics/select"))]
    shown = check_headline(tiny_repo, "metrics/masks", "metrics/bacc", *files)
    assert set(shown) == set(files)
    # the detail is in the reports
    report = json.loads((tiny_repo / "reports/evaluate.json").read_text())
    assert "bacc/hair_ci_low" in report["val"] and "recall/earring/with_earring" in report["test"]
    assert shown["metrics/evaluate.json"]["val.mean_bacc"] == report["val"]["mean_bacc"]
    masks = json.loads((tiny_repo / "reports/masks.json").read_text())
    assert set(masks["quality"]) == set(schema.SPLITS)
    prepare = json.loads((tiny_repo / "reports/prepare.json").read_text())
    assert sum(prepare["class_counts"]["val"]["hair"]) == shown[
        "metrics/prepare.json"]["samples.val"]
    train = json.loads((tiny_repo / "reports/train.json").read_text())
    assert train["best_epoch"] == shown["metrics/train.json"]["best_epoch"]


def test_two_experiments_show_side_by_side(repo):
    commit_all(repo, "the tiny pipeline's results")
    for head in ("global", "lsa"):  # one after the other in the workspace: the queue's worker
        run(["dvc", "exp", "run", "evaluate", "-n", f"head-{head}",  # costs ~30 s more
             "-S", f"model.head={head}", "-S", "train.epochs=1"], repo, env=GIT_USER)
    shown = json.loads(run(["dvc", "exp", "show", "--json"], repo).stdout)
    exps = {rev["name"]: rev["data"] for base in shown for e in base.get("experiments") or []
            for rev in e["revs"]}
    assert set(exps) == {"head-global", "head-lsa"}
    for name, data in exps.items():
        assert data["params"]["params.yaml"]["data"]["model"]["head"] == name.split("-")[1]
        means = data["metrics"]["metrics/evaluate.json"]["data"]
        assert set(means) == {"val", "test"} and set(means["val"]) == set(MEANS)
        bacc = data["metrics"]["metrics/bacc/val.json"]["data"]
        assert set(bacc) == {f"bacc/{a}" for a in schema.ATTRIBUTE_NAMES}
        assert data["metrics"]["metrics/train.json"]["data"]["epochs_run"] == 1
