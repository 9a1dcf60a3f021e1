"""What the flows' command lines share: a Prefect server that must be there, and errors as one
line."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

import httpx

from esgar.errors import EsgarError
from flows.stages import StageFailed

__all__ = ["PrefectUnavailable", "check_prefect", "run_cli"]

CHECK_TIMEOUT_S = 5.0
_HINT = ("start one (scripts/prefect.sh start) and export PREFECT_API_URL="
         "http://127.0.0.1:4200/api")


class PrefectUnavailable(EsgarError, RuntimeError):
    """No Prefect server to serve deployments on or to run them through."""


def check_prefect(timeout: float = CHECK_TIMEOUT_S) -> str:
    """PREFECT_API_URL's server answers /health within `timeout` s; returns the URL."""
    url = (os.environ.get("PREFECT_API_URL") or "").rstrip("/")
    if not url:
        raise PrefectUnavailable(f"PREFECT_API_URL is not set: deployments need a Prefect "
                                 f"server; {_HINT}")
    try:
        answer = httpx.get(f"{url}/health", timeout=timeout)
    except httpx.TimeoutException:
        raise PrefectUnavailable(f"Prefect at {url}: no answer within {timeout:g} s; "
                                 f"{_HINT}") from None
    except httpx.HTTPError as e:
        raise PrefectUnavailable(f"Prefect at {url}: cannot connect ({type(e).__name__}); "
                                 f"{_HINT}") from None
    if answer.status_code != 200:
        raise PrefectUnavailable(f"Prefect at {url}: HTTP {answer.status_code} from /health "
                                 "(is PREFECT_API_URL the server's /api URL?)")
    return url


def run_cli(main: Callable[[], None]) -> None:
    """A user's mistake or a failed stage: one `error:` line and exit 1; Ctrl-C: exit 130."""
    try:
        main()
    except (EsgarError, StageFailed) as e:
        print(f"error: {e}", file=sys.stderr)
        raise SystemExit(1) from None
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        raise SystemExit(130) from None
