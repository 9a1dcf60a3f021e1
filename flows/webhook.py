"""Annotations start retraining: a small receiver of Label Studio's webhooks that counts new and
changed annotations and runs the `retrain` deployment once `flows.webhook.min_annotations` have
arrived, at most one run at a time.

    scripts/labelstudio.sh start; scripts/prefect.sh start; scripts/prefect.sh serve &
    python -m flows.webhook            # registers itself with the Label Studio project, listens

It listens on `flows.webhook.host:port` (127.0.0.1 by default), registers the webhook with the
project titled `labelstudio.project` (LABEL_STUDIO_URL / LABEL_STUDIO_API_KEY), and starts
`retrain/<flows.deployment>` through PREFECT_API_URL. While a run of that deployment is
pending or running, annotations go on being counted, and the next run starts when it is over.

The receiver is FastAPI on uvicorn, and trusts nobody: a request's head must arrive within
`READ_TIMEOUT_S` of connecting and its body within as long again (else the connection is
closed, or 408), a body is at most `MAX_BODY` bytes (413), anything that is not a JSON object
is 400 (too deeply nested too), and at most `MAX_CONNECTIONS` are served at once (503). With
`ESGAR_WEBHOOK_SECRET` set, a POST must carry it in the `X-ESGAR-Webhook-Secret` header (401
otherwise; Label Studio sends it, as the webhook is registered with it); listening anywhere but
on a loopback address needs that secret, and the receiver refuses to start without it.
"""

from __future__ import annotations

import argparse
import asyncio
import hmac
import ipaddress
import json
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from uvicorn.protocols.http.h11_impl import H11Protocol

from esgar.errors import ConfigError
from esgar.integrations import labelstudio as ls
from esgar.log import configure
from flows.cli import check_prefect, run_cli
from flows.settings import load_settings

__all__ = ["MAX_BODY", "READ_TIMEOUT_S", "SECRET_HEADER", "SECRET_VARIABLE", "Receiver",
           "RetrainTrigger", "create_app", "prefect_runner"]

log = logging.getLogger("flows.webhook")
MAX_BODY = 1024 * 1024  # a payload with a task and its annotation is a few kB
READ_TIMEOUT_S = 10.0  # for a request's head, and again for its body
MAX_CONNECTIONS = 64
POLL_S = 30.0  # how often counted annotations are looked at again while a run is active
SECRET_HEADER = "X-ESGAR-Webhook-Secret"
SECRET_VARIABLE = "ESGAR_WEBHOOK_SECRET"


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


class _HeadInTime(H11Protocol):
    """uvicorn's HTTP/1.1 protocol, closing a connection whose request head has not arrived
    within `READ_TIMEOUT_S` of connecting (uvicorn itself would wait for ever: 200 silent
    connections would hold 200 sockets)."""

    def connection_made(self, transport) -> None:  # noqa: ANN001 (uvicorn's signature)
        super().connection_made(transport)
        self._head_timer = self.loop.call_later(READ_TIMEOUT_S, self._no_head)

    def _no_head(self) -> None:
        if self.cycle is None and not self.transport.is_closing():
            log.debug("closing a connection that sent no request within %g s", READ_TIMEOUT_S)
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self._head_timer.cancel()
        super().connection_lost(exc)


async def _body(request: Request) -> bytes | JSONResponse:
    """The request's body, or the 4xx answer: too big (413), too slow (408)."""
    if int(request.headers.get("content-length") or 0) > MAX_BODY:
        return JSONResponse({"error": f"a body of at most {MAX_BODY} bytes"}, status_code=413)
    got = bytearray()

    async def read() -> None:
        async for chunk in request.stream():
            got.extend(chunk)
            if len(got) > MAX_BODY:
                raise OverflowError
    try:
        await asyncio.wait_for(read(), READ_TIMEOUT_S)
    except OverflowError:
        return JSONResponse({"error": f"a body of at most {MAX_BODY} bytes"}, status_code=413)
    except TimeoutError:
        return JSONResponse({"error": f"the body did not arrive within {READ_TIMEOUT_S:g} s"},
                            status_code=408)
    return bytes(got)


