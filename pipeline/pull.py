"""DVC stage `pull` (always run, at the top of the graph): the annotators' answers from Label
Studio, turned into the relabel snapshot that `prepare` applies.

Exports the project titled `labelstudio.project`, reads every answer with its provenance
(`esgar.active.answers`: chosen or left as pre-filled, who, how long), measures each annotator
on the gold questions and against the others (`esgar.active.consensus.annotator_quality`), and
decides each sketch x attribute by `pull.consensus` (Dawid-Skene by default), leaving out the
annotators flagged for a gold accuracy under `pull.min_gold_accuracy`. A decision under
`pull.min_confidence` is recorded, not applied; an answer left as pre-filled is never a
decision. Outputs, each sorted so the same answers give the same bytes and DVC reruns the
stages below only when answers changed: `pull.snapshot` (one row per decision), `pull.answers`
(every answer), `pull.report` (per annotator: answers, gold accuracy, agreement, fast
submissions, flagged; the problems found), and an MLflow run when the answers changed.

Nothing is silently lost: a snapshot edited by hand since the last pull stops the stage (its
edits would be overwritten); the decisions of a task deleted in Label Studio are kept from the
previous snapshot and reported. With no server configured (`LABEL_STUDIO_URL` unset), or no such
project yet, every output stays as it is and the stage says so; an unreachable server or a
refused token stop it with the outputs untouched.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from esgar.active.answers import read_answers
from esgar.active.consensus import DECISION_COLUMNS, annotator_quality, decide
from esgar.active.relabels import read_snapshot
from esgar.errors import EsgarError
from esgar.integrations import labelstudio as ls
from esgar.integrations import tracking
from esgar.io import sha256sum, spreadsheet_safe, write_json, write_text
from esgar.log import summarize
from pipeline.common import run_stage, stage_args
from pipeline.params.base import load
from pipeline.params.labelstudio import LabelStudioParams, PullParams

log = logging.getLogger("pipeline.pull")


def check_not_edited(pp: PullParams, recorded: dict[str, Any] | None = None) -> None:
    """The snapshot is as the last pull wrote it (its sha256 in `recorded`, the last report,
    read when not given; or the one before, should that pull have stopped between writing the
    report and the snapshot), else stop: pull rewrites it from Label Studio and hand edits
    would be lost."""
    recorded = _read_json(pp.report) if recorded is None else recorded
    known = {recorded.get("snapshot_sha256"), recorded.get("previous_snapshot_sha256")} - {None}
    if known and pp.snapshot.is_file() and sha256sum(pp.snapshot) not in known:
        raise EsgarError(f"{pp.snapshot} was changed since the last pull wrote it (its sha256 "
                         f"is not the one {pp.report} records): pull rewrites it from Label "
                         "Studio, so those edits would be lost; make them in Label Studio, or "
                         f"restore the file (git checkout {pp.snapshot})")


def carried_over(previous: pd.DataFrame, tasks: Mapping[int, str | None], problems: list[str]
                 ) -> pd.DataFrame:
    """The previous snapshot's rows whose task is gone from Label Studio, kept (and said).

    tasks: {task id: its sketch's sample_id} of the project now. A task whose id now holds
    another sketch is gone too: Label Studio on sqlite gives the highest id again to the next
    task imported once the task that held it is deleted."""
    ids = pd.to_numeric(previous["task_id"], errors="coerce")
    gone = previous[np.array([pd.notna(i) and tasks.get(int(i)) != sample
                              for i, sample in zip(ids, previous["sample_id"], strict=True)],
                             dtype=bool)]
    for task_id, rows in gone.groupby("task_id", sort=True):
        problems.append(f"task {task_id} is gone from Label Studio; its {len(rows)} "
                        "decision(s) are kept from the previous snapshot")
    return gone.reindex(columns=DECISION_COLUMNS)


def metric_key(name: str) -> str:
    """A name MLflow accepts in a metric key (an email's @ and + are not)."""
    return re.sub(r"[^A-Za-z0-9_\-. /]", "_", name)


def gold_tasks(exported: list[dict[str, Any]]) -> tuple[int, list[int]]:
    """How many gold tasks the project has, and the ids of those nobody has answered yet."""
    gold = [t for t in exported if (t.get("meta") or {}).get("gold")]
    silent = [t["id"] for t in gold if not any(not a["was_cancelled"] for a in t["annotations"])]
    return len(gold), silent


def report(quality: pd.DataFrame, answers: pd.DataFrame, snapshot: pd.DataFrame,
           problems: list[str], pp: PullParams, gold: tuple[int, list[int]] = (0, [])
           ) -> dict[str, Any]:
    """The pull report: counts, the gold questions, each annotator's measures, the problems."""
    def clean(v: Any) -> Any:
        v = v.item() if hasattr(v, "item") else v
        return None if isinstance(v, float) and not np.isfinite(v) else v

    return {
        "consensus": pp.consensus, "min_confidence": pp.min_confidence,
        "answers": len(answers), "tasks_answered": int(answers["task_id"].nunique()),
        "left_prefilled": int((~answers["chosen"].astype(bool)).sum()),
        "gold": {"tasks": gold[0], "tasks_unanswered": gold[1],
                 "questions_answered": int((answers["gold"] != "").sum())},
        "decisions": {s: int(n) for s, n in snapshot["status"].value_counts().sort_index()
                      .items()},
        "annotators": {who: {k: clean(v) for k, v in row.items()}
                       for who, row in quality.iterrows()},
        "problems": problems,
    }


def log_quality(quality: pd.DataFrame) -> None:
    if quality.empty:
        return
    lines = [f"{'annotator':32} {'answers':>7} {'gold':>9} {'kappa':>6} {'fast':>5}  flagged"]
    for who, q in quality.iterrows():
        gold = (f"{q.gold_correct}/{q.gold_answers}" if q.gold_answers else "-")
        kappa = f"{q.agreement_kappa:.2f}" if np.isfinite(q.agreement_kappa) else "-"
        lines.append(f"{who[:32]:32} {q.answers:>7} {gold:>9} {kappa:>6} {q.fast:>5}  "
                     f"{'yes: ' + q.why if q.flagged else 'no'}")
    log.info("annotators:\n%s", "\n".join(lines))


def log_to_mlflow(quality: pd.DataFrame, summary: dict[str, Any], params: dict) -> None:
    metrics = {"answers": summary["answers"], "left_prefilled": summary["left_prefilled"],
               **{f"decisions/{s}": n for s, n in summary["decisions"].items()}}
    for who, q in quality.iterrows():
        key = metric_key(who)
        metrics.update({f"annotator/{key}/answers": q.answers,
                        f"annotator/{key}/flagged": float(q.flagged)})
        for name in ("gold_accuracy", "agreement_kappa"):
            if np.isfinite(q[name]):
                metrics[f"annotator/{key}/{name}"] = q[name]
    with tracking.run("pull", params, {"stage": "pull"}):
        tracking.log_metrics(metrics)


def main() -> None:
    args = stage_args(__doc__)
    params = load(args.params, labelstudio=LabelStudioParams, pull=PullParams)
    lp, pp = params["labelstudio"], params["pull"]
    server = ls.Server.from_env()
    if server is None:
        log.warning("no Label Studio configured (LABEL_STUDIO_URL unset): %s stays as it is",
                    pp.snapshot)
        return
    before = _read_json(pp.report)
    check_not_edited(pp, before)
    previous = read_snapshot(pp.snapshot)
    client = ls.connect(server)
    project = ls.find_project(client, lp.project)
    if project is None:
        log.warning("no project %r at %s yet: %s stays as it is", lp.project, server.url,
                    pp.snapshot)
        return
    tracking.check_tracking()
    exported, problems = ls.export_annotations(client, project, all_tasks=True)
    answers, unread = read_answers(exported)
    problems += unread
    quality = annotator_quality(answers, pp.min_gold_accuracy, pp.min_gold_answers,
                                pp.min_seconds)
    decided = decide(answers, pp.consensus, pp.min_confidence,
                     left_out=quality.index[quality["flagged"]],
                     label_accuracy=pp.label_accuracy)
    kept = carried_over(previous, {t["id"]: (t.get("data") or {}).get("sample_id")
                                   for t in exported}, problems)
    gold = gold_tasks(exported)
    if gold[1]:
        problems.append(f"{len(gold[1])} of {gold[0]} gold task(s) have no answer yet (tasks "
                        f"{', '.join(map(str, gold[1][:10]))}{', ...' if len(gold[1]) > 10 else ''}"
                        "): annotators are measured on the others")
    snapshot = (pd.concat([decided, kept], ignore_index=True) if len(kept) else decided)
    snapshot = snapshot.sort_values(["sample_id", "attribute", "annotated_at", "task_id"],
                                    kind="stable").reset_index(drop=True)
    for line in summarize(problems):  # every one in the report
        log.warning("%s", line)
    # annotator names are theirs to choose: nothing in them may run in a spreadsheet
    safe_answers = spreadsheet_safe(answers, ["annotator"])
    formulas = int((safe_answers["annotator"] != answers["annotator"]).sum())
    if formulas:
        log.warning("%d answer(s) from annotators whose names start like a spreadsheet formula: "
                    "written with a leading ' so that no spreadsheet runs them", formulas)
    snapshot_csv = spreadsheet_safe(snapshot, ["annotator"]).to_csv(index=False)
    answers_csv = safe_answers.to_csv(index=False)
    summary = report(quality, answers, snapshot, problems, pp, gold)
    summary["snapshot_sha256"] = _sha256(snapshot_csv)
    summary["answers_sha256"] = _sha256(answers_csv)
    summary["previous_snapshot_sha256"] = before.get("snapshot_sha256")
    write_text(pp.answers, answers_csv)
    write_json(pp.report, summary)  # before the snapshot: see check_not_edited
    write_text(pp.snapshot, snapshot_csv)
    log_quality(quality)
    if summary["answers_sha256"] != before.get("answers_sha256") and len(answers):
        log_to_mlflow(quality, summary, {"labelstudio": lp.model_dump(mode="json"),
                                         "pull": pp.model_dump(mode="json")})
    counts = ", ".join(f"{n} {s}" for s, n in summary["decisions"].items()) or "none"
    log.info("%d answers from project %r -> %d decisions (%s) -> %s", len(answers),
             lp.project, len(snapshot), counts, pp.snapshot)


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


if __name__ == "__main__":
    run_stage(main)
