"""Prefect flow `retrain`: pull the annotators' answers, `dvc repro` what changed, register the
evaluated model and let the policy decide whether it becomes the champion.

    python -m flows.retrain [--repo .] [--params params.yaml]     # one run, here and now
    prefect deployment run 'retrain/fs2k'                         # through `python -m flows.serve`
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact

from esgar.data.table import load_table
from esgar.device import resolve_device, resolve_precision
from esgar.integrations import tracking
from esgar.models.factory import MODEL_FILE
from esgar.promotion import leaderboard
from esgar.promotion.decide import describe, register_and_decide
from flows.cli import flow_command, preflight, run_cli
from flows.report import labelstudio_link, mlflow_model_link, mlflow_run_link
from flows.settings import load_settings
from flows.stages import StageFailed, dvc_repro, in_repo, read_json

__all__ = ["check_services", "register_model", "retrain"]


check_services = task(preflight, name="check_services", log_prints=True)


@task(retries=1, retry_delay_seconds=10, log_prints=True)
def register_model(repo: str, params: str) -> dict[str, Any]:
    """The model the train stage wrote, registered and decided (`esgar.promotion.decide`)."""
    logger = get_run_logger()
    with in_repo(repo):
        s = load_settings(params)
        info = read_json(Path(s.train.out) / MODEL_FILE)
        run_id = info.get("mlflow_run_id")
        if not run_id:
            raise StageFailed(f"{Path(s.train.out) / MODEL_FILE} names no MLflow run: run the "
                              "train stage")
        metrics = read_json(s.registry.metrics)
        device = resolve_device(s.train.device)
        tags = {"git_commit": tracking.git_commit(), "head": s.model.head,
                "backbone": s.model.backbone, "img_size": str(s.model.img_size),
                **tracking.data_version([str(s.model.table), str(s.model.masks)])}
        outcome = register_and_decide(
            s.registry.model_name, run_id, load_table(s.model.table), s.model.masks,
            s.registry.policy.policy(), metrics, tags, batch_size=s.train.batch_size,
            device=device, precision=resolve_precision(s.train.precision, device))
        summary = describe(outcome)
        refs = [f"{outcome.name}/{outcome.version}"]
        if outcome.champion_before and outcome.champion_before != outcome.version:
            refs.append(f"{outcome.name}/{outcome.champion_before}")
        table = leaderboard.markdown(leaderboard.gather(refs, "val"))
        summary["markdown"] = decision_markdown(summary, table, run_id,
                                                s.labelstudio.project)
    logger.info("%s v%s: %s - %s", summary["model"], summary["version"], summary["decision"],
                summary["reason"] or "already decided")
    return summary


def decision_markdown(summary: dict[str, Any], table: str, run_id: str, project: str) -> str:
    version = mlflow_model_link(summary["model"], summary["version"])
    if summary["decision"] == "none":
        head = (f"**{version}** was registered and decided before (the pipeline had nothing "
                "new); nothing changed.")
    else:
        head = f"**{version}: {summary['decision']}.** {summary['reason']}"
    return "\n".join([
        "# retrain", "", head, "",
        f"- champion before: {summary['champion_before'] or 'none'}, after: "
        f"{summary['champion_after'] or 'none'}",
        f"- trained in {mlflow_run_link(run_id)}",
        f"- annotations: {labelstudio_link(project)}", "",
        "## Validation split (the test split never decides)", "", table])


@flow(name="retrain", log_prints=True)
def retrain(repo: str = ".", params: str = "params.yaml") -> dict[str, Any]:
    """pull -> dvc repro (what changed) -> register -> compare with the champion -> promote or
    alias challenger. Returns the decision (model, version, decision, reason, champions)."""
    logger = get_run_logger()
    check_services(repo, params)
    with in_repo(repo):
        target = load_settings(params).flows.target
    pulled = dvc_repro(["pull"], repo)
    ran = dvc_repro([target], repo)
    summary = register_model(repo, params)
    summary["stages_run"] = sorted(set(pulled) | set(ran))
    create_markdown_artifact(key="retrain-decision", markdown=summary.pop("markdown"),
                             description=f"{summary['model']} v{summary['version']}: "
                                         f"{summary['decision']}")
    logger.info("retrain: stages run %s; %s", ", ".join(summary["stages_run"]) or "none",
                summary["reason"] or "nothing new to decide")
    return summary


main = flow_command(retrain, __doc__)


if __name__ == "__main__":
    run_cli(main)
