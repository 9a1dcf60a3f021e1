"""Deploy `retrain/<name>`, `relabel_round/<name>` and `loop/<name>` to a Prefect work pool, so
that a worker on whichever machine polls the pool runs them (e.g. the GPU box), triggered from
any machine that reaches the server. `flows.serve` is the one-machine alternative.

    python -m flows.deploy                 # in the checkout the worker will run the flows from
    scripts/prefect.sh worker              # on that machine: polls the pool, a process per run
    prefect deployment run 'retrain/fs2k'  # from anywhere that reaches PREFECT_API_URL

The pool is `flows.work_pool` (a `process` pool, created when missing); `--pool` overrides it.
Each deployment runs the flow in this checkout (its working directory), with the parameters
`repo` (this checkout) and `params`, one flow run at a time.

A worker's machine can die with a run on it (killed, rebooted, out of memory): the run would
stay Running and, the deployments allowing one run at a time, hold back every later one. Flow
runs send a heartbeat every PREFECT_FLOWS_HEARTBEAT_FREQUENCY seconds (Prefect's, default 180);
deploying also makes the server's automation `CRASH_AUTOMATION` (Prefect's documented recipe for
zombie runs), which marks a run Crashed when three heartbeats in a row are missing.
"""

from __future__ import annotations

import argparse
from datetime import timedelta
from pathlib import Path

from prefect import deploy
from prefect.automations import Automation
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import WorkPoolCreate
from prefect.client.schemas.objects import StateType
from prefect.events.actions import ChangeFlowRunState
from prefect.events.schemas.automations import EventTrigger, Posture
from prefect.events.schemas.events import ResourceSpecification
from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound
from prefect.settings import get_current_settings
from prefect.workers.process import ProcessWorker

from esgar.errors import EsgarError
from esgar.log import configure
from flows.cli import check_prefect, run_cli
from flows.serve import specs
from flows.settings import load_settings
from flows.stages import in_repo

__all__ = ["CRASH_AUTOMATION", "POOL_TYPE", "PoolMismatch", "deploy_to_pool",
           "ensure_crash_automation", "ensure_pool", "pool_command", "pool_name"]

POOL_TYPE = "process"
CRASH_AUTOMATION = "esgar: crash flow runs without heartbeats"
MISSED_HEARTBEATS = 3


class PoolMismatch(EsgarError, RuntimeError):
    """A work pool of that name exists with workers of another type."""


def pool_name(repo: str | Path = ".", params: str = "params.yaml") -> str:
    """params.yaml's `flows.work_pool`."""
    with in_repo(repo):
        return load_settings(params).flows.work_pool


def ensure_pool(name: str) -> bool:
    """The `process` work pool `name` on PREFECT_API_URL's server, created when missing; True
    when this call created it. PoolMismatch when a pool of that name has another type."""
    with get_client(sync_client=True) as client:
        try:
            pool = client.read_work_pool(name)
        except ObjectNotFound:
            try:
                client.create_work_pool(WorkPoolCreate(
                    name=name, type=POOL_TYPE,
                    base_job_template=ProcessWorker.get_default_base_job_template(),
                    description="ESGAR's flows, each run in a process of a worker's checkout"))
                return True
            except ObjectAlreadyExists:  # another process created it meanwhile
                pool = client.read_work_pool(name)
    if pool.type != POOL_TYPE:
        raise PoolMismatch(f"work pool {name!r} is of type {pool.type!r}, not {POOL_TYPE!r}: "
                           "name another one in params.yaml's flows.work_pool (or --pool)")
    return False


def ensure_crash_automation(missed: int = MISSED_HEARTBEATS) -> timedelta:
    """The server's automation marking a flow run Crashed once `missed` heartbeats in a row
    (PREFECT_FLOWS_HEARTBEAT_FREQUENCY here) have not come, created or brought up to date;
    returns how long it waits after a run's last heartbeat."""
    within = timedelta(seconds=missed * get_current_settings().flows.heartbeat_frequency)
    wanted = Automation(
        name=CRASH_AUTOMATION,
        description="A run whose process died (its worker's machine killed or rebooted) would "
                    "stay Running and hold its deployment's one-run-at-a-time slot",
        trigger=EventTrigger(
            after={"prefect.flow-run.heartbeat"},
            expect={"prefect.flow-run.heartbeat", "prefect.flow-run.Completed",
                    "prefect.flow-run.Failed", "prefect.flow-run.Cancelled",
                    "prefect.flow-run.Crashed"},
            match=ResourceSpecification({"prefect.resource.id": ["prefect.flow-run.*"]}),
            for_each={"prefect.resource.id"}, posture=Posture.Proactive, threshold=1,
            within=within),
        actions=[ChangeFlowRunState(state=StateType.CRASHED,
                                    message=f"no heartbeat for {within.total_seconds():g} s: "
                                            "its process died")])
    try:
        found = Automation.read(name=CRASH_AUTOMATION)
    except ValueError:  # Prefect's "no automation with that name"
        wanted.create()
        return within
    if found.trigger != wanted.trigger or found.actions != wanted.actions:
        wanted.id = found.id
        wanted.update()
    return within


def deploy_to_pool(repo: str | Path = ".", params: str = "params.yaml",
                   pool: str | None = None) -> list[str]:
    """The three deployments on the work pool (`flows.work_pool` unless `pool`), their flows
    read from `repo` by the worker; returns their full names."""
    pool = pool or pool_name(repo, params)
    name, found = specs(repo, params)
    ensure_pool(pool)
    ensure_crash_automation()
    root = str(Path(repo).resolve())
    made = [s.flow.from_source(source=root, entrypoint=s.entrypoint).to_deployment(
        name, **s.options) for s in found]
    deploy(*made, work_pool_name=pool, build=False, push=False, print_next_steps_message=False,
           ignore_warnings=True)
    return [f"{s.flow.name}/{name}" for s in found]


def pool_command(description: str, parser_hook=None) -> tuple[argparse.Namespace, str]:
    """The command line of deploy and worker (`--repo`, `--params`, `--pool`, and what
    `parser_hook(parser)` adds), then the settings and the server checked: (arguments, pool)."""
    parser = argparse.ArgumentParser(description=description,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repo", default=".", help="the repository (default: here)")
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--pool", help="the work pool (default: params.yaml's flows.work_pool)")
    if parser_hook is not None:
        parser_hook(parser)
    args = parser.parse_args()
    configure()
    pool = args.pool or pool_name(args.repo, args.params)  # the settings first, then the server
    check_prefect()
    return args, pool


def main() -> None:
    args, pool = pool_command(__doc__)
    names = deploy_to_pool(args.repo, args.params, pool)
    print(f"deployed {', '.join(names)} to work pool {pool!r}; run them with a worker: "
          "scripts/prefect.sh worker")


if __name__ == "__main__":
    run_cli(main)
