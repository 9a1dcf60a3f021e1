"""Prefect flow `relabel_round`: cross-fit, select and push, then report what went to the
annotators.

    python -m flows.relabel [--repo .] [--params params.yaml]
    prefect deployment run 'relabel_round/fs2k'
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import pandas as pd
from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact

from flows.cli import flow_command, run_cli
from flows.report import labelstudio_link
from flows.retrain import check_services
from flows.stages import dvc_repro, in_repo, read_json
from pipeline.params.base import load
from pipeline.params.labelstudio import LabelStudioParams, PushParams
from pipeline.params.select import SelectParams

__all__ = ["relabel_round", "sent_to_annotators"]

PREFILLS = {"none": "empty (blind)", "current": "from the current label",
            "model": "from the model's guess", "": "as the push said"}


@task(log_prints=True)
def sent_to_annotators(repo: str, params: str) -> dict[str, Any]:
    """What the push stage sent: tasks, new / updated / unchanged, the questions per attribute
    and class, and where (a server's project, or the import file)."""
    with in_repo(repo):
        p = load(params, push=PushParams, select=SelectParams, labelstudio=LabelStudioParams)
        pushed = read_json(p["push"].out / "pushed.json")
        manifest = pd.read_parquet(p["push"].manifest)
        select = read_json(p["select"].metrics)
        where = labelstudio_link(p["labelstudio"].project) if pushed.get("server") else \
            f"import file {p['push'].out / 'tasks.json'} (no Label Studio configured)"
    questions = Counter(zip(manifest["attribute"], manifest["label"], strict=True))
    return {"tasks": int(pushed.get("tasks", 0)), "questions": len(manifest),
            "gold_tasks": int(pushed.get("gold_tasks", 0)),
            "prefill": pushed.get("prefill", ""),
            "annotators_per_task": int(pushed.get("annotators_per_task", 1)),
            "created": len(pushed.get("created", [])), "updated": len(pushed.get("updated", [])),
            "unchanged": int(pushed.get("unchanged", 0)), "where": where,
            "model_version": pushed.get("model_version", ""),
            "by_attribute_class": {f"{a}={c}": n for (a, c), n in sorted(questions.items())},
            "select": select}


def round_markdown(s: dict[str, Any]) -> str:
    lines = ["# relabel round", "",
             f"**{s['tasks']} tasks ({s['gold_tasks']} gold), {s['questions']} questions** "
             f"sent to {s['where']}: {s['created']} new, {s['updated']} updated, "
             f"{s['unchanged']} unchanged; questions in doubt start {PREFILLS[s['prefill']]}, "
             f"{s['annotators_per_task']} annotator(s) per task (model `{s['model_version']}`).",
             "",
             "| attribute = current label | questions |", "|---|---|"]
    lines += [f"| {k} | {n} |" for k, n in s["by_attribute_class"].items()]
    return "\n".join(lines) + "\n"


@flow(name="relabel_round", log_prints=True)
def relabel_round(repo: str = ".", params: str = "params.yaml") -> dict[str, Any]:
    """dvc repro push (crossfit and select first, and train where crossfit reads its model,
    where stale); returns what was sent."""
    logger = get_run_logger()
    check_services(repo, params)
    ran = dvc_repro(["push"], repo)
    summary = sent_to_annotators(repo, params)
    summary["stages_run"] = ran
    create_markdown_artifact(key="relabel-round", markdown=round_markdown(summary),
                             description=f"{summary['tasks']} tasks to the annotators")
    logger.info("relabel_round: %d tasks (%d questions) to %s", summary["tasks"],
                summary["questions"], summary["where"])
    return summary


main = flow_command(relabel_round, __doc__)


if __name__ == "__main__":
    run_cli(main)
