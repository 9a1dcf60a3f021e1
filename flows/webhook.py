"""Annotations start retraining: a small receiver of Label Studio's webhooks that counts new and
changed annotations and runs the `retrain` deployment once `flows.webhook.min_annotations` have
arrived, at most one run at a time.

    scripts/labelstudio.sh start; scripts/prefect.sh start; scripts/prefect.sh serve &
    python -m flows.webhook            # registers itself with the Label Studio project, listens

It listens on `flows.webhook.host:port` (127.0.0.1 by default), registers the webhook with the
project titled `labelstudio.project` (LABEL_STUDIO_URL / LABEL_STUDIO_API_KEY), and starts
`retrain/<flows.deployment>` through PREFECT_API_URL. While a run of that deployment is
pending or running, annotations go on being counted, and the next run starts when it is over.
"""

from __future__ import annotations

import argparse
import json
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from esgar.integrations import labelstudio as ls
from esgar.log import configure
from flows.cli import check_prefect, run_cli
from flows.settings import load_settings

__all__ = ["RetrainTrigger", "Receiver", "prefect_runner"]

log = logging.getLogger("flows.webhook")
MAX_BODY = 8 * 1024 * 1024  # a payload with a task and its annotation is a few kB
POLL_S = 30.0  # how often counted annotations are looked at again while a run is active


def annotations_in(payload: dict[str, Any]) -> int:
    """How many annotations a Label Studio webhook payload announces (0 for other actions)."""
    if payload.get("action") not in ls.ANNOTATION_ACTIONS:
        return 0
    got = payload.get("annotation", payload.get("annotations"))
    return len(got) if isinstance(got, list) else 1


@dataclass
class RetrainTrigger:
    """Counts annotations and starts a run once `threshold` have arrived while none is active.

    `start()` starts a run and returns its id; `active(run_id)` says whether a run (the one
    started here, or any other of the deployment) is still pending or running.
    """

    threshold: int
    start: Callable[[], str]
    active: Callable[[str | None], bool]
    pending: int = 0
    runs: list[str] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, n: int) -> str | None:
        """Count `n` annotations; the id of the run this started, if any."""
        with self._lock:
            self.pending += n
        return self.maybe_start()

    def maybe_start(self) -> str | None:
        with self._lock:
            if self.pending < self.threshold:
                return None
            if self.active(self.runs[-1] if self.runs else None):
                log.info("%d annotations waiting; a retrain run is still active", self.pending)
                return None
            run_id = self.start()
            log.info("%d annotations: started retrain run %s", self.pending, run_id)
            self.pending = 0
            self.runs.append(run_id)
            return run_id


def prefect_runner(deployment: str) -> tuple[Callable[[], str], Callable[[str | None], bool]]:
    """(start, active) for `RetrainTrigger` against the Prefect server at PREFECT_API_URL."""
    from prefect import get_client
    from prefect.client.schemas.filters import (
        DeploymentFilter,
        DeploymentFilterId,
        FlowRunFilter,
        FlowRunFilterState,
        FlowRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType
    from prefect.deployments import run_deployment

    def start() -> str:
        run = run_deployment(deployment, timeout=0, as_subflow=False,
                             tags=["esgar", "webhook"])
        return str(run.id)

    def active(_last: str | None) -> bool:
        with get_client(sync_client=True) as client:
            dep = client.read_deployment_by_name(deployment)
            busy = client.read_flow_runs(
                deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[dep.id])),
                flow_run_filter=FlowRunFilter(state=FlowRunFilterState(
                    type=FlowRunFilterStateType(any_=[StateType.PENDING, StateType.RUNNING,
                                                      StateType.CANCELLING]))),
                limit=1)
            if busy:
                return True
            if _last is None:
                return False
            state = client.read_flow_run(_last).state  # ours, even while still scheduled
            return state is not None and not state.is_final()
    return start, active


class Receiver(ThreadingHTTPServer):
    """POST / with a Label Studio webhook payload -> `trigger.add`; GET /health -> 200."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], trigger: RetrainTrigger):
        self.trigger = trigger
        super().__init__(address, _Handler)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}/"


class _Handler(BaseHTTPRequestHandler):
    server: Receiver

    def _answer(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        if self.path.rstrip("/") == "/health":
            self._answer(200, {"pending": self.server.trigger.pending,
                               "threshold": self.server.trigger.threshold,
                               "runs": self.server.trigger.runs})
        else:
            self._answer(404, {"error": "POST webhooks to /"})

    def do_POST(self) -> None:  # noqa: N802
        length = int(self.headers.get("Content-Length") or 0)
        if not 0 < length <= MAX_BODY:
            self._answer(413 if length else 400, {"error": "expected a JSON body"})
            return
        try:
            payload = json.loads(self.rfile.read(length))
        except ValueError:
            self._answer(400, {"error": "not JSON"})
            return
        n = annotations_in(payload) if isinstance(payload, dict) else 0
        try:
            started = self.server.trigger.add(n) if n else None
        except Exception as e:  # the server must keep receiving; Label Studio does not retry
            log.error("could not start retrain: %s", " ".join(str(e).split())[:300])
            self._answer(503, {"counted": n, "error": "could not start retrain"})
            return
        self._answer(200, {"counted": n, "pending": self.server.trigger.pending,
                           "started": started})

    def log_message(self, fmt: str, *args: Any) -> None:
        log.debug("%s " + fmt, self.address_string(), *args)


def _poll(trigger: RetrainTrigger, stop: threading.Event) -> None:
    """Annotations that arrived while a run was active start the next one when it is over."""
    while not stop.wait(POLL_S):
        try:
            trigger.maybe_start()
        except Exception as e:
            log.warning("checking for a finished retrain run failed: %s", str(e)[:300])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--public-url", default=None,
                        help="the URL Label Studio posts to (default http://HOST:PORT/)")
    args = parser.parse_args()
    configure(handler=False)  # Prefect's handler prints them
    s = load_settings(args.params)
    hook, deployment = s.flows.webhook, f"retrain/{s.flows.deployment}"
    check_prefect()
    server = ls.Server.from_env()
    if server is None:
        raise ls.LabelStudioUnavailable("LABEL_STUDIO_URL is not set: the receiver registers "
                                        "itself with Label Studio's project; see .env.example")
    start, active = prefect_runner(deployment)
    trigger = RetrainTrigger(hook.min_annotations, start, active)
    try:
        receiver = Receiver((hook.host, hook.port), trigger)
    except OSError as e:
        raise ls.LabelStudioUnavailable(f"cannot listen on {hook.host}:{hook.port} "
                                        f"({e.strerror}); set flows.webhook.port") from None
    url = args.public_url or receiver.url
    with ls.connect(server) as client:
        project = ls.find_project(client, s.labelstudio.project)
        if project is None:
            raise ls.LabelStudioUnavailable(f"no project {s.labelstudio.project!r} at "
                                            f"{server.url} yet: run the push stage first")
        ls.ensure_webhook(client, project, url)
    log.info("listening on %s: %d annotations start %s", url, hook.min_annotations, deployment)
    stop = threading.Event()
    threading.Thread(target=_poll, args=(trigger, stop), daemon=True).start()
    try:
        receiver.serve_forever()
    finally:
        stop.set()
        receiver.server_close()


if __name__ == "__main__":
    run_cli(main)
