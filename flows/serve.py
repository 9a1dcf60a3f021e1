"""Serve the deployments on a Prefect server: `retrain/<name>` (on params.yaml's schedule and on
demand), `relabel_round/<name>` and `loop/<name>` (on demand); `<name>` is `flows.deployment`.

    scripts/prefect.sh start && scripts/prefect.sh serve     # or: python -m flows.serve
    prefect deployment run 'retrain/fs2k'                    # from another shell
    prefect deployment run 'retrain/fs2k' -p params=params.yaml

Parameters of every deployment: `repo` (the repository, default: where this was started) and
`params` (its params file, default params.yaml). Each deployment runs one flow run at a time.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prefect import Flow, serve
from prefect.schedules import Cron

from esgar.log import configure
from flows.cli import check_prefect, run_cli
from flows.loop import loop
from flows.relabel import relabel_round
from flows.retrain import retrain
from flows.settings import load_settings
from flows.stages import in_repo

__all__ = ["Spec", "deployments", "specs"]


@dataclass(frozen=True)
class Spec:
    """One deployment: its flow, the flow's entrypoint in the repository (for a work pool) and
    the keyword arguments of `to_deployment` / `deploy`."""

    flow: Flow
    entrypoint: str
    options: dict[str, Any]


def specs(repo: str | Path = ".", params: str = "params.yaml") -> tuple[str, list[Spec]]:
    """The deployments' name (`flows.deployment`) and the three flows with their options."""
    with in_repo(repo) as root:
        s = load_settings(params).flows
    parameters = {"repo": str(root), "params": params}
    schedules = [Cron(s.retrain_cron, timezone=s.timezone)] if s.retrain_cron else []
    common = {"parameters": parameters, "concurrency_limit": 1, "tags": ["esgar"]}
    return s.deployment, [
        Spec(retrain, "flows/retrain.py:retrain", {
            **common, "schedules": schedules,
            "description": "pull -> dvc repro -> register -> promote by policy"}),
        Spec(relabel_round, "flows/relabel.py:relabel_round", {
            **common, "description": "crossfit -> select -> push to Label Studio"}),
        Spec(loop, "flows/loop.py:loop", {
            **common, "description": "retrain, then relabel_round"}),
    ]


def deployments(repo: str | Path = ".", params: str = "params.yaml") -> list:
    """The three deployments, for `prefect.serve`."""
    name, found = specs(repo, params)
    return [s.flow.to_deployment(name, **s.options) for s in found]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repo", default=".", help="the repository (default: here)")
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args()
    configure(handler=False)  # Prefect's handler prints them
    served = deployments(args.repo, args.params)  # the settings first, then the server
    check_prefect()
    serve(*served)


if __name__ == "__main__":
    run_cli(main)
