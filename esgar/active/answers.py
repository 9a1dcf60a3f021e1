"""The annotators' answers, read back from Label Studio's export with their provenance.

    answers, problems = read_answers(tasks)     # tasks: export_annotations' shape

One row per annotation x attribute that counts: every attribute in question, and any other
attribute the annotator changed (`ANSWER_COLUMNS`). Provenance per row:

- `origin`: what Label Studio marked the result item with: `manual` (chosen on a question that
  started empty), `prediction-changed` (a pre-filled answer the annotator changed), `prediction`
  (a pre-filled answer left as it was); empty where the item carries no mark (an API client).
- `chosen`: the annotator chose this answer. False for an answer left as pre-filled (origin
  `prediction`, or no mark and equal to what the question started from): such an answer is never
  a decision.
- `annotator` (the account's email; "" for an account removed since), `seconds` (the
  annotation's lead time), `annotated_at` (UTC, ISO 8601), `gold` (the true class of a gold
  question, else ""), `unsure` (the annotation was marked unsure or bad image: its answers in
  question are no votes).

Problems (one line each, for the log and the pull report): an answer that is no class of its
attribute (left out), an annotation by a removed account (kept, but no vote: its accuracy
cannot be measured), one annotator answering one task twice (the later answer counts).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from esgar import schema

__all__ = ["ANSWER_COLUMNS", "REMOVED", "UNSURE_QUESTION", "read_answers"]

ANSWER_COLUMNS = ["task_id", "annotation_id", "sample_id", "attribute", "annotator", "answer",
                  "previous", "in_question", "gold", "origin", "chosen", "unsure", "seconds",
                  "annotated_at"]
UNSURE_QUESTION = "unsure"
REMOVED = ""  # the annotator of an annotation whose account was removed
PREFILLED = "prediction"  # Label Studio's origin of a pre-filled item left as it was
SAMPLE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}")  # what the sample table's ids are


def _utc(value: Any) -> str:
    t = pd.Timestamp(value)
    t = t.tz_localize("UTC") if t.tzinfo is None else t.tz_convert("UTC")
    return t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _items(result: Sequence[Mapping[str, Any]]) -> tuple[dict[str, tuple[str, str]], bool]:
    """({attribute: (chosen class, origin)}, marked unsure or bad image) of one annotation."""
    items, unsure = {}, False
    for region in result:
        choices = (region.get("value") or {}).get("choices") or []
        if region.get("from_name") == UNSURE_QUESTION:
            unsure = unsure or bool(choices)
        elif region.get("type") == "choices" and len(choices) == 1:
            items[str(region["from_name"])] = (str(choices[0]), str(region.get("origin") or ""))
    return items, unsure


def _chosen(origin: str, answer: str, started: str | None) -> bool:
    if origin == PREFILLED:
        return False
    if origin:  # manual, prediction-changed
        return True
    return started is None or answer != started  # no mark: an API client


def _latest_per_annotator(task: Mapping[str, Any], problems: list[str]) -> list[Mapping]:
    """The task's submitted annotations, one per annotator (the latest; a removed account's
    each count alone)."""
    done = [a for a in task.get("annotations") or [] if not a.get("was_cancelled")]
    done.sort(key=lambda a: (str(a.get("updated_at") or a.get("created_at") or ""), a["id"]))
    latest: dict[str, Mapping] = {}
    for ann in done:
        who = ann.get("completed_by") or REMOVED
        if who == REMOVED:
            latest[f"{REMOVED}#{ann['id']}"] = ann
            continue
        if who in latest:
            problems.append(f"task {task['id']}: {who} answered it more than once; the later "
                            f"answer (annotation {ann['id']}) counts")
        latest[who] = ann
    return list(latest.values())


def read_answers(tasks: Sequence[Mapping[str, Any]]) -> tuple[pd.DataFrame, list[str]]:
    """The answers (`ANSWER_COLUMNS`, sorted: the same export gives the same rows) of exported
    tasks (`esgar.integrations.labelstudio.export_annotations`' shape, `meta` included), and
    the problems found."""
    problems: list[str] = []
    rows = []
    for task in tasks:
        data = task.get("data") or {}
        sid = data.get("sample_id")
        if not sid:
            continue
        if not isinstance(sid, str) or not SAMPLE_ID.fullmatch(sid):
            problems.append(f"task {task['id']}: sample id {str(sid)[:40]!r} is no sample id of "
                            "the pipeline (letters, digits, _ . -); its answers left out")
            continue
        labels = data.get("labels") or {}
        questions = set(data.get("questions") or [])
        started = data.get("prefilled")  # absent in tasks pushed before prefill policies
        gold = ((task.get("meta") or {}).get("gold") or {})
        for ann in _latest_per_annotator(task, problems):
            who = ann.get("completed_by") or REMOVED
            if who == REMOVED:
                problems.append(f"task {task['id']} ({sid}): annotation {ann['id']} is by an "
                                "account removed since; kept in the answers, no vote")
            items, unsure = _items(ann.get("result") or [])
            seconds = ann.get("lead_time")
            seconds = float(seconds) if isinstance(seconds, (int, float)) \
                and math.isfinite(seconds) else float("nan")
            when = _utc(ann.get("updated_at") or ann.get("created_at"))
            for attr, (answer, origin) in sorted(items.items()):
                spec = schema.BY_NAME.get(attr)
                if spec is None:
                    continue
                if answer not in spec.classes:
                    problems.append(f"task {task['id']} ({sid}): answer {answer!r} is no class "
                                    f"of {attr} ({', '.join(spec.classes)}); left out")
                    continue
                begun = started.get(attr) if isinstance(started, dict) else None
                in_question = attr in questions
                if not in_question and answer == labels.get(attr):
                    continue  # context left as it is: nothing to record
                rows.append({
                    "task_id": int(task["id"]), "annotation_id": int(ann["id"]),
                    "sample_id": sid, "attribute": attr, "annotator": who, "answer": answer,
                    "previous": labels.get(attr, ""), "in_question": in_question,
                    "gold": gold.get(attr, "") if in_question else "", "origin": origin,
                    "chosen": _chosen(origin, answer, begun),
                    "unsure": bool(unsure and in_question), "seconds": seconds,
                    "annotated_at": when})
    frame = pd.DataFrame(rows, columns=ANSWER_COLUMNS)
    frame = frame.sort_values(["sample_id", "attribute", "task_id", "annotation_id"],
                              kind="stable").reset_index(drop=True)
    return frame, problems
