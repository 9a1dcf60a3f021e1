"""The relabeling loop against a real Label Studio, as people use it: the README's sequence
(a first `dvc repro` without a server, then with one), blind questions, an annotator who
submits a task without touching the questions in doubt, several annotators with gold questions
and truth inference, and what goes wrong in a real project (a deleted task, a removed
account, a gold task nobody answered, a snapshot edited by hand)."""

from __future__ import annotations

import json

import httpx
import pandas as pd
import pytest

from esgar import schema
from esgar.active.simulate import SimulatedAnnotator
from esgar.integrations import labelstudio as ls
from tests.browser import annotate_next_task, have_chromium
from tests.helpers import copy_repo, ran_stages, run, set_params
from tests.labelstudio import run_script

pytestmark = pytest.mark.slow
PROJECT = "ESGAR: FS2K attribute check"
NOISE = {"earring": {0: 0.3}, "smile": {1: 0.2}}
RELABEL_TINY = {  # tiny data; the train stage runs before crossfit: kept small
    "data": {"source": "synthetic", "synthetic.pairs": 60, "synthetic.noise": NOISE},
    "prepare": {"val_fraction": 0.25},
    "masks": {"contact_sheet.n": 2, "grids": [[2, 2]]},
    "model": {"img_size": 64},
    "train": {"epochs": 1, "batch_size": 16, "loss_kwargs": {"smoothing": 1.0}},
    "crossfit": {"folds": 2, "epochs": 1, "img_size": 32, "batch_size": 16},
    "select": {"budget": 6}, "push": {"gold_share": 0.25}}


@pytest.fixture
def loop(labelstudio, tmp_path):
    """A repository inside the server's document root (its images must be served), set up
    for tiny data, and the environment that points the stages at the server."""
    repo = copy_repo(labelstudio.document_root / "repo")
    set_params(repo, **RELABEL_TINY)
    env = {"LABEL_STUDIO_URL": labelstudio.url, "LABEL_STUDIO_API_KEY": labelstudio.api_key,
           "LABEL_STUDIO_DOCUMENT_ROOT": str(labelstudio.document_root),
           "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}"}
    return repo, env, labelstudio


def started(client: ls.Client, task_id: int) -> dict[str, str]:
    """What a task's labelling view starts from: its one prediction's answers."""
    predictions = client.sdk.predictions.list(task=task_id)
    assert len(predictions) == 1
    return {r["from_name"]: r["value"]["choices"][0] for r in predictions[0].result}


def truth_of(repo):
    """(sample_id, attribute) -> the true class name, from synthetic FS2K's own record."""
    table = pd.read_parquet(repo / "data/prepared/samples.parquet").set_index("sample_id")
    flipped = {(r.image_name.replace("/", "_"), r.attribute): int(r.true_label)
               for r in pd.read_csv(repo / "data/fs2k/label_noise.csv").itertuples()}

    def truth(sid: str, attr: str) -> str:
        return schema.BY_NAME[attr].classes[flipped.get((sid, attr),
                                                        int(table.loc[sid, f"{attr}_orig"]))]
    return truth


def read_csv(path) -> pd.DataFrame:
    return pd.read_csv(path, dtype=str, keep_default_na=False)


