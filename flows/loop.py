"""Prefect flow `loop`: one turn of the whole loop, `retrain` then `relabel_round`.

    python -m flows.loop [--repo .] [--params params.yaml]
    prefect deployment run 'loop/fs2k'
"""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger

from flows.cli import flow_command, run_cli
from flows.relabel import relabel_round
from flows.retrain import retrain

__all__ = ["loop"]


@flow(name="loop", log_prints=True)
def loop(repo: str = ".", params: str = "params.yaml") -> dict[str, Any]:
    """Retrain on the answers so far (and decide), then send the next round to the
    annotators, chosen with the current labels."""
    logger = get_run_logger()
    decided = retrain(repo, params)
    sent = relabel_round(repo, params)
    logger.info("loop: %s v%s %s; %d tasks to the annotators", decided["model"],
                decided["version"], decided["decision"], sent["tasks"])
    return {"retrain": decided, "relabel_round": sent}


main = flow_command(loop, __doc__)


if __name__ == "__main__":
    run_cli(main)
