"""DVC stage `pull` (always run, at the top of the graph): the annotators' answers from Label
Studio into the relabel snapshot that `prepare` applies.

Exports the project titled `labelstudio.project` and rewrites `pull.snapshot` from its answers
(`esgar.active.annotations`: one row per sketch x attribute decision, majority of several
annotators, ties and unsure answers recorded, never applied; answers that are no class
reported and left out). Sorted, so the same answers give the same bytes and DVC reruns the
stages below only when answers changed. With no server configured (`LABEL_STUDIO_URL` unset),
or no such project yet, the snapshot stays as it is and the stage says so; an unreachable server
or a refused token stop it with the snapshot untouched.
"""

from __future__ import annotations

import logging

from esgar.active.annotations import snapshot_rows
from esgar.integrations import labelstudio as ls
from esgar.io import write_with
from pipeline.common import run_stage, stage_args
from pipeline.params.base import load
from pipeline.params.labelstudio import LabelStudioParams, PullParams

log = logging.getLogger("pipeline.pull")


def main() -> None:
    args = stage_args(__doc__)
    params = load(args.params, labelstudio=LabelStudioParams, pull=PullParams)
    lp, pp = params["labelstudio"], params["pull"]
    server = ls.Server.from_env()
    if server is None:
        log.warning("no Label Studio configured (LABEL_STUDIO_URL unset): %s stays as it is",
                    pp.snapshot)
        return
    client = ls.connect(server)
    project = ls.find_project(client, lp.project)
    if project is None:
        log.warning("no project %r at %s yet: %s stays as it is", lp.project, server.url,
                    pp.snapshot)
        return
    snapshot, warnings = snapshot_rows(ls.export_annotations(client, project))
    for w in warnings:
        log.warning("%s", w)
    write_with(pp.snapshot, lambda tmp: snapshot.to_csv(tmp, index=False))
    counts = snapshot["status"].value_counts().to_dict()
    log.info("%d decisions from project %r (%s) -> %s", len(snapshot), lp.project,
             ", ".join(f"{n} {s}" for s, n in sorted(counts.items())) or "none", pp.snapshot)


if __name__ == "__main__":
    run_stage(main)
