"""What the flows' command lines share: a Prefect server that must be there, and errors as one
line."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from typing import Any

import httpx

from esgar.connectivity import bounded, redact, redact_text
from esgar.errors import EsgarError
from esgar.integrations import labelstudio as ls
from esgar.integrations import tracking
from esgar.log import configure
from flows.settings import load_settings
from flows.stages import StageFailed, in_repo

__all__ = ["PrefectUnavailable", "check_prefect", "flow_command", "preflight", "run_cli"]

CHECK_TIMEOUT_S = 5.0
_HINT = ("start one (scripts/prefect.sh start) and export PREFECT_API_URL="
         "http://127.0.0.1:4200/api")


class PrefectUnavailable(EsgarError, RuntimeError):
    """No Prefect server to serve deployments on or to run them through."""


def check_prefect(timeout: float = CHECK_TIMEOUT_S) -> str:
    """PREFECT_API_URL's server answers /health within `timeout` s in all (`bounded`: a server
    that drips bytes is cut off too); returns the URL."""
    url = (os.environ.get("PREFECT_API_URL") or "").rstrip("/")
    if not url:
        raise PrefectUnavailable(f"PREFECT_API_URL is not set: deployments need a Prefect "
                                 f"server; {_HINT}")
    shown = redact(url)
    try:
        answer = bounded(lambda: httpx.get(f"{url}/health", timeout=timeout), timeout,
                         "Prefect's /health")
    except (TimeoutError, httpx.TimeoutException):
        raise PrefectUnavailable(f"Prefect at {shown}: no answer within {timeout:g} s; "
                                 f"{_HINT}") from None
    except httpx.HTTPError as e:
        what = "connection refused" if "refused" in str(e).lower() else type(e).__name__
        raise PrefectUnavailable(f"Prefect at {shown}: cannot connect ({what}); {_HINT}"
                                 ) from None
    if answer.status_code != 200:
        raise PrefectUnavailable(f"Prefect at {shown}: HTTP {answer.status_code} from /health "
                                 "(is PREFECT_API_URL the server's /api URL?)")
    return url


def preflight(repo: str, params: str) -> None:
    """Settings and services before any heavy work: params.yaml's sections, Prefect's server
    when PREFECT_API_URL names one, the tracking store, and Label Studio when one is
    configured; each bounded. Raises the first problem found."""
    with in_repo(repo):
        load_settings(params)
        if os.environ.get("PREFECT_API_URL"):
            check_prefect()
        tracking.check_tracking()
        server = ls.Server.from_env()
        if server is not None:
            ls.check_server(server)


def flow_command(flow: Callable[[str, str], Any], description: str | None
                 ) -> Callable[[], None]:
    """The command line of a flow's module (`python -m flows.<name> [--repo] [--params]`):
    settings and services checked first, so a mistake costs seconds rather than a flow run's
    start, then one flow run here, its result printed as JSON."""
    def main() -> None:
        parser = argparse.ArgumentParser(description=description,
                                         formatter_class=argparse.RawDescriptionHelpFormatter)
        parser.add_argument("--repo", default=".")
        parser.add_argument("--params", default="params.yaml")
        args = parser.parse_args()
        configure(handler=False)  # Prefect's root handler prints the library's logs
        preflight(args.repo, args.params)
        print(json.dumps(flow(args.repo, args.params), indent=2, default=str))
    return main


def run_cli(main: Callable[[], None]) -> None:
    """A user's mistake or a failed stage: one `error:` line and exit 1; Ctrl-C: exit 130."""
    try:
        main()
    except (EsgarError, StageFailed) as e:
        print(f"error: {redact_text(str(e))}", file=sys.stderr)
        raise SystemExit(1) from None
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        raise SystemExit(130) from None
