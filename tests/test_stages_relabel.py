"""The relabeling loop against a real Label Studio: `dvc repro` pushes the selected sketches as
tasks, an annotator answers through the API, the next `dvc repro` pulls the answers into the
snapshot and applies them."""

from __future__ import annotations

import json
import os

import httpx
import pandas as pd
import pytest

from esgar import schema
from esgar.active.annotations import prediction_result
from esgar.integrations import labelstudio as ls
from tests.helpers import copy_repo, ran_stages, run, screenshot, set_params
from tests.labelstudio import PASSWORD, USERNAME

pytestmark = pytest.mark.slow
PROJECT = "ESGAR: FS2K attribute check"


@pytest.fixture
def loop(labelstudio, tmp_path):
    """A repository inside the server's document root (its images must be served), set up
    for tiny data, and the environment that points the stages at the server."""
    repo = copy_repo(labelstudio.document_root / "repo")
    set_params(repo,
               data={"source": "synthetic", "synthetic.pairs": 60,
                     "synthetic.noise": {"earring": {0: 0.3}}},
               prepare={"val_fraction": 0.25},
               masks={"contact_sheet.n": 2, "grids": [[2, 2]]},
               train={"loss_kwargs": {"smoothing": 1.0}},
               crossfit={"folds": 2, "epochs": 1, "img_size": 32, "batch_size": 16},
               select={"budget": 5})
    env = {"LABEL_STUDIO_URL": labelstudio.url, "LABEL_STUDIO_API_KEY": labelstudio.api_key,
           "LABEL_STUDIO_DOCUMENT_ROOT": str(labelstudio.document_root),
           "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}"}
    return repo, env, labelstudio


def test_push_answer_pull_apply(loop):
    repo, env, server = loop
    first = run(["dvc", "repro", "push"], repo, env=env)
    assert {"pull", "select", "push"} <= set(ran_stages(first))
    assert "no project" in first.stdout + first.stderr  # pull found nothing to pull yet
    pushed = json.loads((repo / "data/labelstudio/pushed.json").read_text())
    manifest = pd.read_parquet(repo / "data/selection/manifest.parquet")
    assert len(pushed["created"]) == manifest["task"].nunique() == pushed["tasks"]

    client = ls.connect(server.server)
    project = ls.find_project(client, PROJECT)
    tasks = ls.list_tasks(client, project)
    assert [t["id"] for t in tasks] == sorted(pushed["created"])
    assert all(t["predictions"] == 1 for t in tasks)
    for field in ("sketch", "photo", "overlay"):  # every image of a task loads
        url = server.url + tasks[0]["data"][field]
        r = httpx.get(url, headers={"Authorization": f"Token {server.api_key}"}, timeout=10)
        assert r.status_code == 200
        assert r.content[:3] == b"\xff\xd8\xff" or r.content[:4] == b"\x89PNG", field
    # the walkthrough's screenshot of a task: the page loads in a real browser, not blank
    screenshot("labelstudio", repo / "shots", env={
        **env, "LABEL_STUDIO_ENV_FILE": os.devnull, "LABEL_STUDIO_USERNAME": USERNAME,
        "LABEL_STUDIO_PASSWORD": PASSWORD})

    again = run(["python", "-m", "pipeline.push"], repo, env=env)  # same selection again
    pushed = json.loads((repo / "data/labelstudio/pushed.json").read_text())
    assert pushed["created"] == [] and pushed["updated"] == []
    assert pushed["unchanged"] == len(tasks), again.stderr[-2000:]
    assert len(ls.list_tasks(client, project)) == len(tasks)

    # an annotator changes the first question's answer and confirms the rest
    task = tasks[0]
    attr = task["data"]["questions"][0]
    table = pd.read_parquet(repo / "data/prepared/samples.parquet").set_index("sample_id")
    sid = task["data"]["sample_id"]
    current = schema.BY_NAME[attr].classes[table.loc[sid, attr]]
    other = next(c for c in schema.BY_NAME[attr].classes if c != current)
    answers = {**task["data"]["labels"], attr: other}
    ls.annotate(client, task["id"], prediction_result(answers))

    after = run(["dvc", "repro", "prepare"], repo, env=env)
    assert "prepare" in ran_stages(after)
    snap = pd.read_csv(repo / "data/relabels/snapshot.csv", dtype=str, keep_default_na=False)
    row = snap[(snap.sample_id == sid) & (snap.attribute == attr)].iloc[0]
    assert (row.label, row.previous, row.status) == (other, current, "decided")
    assert row.annotator == "annotator@example.com" and row.task_id == str(task["id"])
    table = pd.read_parquet(repo / "data/prepared/samples.parquet").set_index("sample_id")
    assert schema.BY_NAME[attr].classes[table.loc[sid, attr]] == other
    assert table.loc[sid, f"{attr}_source"] == "relabel"

    before = (repo / "data/relabels/snapshot.csv").read_bytes()
    same = run(["dvc", "repro", "prepare"], repo, env=env)  # the same answers
    assert ran_stages(same) == ["pull"]  # pull always runs; nothing below it changed
    assert (repo / "data/relabels/snapshot.csv").read_bytes() == before


@pytest.mark.bad_input(stage="pull", kind="service")
def test_pull_with_a_wrong_token_or_no_server_keeps_the_snapshot(loop):
    repo, env, server = loop
    snapshot = repo / "data/relabels/snapshot.csv"
    snapshot.write_text("sample_id,attribute,label,previous,annotator,annotated_at,task_id,"
                        "status\nphoto1_image0001,hair,0,1,a,2026-11-25T10:00:00Z,3,decided\n")
    before = snapshot.read_bytes()
    wrong = run(["python", "-m", "pipeline.pull"], repo, check=False,
                env={**env, "LABEL_STUDIO_API_KEY": "not-the-token"})
    assert wrong.returncode == 1 and "Traceback" not in wrong.stderr
    assert f"error: Label Studio at {server.url}" in wrong.stderr and "401" in wrong.stderr
    closed = run(["python", "-m", "pipeline.pull"], repo, check=False,
                 env={**env, "LABEL_STUDIO_URL": "http://127.0.0.1:9"})
    assert closed.returncode == 1 and "connection refused" in closed.stderr
    unset = run(["python", "-m", "pipeline.pull"], repo,
                env={**env, "LABEL_STUDIO_URL": ""})
    assert "no Label Studio configured" in unset.stderr
    assert snapshot.read_bytes() == before
