"""Tasks from the selection, and the snapshot from the annotators' answers (no server: the
exported shape of `esgar.integrations.labelstudio.export_annotations`)."""

from __future__ import annotations

import pandas as pd
import pytest

from esgar import schema
from esgar.active.annotations import build_tasks, prediction_result, snapshot_rows
from esgar.active.relabels import apply_relabels, read_snapshot

LABELS = {a.name: a.classes[0] for a in schema.ATTRIBUTES}
S = "photo1_image0001"


def manifest() -> pd.DataFrame:
    return pd.DataFrame([
        {"task": 0, "sample_id": S, "attribute": "hair", "score": 0.4},
        {"task": 0, "sample_id": S, "attribute": "earring", "score": 0.9},
        {"task": 1, "sample_id": "photo1_image0002", "attribute": "smile", "score": -0.1},
    ])


def test_tasks_prefill_the_model_only_where_in_question():
    guesses = {sid: {**LABELS, "hair": "without_hair", "earring": "without_earring",
                     "gender": "female", "smile": "without_smile"}
               for sid in (S, "photo1_image0002")}
    labels = {sid: dict(LABELS) for sid in guesses}
    tasks = build_tasks(manifest(), guesses, labels,
                        lambda sid: {"sketch": f"/s/{sid}", "photo": "/p", "overlay": "/o"}, "v1")
    assert [t["data"]["sample_id"] for t in tasks] == [S, "photo1_image0002"]
    first = tasks[0]
    assert first["data"]["questions"] == ["hair", "earring"]  # schema order
    assert "earring (labelled with_earring, model says without_earring)" in \
        first["data"]["in_question"]
    prediction = first["predictions"][0]
    assert prediction["model_version"] == "v1" and prediction["score"] == 0.9
    answers = {r["from_name"]: r["value"]["choices"][0] for r in prediction["result"]}
    assert answers["hair"] == "without_hair" and answers["earring"] == "without_earring"
    assert answers["gender"] == "male"  # not in question: the current label, not the guess


def task(annotations, questions=("earring",), task_id=7):
    return {"id": task_id, "data": {"sample_id": S, "questions": list(questions),
                                    "labels": dict(LABELS)},
            "annotations": annotations}


def answer(who, when, cancelled=False, unsure=False, **answers):
    result = prediction_result({**LABELS, **answers})
    if unsure:
        result.append({"from_name": "unsure", "to_name": "sketch", "type": "choices",
                       "value": {"choices": ["unsure"]}})
    return {"id": hash((who, when)) % 1000, "result": result, "completed_by": who,
            "created_at": when, "updated_at": when, "was_cancelled": cancelled}


def test_one_answer_gives_decisions_for_the_questions_and_the_changes():
    snap, warnings = snapshot_rows([task([answer("a@x", "2026-11-25T10:00:00Z",
                                                 earring="without_earring",
                                                 gender="female")])])
    assert warnings == []
    rows = snap.set_index("attribute")
    assert set(rows.index) == {"gender", "earring"}
    assert rows.loc["earring", "label"] == "without_earring"
    assert rows.loc["earring", "previous"] == "with_earring"
    assert rows.loc["gender", "label"] == "female"  # not asked, changed on purpose
    assert set(rows["status"]) == {"decided"} and set(rows["task_id"]) == {"7"}
    assert rows.loc["earring", "annotated_at"] == "2026-11-25T10:00:00.000000Z"


def test_a_confirmation_is_recorded_so_it_is_not_asked_again():
    snap, _ = snapshot_rows([task([answer("a@x", "2026-11-25T10:00:00Z")])])
    assert snap[["attribute", "label", "status"]].values.tolist() == [
        ["earring", "with_earring", "decided"]]


def test_majority_ties_unsure_and_skips():
    votes = [answer("a@x", "2026-11-25T10:00:00Z", earring="without_earring"),
             answer("b@x", "2026-11-25T11:00:00Z", earring="without_earring"),
             answer("c@x", "2026-11-25T12:00:00Z"),
             answer("d@x", "2026-11-25T13:00:00Z", cancelled=True, earring="with_earring")]
    rows = snapshot_rows([task(votes)])[0].set_index("attribute")
    assert rows.loc["earring", "label"] == "without_earring"  # 2 against 1, the skip ignored
    assert rows.loc["earring", "annotator"] == "a@x+b@x+c@x"
    assert rows.loc["earring", "annotated_at"] == "2026-11-25T12:00:00.000000Z"

    tie = [answer("a@x", "2026-11-25T10:00:00Z", earring="without_earring"),
           answer("b@x", "2026-11-25T11:00:00Z")]
    rows = snapshot_rows([task(tie)])[0]
    assert rows[["label", "status"]].values.tolist() == [["", "tie"]]

    unsure = [answer("a@x", "2026-11-25T10:00:00Z", unsure=True, earring="without_earring")]
    rows = snapshot_rows([task(unsure)])[0]
    assert rows[["attribute", "status"]].values.tolist() == [["earring", "unsure"]]


@pytest.mark.bad_input(stage="pull", kind="relabel")
def test_an_answer_that_is_no_class_is_reported_and_left_out():
    snap, warnings = snapshot_rows([task([answer("a@x", "2026-11-25T10:00:00Z",
                                                 earring="maybe")])])
    assert snap.empty
    assert warnings == ["task 7 (photo1_image0001): answer 'maybe' is no class of earring "
                        "(with_earring, without_earring); left out"]


def test_same_answers_same_bytes_and_the_snapshot_applies(tmp_path):
    tasks = [task([answer("a@x", "2026-11-25T10:00:00Z", earring="without_earring")]),
             task([answer("b@x", "2026-11-26T10:00:00Z")], questions=("hair",), task_id=9)]
    first, _ = snapshot_rows(tasks)
    second, _ = snapshot_rows(list(reversed(tasks)))
    assert first.to_csv(index=False) == second.to_csv(index=False)
    path = tmp_path / "snapshot.csv"
    first.to_csv(path, index=False)
    table = pd.DataFrame({"sample_id": [S], **{f"{a}_orig": [0] for a in LABELS}})
    out, warnings = apply_relabels(table, read_snapshot(path))
    assert warnings == []
    assert out.loc[0, "earring"] == 1 and out.loc[0, "earring_source"] == "relabel"
    assert out.loc[0, "hair"] == 0 and out.loc[0, "hair_source"] == "relabel"  # confirmed
