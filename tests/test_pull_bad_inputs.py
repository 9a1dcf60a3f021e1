"""What goes wrong in a real annotation project, at the pull stage's boundaries (no server: its
functions on the shapes Label Studio exports; tests/test_stages_relabel.py does the same against
a real server): each is said, none silently changes a label."""

from __future__ import annotations

import hashlib
import json

import pandas as pd
import pytest

from esgar.active.consensus import DECISION_COLUMNS
from esgar.errors import EsgarError
from pipeline.params.base import load
from pipeline.params.labelstudio import PullParams
from pipeline.pull import carried_over, check_not_edited, gold_tasks
from tests.helpers import REPO


def snapshot(*task_ids: int) -> pd.DataFrame:
    return pd.DataFrame([{"sample_id": f"photo1_image{t:04d}", "attribute": "earring",
                          "label": "without_earring", "previous": "with_earring",
                          "annotator": "a@x", "annotated_at": "2026-11-25T10:00:00.000000Z",
                          "task_id": str(t), "status": "decided", "confidence": "0.97",
                          "votes": "2"} for t in task_ids], columns=DECISION_COLUMNS)


@pytest.mark.bad_input(stage="pull", kind="relabel")
def test_a_task_deleted_in_label_studio_keeps_its_decisions():
    problems: list[str] = []
    now = {t: f"photo1_image{t:04d}" for t in (3, 5)}  # the project's tasks: id -> sketch
    kept = carried_over(snapshot(3, 4, 5), tasks=now, problems=problems)
    assert kept["task_id"].tolist() == ["4"] and kept["label"].tolist() == ["without_earring"]
    assert problems == ["task 4 is gone from Label Studio; its 1 decision(s) are kept from the "
                        "previous snapshot"]
    assert carried_over(snapshot(3), now, []).empty
    assert carried_over(snapshot(), now, []).empty  # the first pull: no snapshot yet


@pytest.mark.bad_input(stage="pull", kind="relabel")
def test_a_deleted_tasks_id_given_to_a_new_task_still_keeps_its_decisions():
    # Label Studio on sqlite: task 5, the newest, deleted; the next task imported is task 5 too
    problems: list[str] = []
    now = {3: "photo1_image0003", 5: "photo2_image0042"}
    kept = carried_over(snapshot(3, 5), tasks=now, problems=problems)
    assert kept["task_id"].tolist() == ["5"] and kept["sample_id"].tolist() == ["photo1_image0005"]
    assert problems == ["task 5 is gone from Label Studio; its 1 decision(s) are kept from the "
                        "previous snapshot"]


@pytest.mark.bad_input(stage="pull", kind="relabel")
def test_a_gold_task_nobody_answered_is_listed():
    answered = {"id": 1, "meta": {"gold": {"earring": "with_earring"}},
                "annotations": [{"was_cancelled": False}]}
    skipped = {"id": 2, "meta": {"gold": {"smile": "with_smile"}},
               "annotations": [{"was_cancelled": True}]}
    silent = {"id": 3, "meta": {"gold": {"hair": "with_hair"}}, "annotations": []}
    plain = {"id": 4, "meta": {}, "annotations": []}
    assert gold_tasks([answered, skipped, silent, plain]) == (3, [2, 3])


@pytest.fixture
def pulled(tmp_path):
    """The pull section pointed at tmp, with a snapshot and the report of the pull that wrote
    it."""
    params = load(REPO / "params.yaml", pull=PullParams)["pull"].model_copy(update={
        "snapshot": tmp_path / "snapshot.csv", "report": tmp_path / "pull.json"})
    text = snapshot(3).to_csv(index=False)
    params.snapshot.write_text(text)
    params.report.write_text(json.dumps({
        "snapshot_sha256": hashlib.sha256(text.encode()).hexdigest(),
        "previous_snapshot_sha256": None}))
    return params


@pytest.mark.bad_input(stage="pull", kind="relabel")
def test_a_snapshot_edited_by_hand_stops_pull(pulled):
    check_not_edited(pulled)  # as the last pull wrote it
    pulled.snapshot.write_text(pulled.snapshot.read_text().replace("without_earring",
                                                                   "with_earring"))
    with pytest.raises(EsgarError, match="was changed since the last pull wrote it") as err:
        check_not_edited(pulled)
    assert "git checkout" in str(err.value) and str(pulled.snapshot) in str(err.value)


def test_a_pull_stopped_between_its_report_and_its_snapshot_is_no_edit(pulled):
    """pull writes its report before the snapshot: the snapshot of the pull before still
    passes."""
    record = json.loads(pulled.report.read_text())
    record["previous_snapshot_sha256"] = record["snapshot_sha256"]
    record["snapshot_sha256"] = "0" * 64  # the new snapshot, never written
    pulled.report.write_text(json.dumps(record))
    check_not_edited(pulled)
