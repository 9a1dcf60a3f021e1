"""A Prefect worker for the flows' work pool (`flows.work_pool`, a `process` pool created when
missing): it polls the pool and runs each flow run of the deployments `flows.deploy` made in a
process of its own. `scripts/prefect.sh worker` runs it; arguments after `--` go to `prefect
worker start` (e.g. `-- --limit 1`).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from flows.cli import run_cli
from flows.deploy import POOL_TYPE, ensure_pool, pool_command


def main() -> None:
    args, pool = pool_command(__doc__, lambda p: p.add_argument(
        "worker_args", nargs="*", help="after --: for `prefect worker start`"))
    if ensure_pool(pool):
        print(f"created work pool {pool!r} ({POOL_TYPE})", file=sys.stderr)
    prefect = str(Path(sys.executable).with_name("prefect"))
    sys.stderr.flush()
    os.execv(prefect, [prefect, "worker", "start", "--pool", pool, "--type", POOL_TYPE,
                       *args.worker_args])


if __name__ == "__main__":
    run_cli(main)
