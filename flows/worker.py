"""A Prefect worker for the flows' work pool (`flows.work_pool`, a `process` pool created when
missing): it polls the pool and runs each flow run of the deployments `flows.deploy` made in a
process of its own. `scripts/prefect.sh worker` runs it; arguments after `--` go to `prefect
worker start` (e.g. `-- --limit 1`).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from esgar.log import configure
from flows.cli import check_prefect, run_cli
from flows.deploy import POOL_TYPE, ensure_pool, pool_name


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repo", default=".", help="the repository (default: here)")
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--pool", help="the work pool (default: params.yaml's flows.work_pool)")
    parser.add_argument("worker_args", nargs="*", help="after --: for `prefect worker start`")
    args = parser.parse_args()
    configure()
    pool = args.pool or pool_name(args.repo, args.params)  # the settings first, then the server
    check_prefect()
    if ensure_pool(pool):
        print(f"created work pool {pool!r} ({POOL_TYPE})", file=sys.stderr)
    prefect = str(Path(sys.executable).with_name("prefect"))
    sys.stderr.flush()
    os.execv(prefect, [prefect, "worker", "start", "--pool", pool, "--type", POOL_TYPE,
                       *args.worker_args])


if __name__ == "__main__":
    run_cli(main)