def create_app(trigger: RetrainTrigger, secret: str | None = None,
               ready: threading.Event | None = None) -> FastAPI:
    """POST / with a Label Studio webhook payload -> `trigger.add`; GET /health -> 200 once
    `ready` is set (the webhook registered: annotations made before would never be posted),
    503 until then."""
    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)

    @app.get("/health")
    def health() -> JSONResponse:
        up = ready is None or ready.is_set()
        return JSONResponse({"ready": up, "pending": trigger.pending,
                             "threshold": trigger.threshold, "runs": trigger.runs},
                            status_code=200 if up else 503)

    @app.post("/")
    async def receive(request: Request) -> JSONResponse:
        if secret is not None and not hmac.compare_digest(
                request.headers.get(SECRET_HEADER, "").encode(), secret.encode()):
            return JSONResponse({"error": f"the {SECRET_HEADER} header is missing or wrong"},
                                status_code=401)
        body = await _body(request)
        if isinstance(body, JSONResponse):
            return body
        try:
            payload = json.loads(body)
        except (ValueError, RecursionError):  # RecursionError: nested too deep to parse
            return JSONResponse({"error": "expected a JSON object"}, status_code=400)
        if not isinstance(payload, dict):
            return JSONResponse({"error": "expected a JSON object"}, status_code=400)
        n = annotations_in(payload)
        try:
            started = await run_in_threadpool(trigger.add, n) if n else None
        except Exception as e:  # the server must keep receiving; Label Studio does not retry
            log.error("could not start retrain: %s", " ".join(str(e).split())[:300])
            return JSONResponse({"counted": n, "error": "could not start retrain"},
                                status_code=503)
        return JSONResponse({"counted": n, "pending": trigger.pending, "started": started})

    @app.api_route("/{path:path}", methods=["GET", "POST", "PUT", "DELETE", "PATCH"])
    def elsewhere(path: str) -> JSONResponse:
        return JSONResponse({"error": "POST webhooks to /"}, status_code=404)

    return app


def loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


class Receiver:
    """The receiver served by uvicorn on `host:port` (port 0: any free one), in a thread
    (`start`, `stop`) or in the foreground (`run`). `ready`: whether /health answers 200 from
    the start, or only once `ready_event` is set."""

    def __init__(self, host: str, port: int, trigger: RetrainTrigger,
                 secret: str | None = None, ready: bool = True):
        if not loopback(host) and not secret:
            raise ConfigError(f"flows.webhook.host {host!r} is not a loopback address: the "
                              f"receiver would take posts from the network; set "
                              f"{SECRET_VARIABLE} (Label Studio then sends it), or listen on "
                              "127.0.0.1")
        self.trigger = trigger
        self.ready_event = threading.Event()
        if ready:
            self.ready_event.set()
        config = uvicorn.Config(create_app(trigger, secret, self.ready_event), host=host,
                                port=port, http=_HeadInTime, limit_concurrency=MAX_CONNECTIONS,
                                timeout_keep_alive=5, log_level="warning", access_log=False,
                                lifespan="off")
        self.server = uvicorn.Server(config)
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self.server.servers[0].sockets[0].getsockname()[:2]
        return f"http://{host}:{port}/"

    def run(self) -> None:
        self.server.run()

    def start(self, timeout: float = 10.0) -> str:
        self._thread = threading.Thread(target=self.server.run, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise OSError(f"the receiver did not start within {timeout:g} s")
            time.sleep(0.05)
        return self.url

    def stop(self) -> None:
        self.server.should_exit = True
        if self._thread is not None:
            self._thread.join(10)


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
    secret = os.environ.get(SECRET_VARIABLE) or None
    if not loopback(hook.host) and not secret:  # before any service is asked
        Receiver(hook.host, hook.port, RetrainTrigger(1, str, bool), secret)
    check_prefect()
    server = ls.Server.from_env()
    if server is None:
        raise ls.LabelStudioUnavailable("LABEL_STUDIO_URL is not set: the receiver registers "
                                        "itself with Label Studio's project; see .env.example")
    start, active = prefect_runner(deployment)
    trigger = RetrainTrigger(hook.min_annotations, start, active)
    receiver = Receiver(hook.host, hook.port, trigger, secret, ready=False)
    try:
        listening = receiver.start()
    except OSError as e:
        raise ls.LabelStudioUnavailable(f"cannot listen on {hook.host}:{hook.port} ({e}); set "
                                        "flows.webhook.port") from None
    url = args.public_url or listening
    try:
        with ls.connect(server) as client:
            project = ls.find_project(client, s.labelstudio.project)
            if project is None:
                raise ls.LabelStudioUnavailable(f"no project {s.labelstudio.project!r} at "
                                                f"{server.url} yet: run the push stage first")
            ls.ensure_webhook(client, project, url,
                              headers={SECRET_HEADER: secret} if secret else None)
        receiver.ready_event.set()
        log.info("listening on %s (Label Studio posts to %s): %d annotations start %s",
                 listening, url, hook.min_annotations, deployment)
        stop = threading.Event()
        threading.Thread(target=_poll, args=(trigger, stop), daemon=True).start()
        try:
            while receiver._thread is not None and receiver._thread.is_alive():
                receiver._thread.join(1)
        finally:
            stop.set()
    finally:
        receiver.stop()


if __name__ == "__main__":
    run_cli(main)
