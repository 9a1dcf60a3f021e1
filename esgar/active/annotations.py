"""Between the selection and Label Studio: tasks to push, and the snapshot of what annotators
answered. Plain dicts and DataFrames in and out; `esgar.integrations.labelstudio` talks to the
server.

A task (`build_tasks`) shows one sketch, its photo and an overlay of the regions in question,
and asks all seven attributes: the attributes in question come pre-filled with the model's
guess, the others with the current label, so an annotator who checks only what is in question
confirms nothing by accident. Its data keeps the current labels (`labels`) and the questions
(`questions`), so `snapshot_rows` knows what each answer changed.

Answers become snapshot rows (`esgar.active.relabels`): one per task x attribute that was in
question or whose answer differs from the label at push time (a change the annotator made on
purpose). Several annotators of one task: the majority answer is `decided`; a tie is recorded
as `tie`; an annotation marked unsure or bad image makes its questions `unsure`. Neither is
applied. An answer that is no class of its attribute is reported and left out. Skipped
(cancelled) annotations count for nothing.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import pandas as pd

from esgar import schema
from esgar.active.relabels import SNAPSHOT_COLUMNS

__all__ = ["SNAPSHOT_FIELDS", "UNSURE_QUESTION", "build_tasks", "prediction_result",
           "snapshot_rows"]

SNAPSHOT_FIELDS = (*SNAPSHOT_COLUMNS, "status")
UNSURE_QUESTION = "unsure"
IMAGE = "sketch"  # the label config's Image every question points at


def prediction_result(answers: Mapping[str, str]) -> list[dict[str, Any]]:
    """Label Studio's result for single-choice answers {attribute: class name}."""
    return [{"from_name": a, "to_name": IMAGE, "type": "choices", "value": {"choices": [c]}}
            for a, c in answers.items()]


def _question_line(questions: Sequence[str], guesses: Mapping[str, str],
                   labels: Mapping[str, str]) -> str:
    parts = [f"{a} (labelled {labels[a]}, model says {guesses[a]})" for a in questions]
    return "In question: " + "; ".join(parts)


def build_tasks(manifest: pd.DataFrame, guesses: Mapping[str, Mapping[str, str]],
                labels: Mapping[str, Mapping[str, str]], urls: Callable[[str], dict[str, str]],
                model_version: str) -> list[dict[str, Any]]:
    """One task per sketch of the manifest (`select`'s: task, sample_id, attribute, score...),
    in the manifest's task order.

    guesses / labels: {sample_id: {attribute: class name}}, the model's and the current labels
    of all seven attributes; urls(sample_id) -> {"sketch", "photo", "overlay"} image URLs.
    Each task carries one prediction, the pre-filled answers, scored by its most suspect label.
    """
    tasks = []
    for _, rows in manifest.sort_values(["task", "attribute"]).groupby("task", sort=True):
        sid = rows["sample_id"].iloc[0]
        questions = [a for a in schema.ATTRIBUTE_NAMES if a in set(rows["attribute"])]
        answers = {a: guesses[sid][a] if a in questions else labels[sid][a]
                   for a in schema.ATTRIBUTE_NAMES}
        tasks.append({
            "data": {"sample_id": sid, **urls(sid), "questions": questions,
                     "labels": dict(labels[sid]), "model_version": model_version,
                     "in_question": _question_line(questions, guesses[sid], labels[sid])},
            "predictions": [{"model_version": model_version,
                             "score": float(rows["score"].max()),
                             "result": prediction_result(answers)}],
        })
    return tasks


def _answers(result: Sequence[Mapping[str, Any]]) -> tuple[dict[str, str], bool]:
    """({attribute: chosen class name}, marked unsure or bad image) of one annotation."""
    answers, unsure = {}, False
    for region in result:
        choices = (region.get("value") or {}).get("choices") or []
        if region.get("from_name") == UNSURE_QUESTION:
            unsure = unsure or bool(choices)
        elif region.get("type") == "choices" and len(choices) == 1:
            answers[str(region["from_name"])] = str(choices[0])
    return answers, unsure


def _utc(times: Sequence[str]) -> str:
    latest = max(pd.Timestamp(t) for t in times)
    latest = latest.tz_localize("UTC") if latest.tzinfo is None else latest.tz_convert("UTC")
    return latest.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _task_rows(task: Mapping[str, Any], warnings: list[str]) -> list[dict[str, str]]:
    data = task.get("data") or {}
    sid, labels = data.get("sample_id"), data.get("labels") or {}
    questions = set(data.get("questions") or [])
    done = [a for a in task.get("annotations") or [] if not a.get("was_cancelled")]
    if not sid or not done:
        return []
    votes: dict[str, list[tuple[str, str, str]]] = {}  # attribute -> (answer, who, when)
    unsure_by: list[tuple[str, str]] = []
    for ann in done:
        answers, unsure = _answers(ann.get("result") or [])
        when = ann.get("updated_at") or ann.get("created_at")
        if unsure:
            unsure_by.append((ann.get("completed_by", "?"), when))
            continue
        for attr, answer in answers.items():
            if attr not in schema.BY_NAME:
                continue
            if answer not in schema.BY_NAME[attr].classes:
                warnings.append(f"task {task['id']} ({sid}): answer {answer!r} is no class of "
                                f"{attr} ({', '.join(schema.BY_NAME[attr].classes)}); left out")
                continue
            if attr in questions or answer != labels.get(attr):
                votes.setdefault(attr, []).append((answer, ann.get("completed_by", "?"), when))
    rows = []
    for attr in schema.ATTRIBUTE_NAMES:
        got = votes.get(attr, [])
        unsure_here = unsure_by if attr in questions else []
        if not got and not unsure_here:
            continue
        who = "+".join(sorted({w for _, w, _ in got} | {w for w, _ in unsure_here}))
        when = _utc([t for *_, t in got] + [t for _, t in unsure_here])
        count = Counter(a for a, _, _ in got).most_common()
        if not got:
            label, status = "", "unsure"
        elif len(count) > 1 and count[0][1] == count[1][1]:
            label, status = "", "tie"
        else:
            label, status = count[0][0], "decided"
        rows.append({"sample_id": sid, "attribute": attr, "label": label,
                     "previous": labels.get(attr, ""), "annotator": who, "annotated_at": when,
                     "task_id": str(task["id"]), "status": status})
    return rows


def snapshot_rows(tasks: Sequence[Mapping[str, Any]]) -> tuple[pd.DataFrame, list[str]]:
    """The snapshot (columns `SNAPSHOT_FIELDS`, sorted: the same answers give the same bytes)
    from exported tasks (`export_annotations`' shape), and warnings for answers left out."""
    warnings: list[str] = []
    rows = [r for task in tasks for r in _task_rows(task, warnings)]
    frame = pd.DataFrame(rows, columns=list(SNAPSHOT_FIELDS))
    frame = frame.sort_values(["sample_id", "attribute", "annotated_at", "task_id"],
                              kind="stable").reset_index(drop=True)
    return frame, warnings