def test_the_readme_sequence_pushes_blind_tasks_and_a_careless_submit_changes_nothing(loop):
    repo, env, server = loop
    # the README: ./scripts/repro.sh before any server, then start one and run it again
    offline = run(["dvc", "repro", "push"], repo, env={**env, "LABEL_STUDIO_URL": ""})
    assert "push" in ran_stages(offline) and "no Label Studio configured" in offline.stderr
    online = run(["dvc", "repro", "push"], repo, env=env)
    assert ran_stages(online) == ["pull", "push"]  # nothing else is stale; push asks anyway
    pushed = json.loads((repo / "data/labelstudio/pushed.json").read_text())
    manifest = pd.read_parquet(repo / "data/selection/manifest.parquet")
    assert pushed["prefill"] == "none" and pushed["gold_tasks"] >= 1
    assert len(pushed["created"]) == pushed["tasks"] == manifest["task"].nunique() + \
        pushed["gold_tasks"]

    client = ls.connect(server.server)
    project = ls.find_project(client, PROJECT)
    info = client.sdk.projects.get(project)
    assert info.maximum_annotations == 2  # params.yaml's labelstudio.annotators_per_task
    tasks = ls.list_tasks(client, project)
    for t in tasks:  # blind: the questions in doubt start empty, the rest from the label
        start = started(client, t["id"])
        assert not set(t["data"]["questions"]) & set(start)
        assert {a: start[a] for a in start} == {a: t["data"]["labels"][a] for a in start}
        assert "model says" not in t["data"]["in_question"]
    gold = [t for t in tasks if t["meta"].get("gold")]
    assert len(gold) == pushed["gold_tasks"]
    for field in ("sketch", "photo", "overlay"):  # every image of a task loads
        r = httpx.get(server.url + tasks[0]["data"][field],
                      headers={"Authorization": f"Token {server.api_key}"}, timeout=10)
        assert r.status_code == 200, field
        assert r.content[:3] == b"\xff\xd8\xff" or r.content[:4] == b"\x89PNG", field

    # a push with nothing new leaves every task as it is
    run(["python", "-m", "pipeline.push"], repo, env=env)
    again = json.loads((repo / "data/labelstudio/pushed.json").read_text())
    assert (again["created"], again["updated"], again["unchanged"]) == ([], [], len(tasks))
    # an open task whose content changed is updated, never doubled (here: hints asked for)
    set_params(repo, push={"hints": True})
    run(["python", "-m", "pipeline.push"], repo, env=env)
    hinted = json.loads((repo / "data/labelstudio/pushed.json").read_text())
    assert hinted["created"] == [] and sorted(hinted["updated"]) == [t["id"] for t in tasks]
    now = {t["id"]: t for t in ls.list_tasks(client, project)}
    assert len(now) == len(tasks) and "model says" in now[tasks[0]["id"]]["data"]["in_question"]

    # an annotator opens the next task in Chromium: the questions in doubt start empty and
    # Submit is refused until they are answered; they answer them (the truth) and submit. (No
    # Chromium, outside CI: the same answers through the API, as the view would mark them.)
    truth = truth_of(repo)
    by_sample = {t["data"]["sample_id"]: t for t in now.values()}
    made = run_script("add-annotators", {**server.env, "LABEL_STUDIO_ANNOTATORS":
                                         "ann@example.com:ann-password:ann-token-0123456"})
    assert made.returncode == 0, made.stderr
    if have_chromium():
        seen = annotate_next_task(server.url, "ann@example.com", "ann-password", project, truth,
                                  lambda sid: by_sample[sid]["data"]["questions"],
                                  repo / "shots/annotator.png")
        first = by_sample[seen.sample_id]
        labels = first["data"]["labels"]
        assert {a: seen.checked[a] for a in first["data"]["questions"]} == \
            dict.fromkeys(first["data"]["questions"])  # empty
        assert all(seen.checked[a] == labels[a] for a in labels
                   if a not in first["data"]["questions"])  # context: the label
        assert "is required" in seen.warning
    else:
        first = min(now.values(), key=lambda t: t["id"])
        with ls.connect(ls.Server(server.url, "ann-token-0123456")) as ann_client:
            careful = SimulatedAnnotator("ann@example.com", accuracy=1.0, laziness=0.0)
            ls.annotate(ann_client, first["id"], careful.answer(first["data"], truth)[0],
                        lead_time=8.0)
    # then the model's guess is pre-filled (push.prefill: model) and a careless annotator
    # submits another task as it came
    second = next(t for t in now.values() if t["id"] != first["id"]
                  and not t["meta"].get("gold"))
    set_params(repo, push={"prefill": "model", "hints": False})
    run(["python", "-m", "pipeline.push"], repo, env=env)
    model = json.loads((repo / "data/labelstudio/pushed.json").read_text())
    assert model["created"] == [] and first["id"] not in model["updated"]  # it has an answer
    lazy = SimulatedAnnotator("admin", accuracy=1.0, laziness=1.0)
    second_now = {t["id"]: t for t in ls.list_tasks(client, project)}[second["id"]]
    assert set(second_now["data"]["questions"]) <= set(started(client, second["id"]))
    result, _ = lazy.answer(second_now["data"], truth)
    assert {r["origin"] for r in result} == {"prediction"}  # nothing touched
    ls.annotate(client, second["id"], result, lead_time=0.8)

    after = run(["dvc", "repro", "prepare"], repo, env=env)
    assert "prepare" in ran_stages(after)
    answers = read_csv(repo / "data/relabels/answers.csv")
    snap = read_csv(repo / "data/relabels/snapshot.csv")
    mine = answers[answers["task_id"] == str(first["id"])]
    assert set(mine["origin"]) == {"manual"} and set(mine["chosen"]) == {"True"}
    assert set(mine["attribute"]) == set(first["data"]["questions"])
    assert set(mine["annotator"]) == {"ann@example.com"}
    assert pd.to_numeric(mine["seconds"]).min() >= 2  # time spent, from Label Studio
    left = answers[answers["task_id"] == str(second["id"])]
    assert len(left) and set(left["origin"]) == {"prediction"} and set(left["chosen"]) == {
        "False"}
    decided = snap[snap["task_id"] == str(first["id"])]
    if first["meta"].get("gold"):
        assert snap.empty  # gold measures the annotator; its labels are known
    else:
        assert set(decided["attribute"]) == set(first["data"]["questions"])
    # one answer of an annotator not yet measured on gold, against the label: recorded, and
    # applied only where it outweighs the label (pull.label_accuracy, pull.min_confidence)
    assert set(decided["status"]) <= {"decided", "low_confidence"}
    assert set(decided["votes"]) <= {"1"}
    assert not (snap["task_id"] == str(second["id"])).any()  # a pre-fill is no decision
    report = json.loads((repo / "reports/pull.json").read_text())
    who = report["annotators"]["annotator@example.com"]
    assert who["left_prefilled"] == len(left) and who["fast"] == 1
    table = pd.read_parquet(repo / "data/prepared/samples.parquet").set_index("sample_id")
    for row in decided.itertuples():
        now = schema.BY_NAME[row.attribute].classes[table.loc[row.sample_id, row.attribute]]
        if row.status == "decided":
            assert now == row.label == truth(row.sample_id, row.attribute)
        else:
            assert now == row.previous  # not applied
    sid = second["data"]["sample_id"]
    for attr in second["data"]["questions"]:  # the careless submit changed no label
        assert table.loc[sid, f"{attr}_source"] == "fs2k"
    prepared = json.loads((repo / "metrics/prepare.json").read_text())
    assert prepared["relabeled"] == int((snap["status"] == "decided").sum())

    before = (repo / "data/relabels/snapshot.csv").read_bytes()
    same = run(["dvc", "repro", "prepare"], repo, env=env)  # the same answers
    assert ran_stages(same) == ["pull"]  # pull always runs; nothing below it changed
    assert (repo / "data/relabels/snapshot.csv").read_bytes() == before


def test_several_annotators_gold_and_what_goes_wrong_in_a_real_project(loop):
    repo, env, server = loop
    set_params(repo, push={"gold_share": 0.4}, pull={"min_gold_answers": 1})
    accounts = {"ann1@example.com": 1.0, "ann2@example.com": 1.0, "careless@example.com": 0.0}
    listing = " ".join(f"{a}:password-{k}:token-{k}-0123456"
                       for k, a in enumerate(accounts))
    made = run_script("add-annotators", {**server.env, "LABEL_STUDIO_ANNOTATORS": listing})
    assert made.returncode == 0, made.stderr
    assert made.stdout.count("created annotator") == 3
    run(["dvc", "repro", "push"], repo, env=env)
    client = ls.connect(server.server)
    project = ls.find_project(client, PROJECT)
    tasks = ls.list_tasks(client, project)
    truth = truth_of(repo)
    people = [(ls.connect(ls.Server(server.url, f"token-{k}-0123456")),
               SimulatedAnnotator(email, accuracy, laziness=0.0, seed=k))
              for k, (email, accuracy) in enumerate(accounts.items())]
    while True:  # in turns, one task each, as people working side by side
        done = sum(ann.work(lambda m=mine: ls.next_task(m, project),
                            lambda task_id, result, seconds, m=mine: ls.annotate(
                                m, task_id, result, lead_time=seconds), truth, limit=1)
                   for mine, ann in people)
        if not done:
            break
    exported, problems = ls.export_annotations(client, project)
    assert problems == []
    for t in exported:  # overlap 2, and nobody twice on one task
        who = [a["completed_by"] for a in t["annotations"]]
        assert len(who) == 2 and len(set(who)) == 2, (t["id"], who)

    run(["python", "-m", "pipeline.pull"], repo, env=env)
    report = json.loads((repo / "reports/pull.json").read_text())
    measured = report["annotators"]
    assert set(measured) == set(accounts)
    assert report["gold"]["tasks"] >= 1 and report["gold"]["questions_answered"] >= 1
    for email in ("ann1@example.com", "ann2@example.com"):
        assert measured[email]["gold_accuracy"] in (1.0, None)
        assert not measured[email]["flagged"]
    careless = measured["careless@example.com"]
    assert careless["gold_answers"] >= 1 and careless["gold_accuracy"] == 0.0
    assert careless["flagged"] and "answers left out" in careless["why"]
    snap = read_csv(repo / "data/relabels/snapshot.csv")
    assert set(snap["status"]) <= {"decided", "low_confidence", "tie"}
    assert pd.to_numeric(snap["confidence"]).between(0, 1).all()
    assert "careless@example.com" not in "+".join(snap["annotator"])
    right = [row.label == truth(row.sample_id, row.attribute)
             for row in snap[snap["status"] == "decided"].itertuples()]
    assert right and all(right)  # the careful two agree with the truth; the careless left out

    # what goes wrong: a task deleted in Label Studio, an account removed, a gold task nobody
    # answered; each said, no decision lost
    decided_task = int(snap.loc[snap["status"] == "decided", "task_id"].iloc[0])
    kept = snap[snap["task_id"] == str(decided_task)]
    client.sdk.tasks.delete(str(decided_task))
    users = {u.email: u.id for u in client.sdk.users.list()}
    client.sdk.users.delete(users["careless@example.com"])
    # imported after the deletion, of another sketch: on sqlite it may get the deleted task's
    # id (pull tells them apart by their sketch)
    other = next(t["data"] for t in tasks if t["data"]["sample_id"] not in set(kept["sample_id"]))
    unanswered = ls.import_tasks(client, project, [{
        "data": other,
        "meta": {"gold": {a: truth(other["sample_id"], a) for a in other["questions"]}}}])
    pulled = run(["python", "-m", "pipeline.pull"], repo, env=env)
    assert f"task {decided_task} is gone from Label Studio" in pulled.stderr
    assert "account removed since" in pulled.stderr
    report = json.loads((repo / "reports/pull.json").read_text())
    assert unanswered[0] in report["gold"]["tasks_unanswered"]
    assert any("gold task(s) have no answer yet" in p for p in report["problems"])
    again = read_csv(repo / "data/relabels/snapshot.csv")
    carried = again[again["task_id"] == str(decided_task)]
    assert carried[["sample_id", "attribute", "label"]].values.tolist() == \
        kept[["sample_id", "attribute", "label"]].values.tolist()

    # a snapshot edited by hand: pull stops before overwriting it, nothing changes
    path = repo / "data/relabels/snapshot.csv"
    edited = path.read_text().replace("decided", "decided ", 1)
    path.write_text(edited)
    outputs = [repo / p for p in ("data/relabels/answers.csv", "reports/pull.json")]
    before = [p.read_bytes() for p in outputs]
    refused = run(["python", "-m", "pipeline.pull"], repo, env=env, check=False)
    assert refused.returncode == 1 and "Traceback" not in refused.stderr
    assert "was changed since the last pull wrote it" in refused.stderr
    assert path.read_text() == edited and [p.read_bytes() for p in outputs] == before


@pytest.mark.bad_input(stage="pull", kind="service")
def test_pull_with_a_wrong_token_or_no_server_keeps_the_snapshot(loop):
    repo, env, server = loop
    snapshot = repo / "data/relabels/snapshot.csv"
    snapshot.write_text("sample_id,attribute,label,previous,annotator,annotated_at,task_id,"
                        "status\nphoto1_image0001,hair,0,1,a,2026-11-25T10:00:00Z,3,decided\n")
    (repo / "reports/pull.json").write_text("{}\n")  # no record of the last pull
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
