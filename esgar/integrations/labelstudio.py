"""Label Studio, the one module that imports its SDK (label-studio-sdk 2.1.x): projects, tasks
with pre-annotations, local image storage, annotations and their export.

`Server.from_env()` reads `LABEL_STUDIO_URL` and `LABEL_STUDIO_API_KEY` (None without a URL:
callers then work with files). `connect()` first runs `check_server()` (`/health`, then one
authenticated call, each bounded by a few seconds, no retries) and returns a `Client`. Every
later call is bounded too (`CALL_TIMEOUT_S`; bulk import and export `BULK_TIMEOUT_S`) and never
retried: a retried import could create its tasks twice. Any failure raises
`LabelStudioUnavailable`, one line: the URL, what failed and what to do.

Shapes, all plain lists and dicts:
- a task to import: `{"data": {"image": url, ...}, "predictions": [{"result": result,
  "model_version": str, "score": float}]}` (predictions optional; the server refuses with HTTP
  400 a prediction that does not fit the project's label config when it runs as
  `scripts/labelstudio.sh start` runs it);
- a result: Label Studio's list of regions; for Choices questions
  `choices_result({"hair": "with_hair", ...}, to_name="sketch")` builds it and
  `choices_answers(result)` reads it back as {"hair": ["with_hair"], ...} (answers are the
  choices' `alias`es).
"""

from __future__ import annotations

import ipaddress
import itertools
import json
import logging
import os
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote, urlparse

import httpx
from label_studio_sdk import LabelStudio
from label_studio_sdk.core.api_error import ApiError
from pydantic import BaseModel, ConfigDict, ValidationError

from esgar.active.tasks import choices_result  # the task format's, used here to answer
from esgar.connectivity import bounded, redact
from esgar.errors import EsgarError

__all__ = [
    "ANNOTATION_ACTIONS", "BULK_TIMEOUT_S", "CALL_TIMEOUT_S", "CHECK_TIMEOUT_S", "Client",
    "LabelStudioUnavailable", "Server", "annotate", "check_server", "choices_answers",
    "choices_result", "connect", "create_prediction", "delete_predictions",
    "check_export", "ensure_local_storage", "ensure_project", "ensure_webhook",
    "export_annotations",
    "find_project", "import_tasks", "list_tasks", "local_file_url", "next_task", "update_task",
]

T = TypeVar("T")

CHECK_TIMEOUT_S = 5.0  # connect and answer, for each request of `check_server`
CALL_TIMEOUT_S = 30.0  # connect and answer, for each ordinary API call
BULK_TIMEOUT_S = 300.0  # a bulk import or an export (2,104 tasks with predictions: ~3 s)
PAGE_SIZE = 1000  # tasks per page when listing
MAX_LISTED = 200_000  # items a listing may have (FS2K: 2,104 tasks); beyond, it is no listing
_START_HINT = ("start it (scripts/labelstudio.sh start) or set LABEL_STUDIO_URL to a running "
               "server; unset LABEL_STUDIO_URL to work without one")
_TOKEN_HINT = ("set LABEL_STUDIO_API_KEY to a user's token (LABEL_STUDIO_USER_TOKEN of "
               "scripts/labelstudio.sh, or Account & Server > Access Token in the web UI)")
_log = logging.getLogger(__name__)


class LabelStudioUnavailable(EsgarError, RuntimeError):
    """Label Studio cannot do what was asked; the message is one line: the URL, what failed and
    what to do."""


@dataclass(frozen=True)
class Server:
    """Where the server is: `url` (http(s), no trailing slash), `api_key` (a legacy token or a
    personal access token) and `timeout`, seconds to connect and to answer per ordinary call."""

    url: str
    api_key: str
    timeout: float = CALL_TIMEOUT_S

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Server | None:
        """From `LABEL_STUDIO_URL` and `LABEL_STUDIO_API_KEY` (of `environ`, default the
        process's environment); None when no URL is set. A URL that is not http(s) or a URL
        without a key raises `LabelStudioUnavailable`."""
        env = os.environ if environ is None else environ
        url = (env.get("LABEL_STUDIO_URL") or "").strip().rstrip("/")
        if not url:
            return None
        parsed = urlparse(url)
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise LabelStudioUnavailable(f"LABEL_STUDIO_URL={redact(url)!r} is not an http(s) "
                                         "URL; set it like http://127.0.0.1:8080, or unset it")
        key = (env.get("LABEL_STUDIO_API_KEY") or "").strip()
        if not key:
            raise LabelStudioUnavailable(f"Label Studio at {redact(url)}: LABEL_STUDIO_API_KEY "
                                         f"is not set; {_TOKEN_HINT}")
        return cls(url=url, api_key=key)


@dataclass(frozen=True)
class Client:
    """A connection made by `connect()`: its server, the SDK client (`sdk`, for this module's
    functions only) and its HTTP connection pool; `close()` it, or use it in a `with` block."""

    server: Server
    sdk: Any
    http: httpx.Client

    @property
    def url(self) -> str:
        return self.server.url

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _loopback(url: str) -> bool:
    host = urlparse(url).hostname or ""
    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _http(server: Server, timeout: float) -> httpx.Client:
    # A proxy from the environment never leads to a server on this machine: ignore it there.
    return httpx.Client(timeout=timeout, trust_env=not _loopback(server.url))


def _client(server: Server) -> Client:
    http = _http(server, server.timeout)
    try:
        sdk = LabelStudio(base_url=server.url, api_key=server.api_key,
                          timeout=server.timeout, max_retries=0, httpx_client=http)
    except ApiError as e:  # a personal access token that is expired or malformed
        http.close()
        raise _unavailable(server.url, "reading the API key", e, server.timeout) from None
    return Client(server, sdk, http)


def check_server(server: Server, timeout: float = CHECK_TIMEOUT_S) -> str:
    """Check, cheaply and within bounded time, that Label Studio answers at `server.url` and
    accepts its key: GET /health, then GET /api/current-user/whoami, each within `timeout`
    seconds to connect and to answer, without retries. Returns the key's user (an email);
    raises `LabelStudioUnavailable` otherwise."""
    url = server.url

    def health() -> httpx.Response:
        with _http(server, timeout) as http:
            return http.get(f"{url}/health")
    try:
        answer = bounded(health, timeout, "GET /health")
    except TimeoutError:
        raise _unavailable(url, "GET /health", httpx.ReadTimeout("deadline"), timeout) from None
    except httpx.HTTPError as e:
        raise _unavailable(url, "GET /health", e, timeout) from None
    if answer.status_code != 200 or "UP" not in answer.text:
        raise LabelStudioUnavailable(f"Label Studio at {redact(url)}: GET /health answered "
                                     f"HTTP {answer.status_code} (is it Label Studio?); "
                                     f"{_START_HINT}")
    with _client(server) as client:
        user = _call(client, "GET /api/current-user/whoami",
                     lambda o: client.sdk.users.whoami(request_options=o), timeout)
    return str(user.email or user.username or user.id)


def connect(server: Server, check: bool = True) -> Client:
    """A `Client` for `server`, after `check_server(server)` unless `check` is False."""
    if check:
        user = check_server(server)
        _log.info("Label Studio at %s answers (user %s)", server.url, user)
    return _client(server)


def _call(client: Client, what: str, call: Callable[[dict], T],
          timeout: float | None = None) -> T:
    """`call(request_options)`, within `timeout` seconds (default the client's) in all, not
    only per socket read (`esgar.connectivity.bounded`: a server that drips a byte every few
    seconds is cut off too), never retried; any failure becomes `LabelStudioUnavailable`
    naming `what`."""
    timeout = client.server.timeout if timeout is None else timeout
    try:
        return bounded(lambda: call({"timeout": timeout, "max_retries": 0}), timeout, what)
    except TimeoutError:
        raise _unavailable(client.url, what, httpx.ReadTimeout("deadline"), timeout) from None
    except (httpx.HTTPError, ApiError) as e:
        _log.debug("Label Studio call failed: %s", what, exc_info=True)
        raise _unavailable(client.url, what, e, timeout) from None


def _listed(pager: Iterable[T], what: str, limit: int = MAX_LISTED) -> list[T]:
    """The items of an SDK listing (it pages on its own), at most `limit`: a server whose list
    never ends is refused, not followed (and `_call` bounds the time)."""
    items = list(itertools.islice(pager, limit + 1))
    if len(items) > limit:
        raise LabelStudioUnavailable(f"listing {what} gave more than {limit} items: is that "
                                     "Label Studio?")
    return items


def _unavailable(url: str, what: str, error: BaseException,
                 timeout: float) -> LabelStudioUnavailable:
    reason, todo = _failure(error, timeout)
    line = " ".join(f"Label Studio at {redact(url)}: {what} failed: {reason}; {todo}".split())
    return LabelStudioUnavailable(line)


def _failure(error: BaseException, timeout: float) -> tuple[str, str]:
    """(what went wrong, what to do), in a few words each."""
    if isinstance(error, httpx.TimeoutException):
        return f"no answer within {timeout:g} s", _START_HINT
    if isinstance(error, httpx.ConnectError):
        text = str(error).lower()
        reason = ("connection refused" if "refused" in text else
                  "host name not found" if "name" in text and "known" in text else
                  f"cannot connect ({str(error)[:200]})")
        return reason, _START_HINT
    if isinstance(error, httpx.RemoteProtocolError):
        return "connection closed without an answer", _START_HINT
    if isinstance(error, httpx.HTTPError):
        return f"{type(error).__name__} ({str(error)[:200]})", _START_HINT
    status = getattr(error, "status_code", None)
    detail = _detail(getattr(error, "body", None))
    if status in (401, 403):
        return f"HTTP {status}, the API key is refused ({detail})", _TOKEN_HINT
    if status == 404:
        todo = "check the project or task id, and that the URL is Label Studio's"
    elif status is not None and status >= 500:
        todo = "see the server's log (.labelstudio/data/labelstudio.log)"
    else:
        todo = "the request does not fit the project: see the server's answer"
    return f"HTTP {status} ({detail})", todo


def _detail(body: Any, limit: int = 400) -> str:
    """The server's explanation from an error body, on one line."""
    if isinstance(body, dict):
        body = body.get("validation_errors") or body.get("detail") or body
    text = body if isinstance(body, str) else json.dumps(body, default=str)
    text = " ".join(text.replace("\\n", " ").split())
    return text[:limit] + ("..." if len(text) > limit else "")


def _canonical_xml(config: str) -> str:
    """A label config without comments and insignificant whitespace, for comparing."""
    try:
        return ET.canonicalize(config, strip_text=True, with_comments=False)
    except ET.ParseError:
        return config.strip()


def find_project(client: Client, title: str) -> int | None:
    """The id of the project titled exactly `title` (the oldest if there are several), or
    None when there is none."""
    projects = _call(client, f"listing projects titled {title!r}",
                     lambda o: _listed(client.sdk.projects.list(title=title, request_options=o),
                                       "projects"))
    ids = sorted(p.id for p in projects if p.title == title)
    return int(ids[0]) if ids else None


def ensure_project(client: Client, title: str, label_config: str,
                   annotators_per_task: int = 1) -> int:
    """The id of the project titled exactly `title` (the oldest one if there are several),
    created with `label_config` (XML text) if none exists; an existing project whose config
    differs (comments and whitespace aside) gets `label_config`. Every task is answered by
    `annotators_per_task` different annotators (Label Studio's overlap: its label stream never
    gives one person the same task twice), and pre-annotations pre-fill the labelling view."""
    projects = _call(client, f"listing projects titled {title!r}",
                     lambda o: _listed(client.sdk.projects.list(title=title, request_options=o),
                                       "projects"))
    ids = sorted(p.id for p in projects if p.title == title)
    overlap = {"maximum_annotations": annotators_per_task, "overlap_cohort_percentage": 100}
    if not ids:
        created = _call(client, f"creating project {title!r}",
                        lambda o: client.sdk.projects.create(
                            title=title, label_config=label_config, show_collab_predictions=True,
                            request_options=o, **overlap))
        _log.info("Label Studio: created project %d %r (%d annotator(s) per task)", created.id,
                  title, annotators_per_task)
        return int(created.id)
    if len(ids) > 1:
        _log.warning("Label Studio: %d projects are titled %r; using the oldest, %d",
                     len(ids), title, ids[0])
    project_id = ids[0]
    current = _call(client, f"reading project {project_id}",
                    lambda o: client.sdk.projects.get(project_id, request_options=o))
    if _canonical_xml(current.label_config or "") != _canonical_xml(label_config):
        _call(client, f"updating the label config of project {project_id}",
              lambda o: client.sdk.projects.update(project_id, label_config=label_config,
                                                   request_options=o))
        _log.info("Label Studio: updated the label config of project %d %r", project_id, title)
    if any(getattr(current, k, None) != v for k, v in overlap.items()):
        _call(client, f"setting {annotators_per_task} annotator(s) per task in project "
                      f"{project_id}",
              lambda o: client.sdk.projects.update(project_id, request_options=o, **overlap))
        _log.info("Label Studio: project %d now asks %d annotator(s) per task", project_id,
                  annotators_per_task)
    return int(project_id)


def ensure_local_storage(client: Client, project_id: int, folder: str | Path) -> int:
    """The id of project `project_id`'s Local Storage for `folder`, created if missing (never
    synced: it imports no tasks). Needed before `local_file_url` URLs of files in `folder` (or
    below it) answer 200 rather than 404. `folder` is a path on the server's machine, strictly
    inside its document root (LABEL_STUDIO_DOCUMENT_ROOT of scripts/labelstudio.sh); it is
    made absolute without resolving symbolic links, as the server compares paths as text."""
    path = os.path.abspath(folder)
    storages = _call(client, f"listing the local storages of project {project_id}",
                     lambda o: client.sdk.import_storage.local.list(project=project_id,
                                                                    request_options=o))
    for storage in storages:
        if os.path.normpath(storage.path or "") == path:
            return int(storage.id)
    created = _call(client, f"creating a local storage for {path} in project {project_id}",
                    lambda o: client.sdk.import_storage.local.create(
                        project=project_id, path=path, title=Path(path).name[:256],
                        use_blob_urls=False, request_options=o))
    _log.info("Label Studio: project %d serves files under %s", project_id, path)
    return int(created.id)


ANNOTATION_ACTIONS = ("ANNOTATION_CREATED", "ANNOTATIONS_CREATED", "ANNOTATION_UPDATED")


def ensure_webhook(client: Client, project_id: int, url: str,
                   actions: Sequence[str] = ANNOTATION_ACTIONS,
                   headers: Mapping[str, str] | None = None) -> int:
    """The id of project `project_id`'s webhook to `url` for `actions` (with payloads, and
    `headers` on every post: a shared secret), created if missing and updated if its actions
    or headers differ. A receiver on 127.0.0.1 is refused by the server's SSRF guard unless it
    runs with USE_DEFAULT_BANNED_SUBNETS=false, as scripts/labelstudio.sh starts it."""
    headers = dict(headers or {})
    hooks = _call(client, f"listing the webhooks of project {project_id}",
                  lambda o: client.sdk.webhooks.list(project=str(project_id),
                                                     request_options=o))
    for hook in hooks:
        if hook.url == url and getattr(hook, "project", project_id) == project_id:
            if (sorted(hook.actions or []) != sorted(actions) or not hook.send_payload
                    or dict(getattr(hook, "headers", None) or {}) != headers):
                _call(client, f"updating webhook {hook.id}",
                      lambda o, h=hook: client.sdk.webhooks.update(
                          h.id, url=url, actions=list(actions), send_payload=True,
                          headers=headers, is_active=True, request_options=o))
            return int(hook.id)
    created = _call(client, f"creating a webhook to {redact(url)} for project {project_id}",
                    lambda o: client.sdk.webhooks.create(
                        url=url, project=project_id, actions=list(actions), send_payload=True,
                        headers=headers, send_for_all_actions=False, is_active=True,
                        request_options=o))
    _log.info("Label Studio: project %d posts %s to %s", project_id, ", ".join(actions),
              redact(url))
    return int(created.id)


def local_file_url(path: str | Path, document_root: str | Path) -> str:
    """The URL path (`/data/local-files/?d=<path under document_root>`, percent-encoded) under
    which the server serves the file `path`; raises ValueError when `path` is not inside
    `document_root`. Relative paths are taken from the working directory; symbolic links are
    not resolved."""
    path, root = os.path.abspath(path), os.path.abspath(document_root)
    rel = os.path.relpath(path, root)
    if rel == "." or rel.startswith(os.pardir + os.sep) or rel == os.pardir:
        raise ValueError(f"{path} is not inside the document root {root}")
    return "/data/local-files/?d=" + quote(Path(rel).as_posix(), safe="/")


def import_tasks(client: Client, project_id: int, tasks: Sequence[Mapping[str, Any]]) -> list[int]:
    """Create `tasks` (see the module's docstring for their shape) in project `project_id` in
    one bulk request; returns the new task ids in the order of `tasks`. Nothing is created when
    the server refuses the request (HTTP 400 names the first problems)."""
    if not tasks:
        return []
    started = time.monotonic()
    answer = _call(client, f"importing {len(tasks)} tasks into project {project_id}",
                   lambda o: client.sdk.projects.import_tasks(
                       id=project_id, request=[dict(t) for t in tasks], return_task_ids=True,
                       commit_to_project=True, request_options=o),
                   BULK_TIMEOUT_S)
    ids = (answer.model_extra or {}).get("task_ids") or getattr(answer, "task_ids", None) or []
    if len(ids) != len(tasks):
        raise LabelStudioUnavailable(
            f"Label Studio at {redact(client.url)}: importing {len(tasks)} tasks into project "
            f"{project_id} returned {len(ids)} task ids; check the project in the web UI")
    _log.info("Label Studio: imported %d tasks (%d predictions) into project %d in %.1f s",
              len(ids), answer.prediction_count or 0, project_id, time.monotonic() - started)
    return [int(i) for i in ids]


def list_tasks(client: Client, project_id: int) -> list[dict[str, Any]]:
    """Every task of project `project_id`, by id: `{"id": int, "data": dict, "meta": dict,
    "annotations": int (submitted, not skipped), "predictions": int}`; `PAGE_SIZE` tasks per
    request."""
    # Only the fields needed: the full task_only rows make listing ~4x slower.
    tasks = _call(client, f"listing the tasks of project {project_id}",
                  lambda o: _listed(client.sdk.tasks.list(
                      project=project_id, fields="task_only", page_size=PAGE_SIZE,
                      include="id,data,meta,total_annotations,total_predictions",
                      request_options=o), "tasks"), BULK_TIMEOUT_S)
    out = [{"id": int(t.id), "data": dict(t.data or {}),
            "meta": dict(getattr(t, "meta", None) or {}),
            "annotations": int(t.total_annotations or 0),
            "predictions": int(t.total_predictions or 0)} for t in tasks]
    return sorted(out, key=lambda t: t["id"])


def update_task(client: Client, task_id: int, data: Mapping[str, Any],
                meta: Mapping[str, Any] | None = None) -> None:
    """Replace task `task_id`'s data (and meta) with `data` and `meta` (its annotations and
    predictions stay)."""
    _call(client, f"updating task {task_id}",
          lambda o: client.sdk.tasks.update(str(task_id), data=dict(data),
                                            meta=dict(meta or {}), request_options=o))


def next_task(client: Client, project_id: int) -> dict[str, Any] | None:
    """The task Label Studio's label stream gives the key's user next in project `project_id`
    (what the labelling view opens: overlap and who answered what respected), as `{"id", "data",
    "predictions": [result, ...]}`; None when it has none left for them."""
    url = f"{client.url}/api/projects/{project_id}/next/"
    what = f"asking for the next task of project {project_id}"
    try:
        answer = bounded(lambda: client.http.get(
            url, headers={"Authorization": f"Token {client.server.api_key}"}),
            client.server.timeout, what)
    except TimeoutError:
        raise _unavailable(client.url, what, httpx.ReadTimeout("deadline"),
                           client.server.timeout) from None
    except httpx.HTTPError as e:
        raise _unavailable(client.url, what, e, client.server.timeout) from None
    if answer.status_code == 404:
        return None
    if answer.status_code != 200:
        raise LabelStudioUnavailable(f"Label Studio at {redact(client.url)}: the next task of "
                                     f"project {project_id}: HTTP {answer.status_code} "
                                     f"({_detail(answer.text)})")
    task = answer.json()
    return {"id": int(task["id"]), "data": dict(task.get("data") or {}),
            "predictions": [p.get("result") or [] for p in task.get("predictions") or []]}


def delete_predictions(client: Client, task_id: int) -> int:
    """Delete every prediction (pre-annotation) of task `task_id`; returns how many."""
    predictions = _call(client, f"listing the predictions of task {task_id}",
                        lambda o: client.sdk.predictions.list(task=task_id, request_options=o))
    for p in predictions:
        _call(client, f"deleting prediction {p.id} of task {task_id}",
              lambda o, pid=p.id: client.sdk.predictions.delete(pid, request_options=o))
    return len(predictions)


def create_prediction(client: Client, task_id: int, result: list[dict[str, Any]],
                      model_version: str | None = None, score: float | None = None) -> int:
    """Add a prediction (pre-annotation) `result` to task `task_id`; returns its id."""
    extra = {k: v for k, v in (("model_version", model_version), ("score", score))
             if v is not None}
    created = _call(client, f"creating a prediction for task {task_id}",
                    lambda o: client.sdk.predictions.create(task=task_id, result=result,
                                                            request_options=o, **extra))
    return int(created.id)


def annotate(client: Client, task_id: int, result: list[dict[str, Any]], *,
             was_cancelled: bool = False, lead_time: float | None = None) -> int:
    """Submit an annotation `result` of task `task_id` as the key's user, as an annotator would
    (`was_cancelled`: skipped; `lead_time`: seconds spent); returns its id."""
    extra = {"lead_time": lead_time} if lead_time is not None else {}
    created = _call(client, f"annotating task {task_id}",
                    lambda o: client.sdk.annotations.create(task_id, result=result,
                                                            was_cancelled=was_cancelled,
                                                            request_options=o, **extra))
    return int(created.id)


class _Annotation(BaseModel):
    """One exported annotation, checked at the boundary (fields the pipeline reads)."""

    model_config = ConfigDict(extra="ignore")
    id: int
    result: list[dict[str, Any]] = []
    completed_by: int | str | dict[str, Any] | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    was_cancelled: bool = False
    lead_time: float | None = None


class _Task(BaseModel):
    """One exported task (its annotations are checked one by one)."""

    model_config = ConfigDict(extra="ignore")
    id: int
    data: dict[str, Any] = {}
    meta: dict[str, Any] | None = None
    annotations: list[Any] = []


def _problem(error: ValidationError) -> str:
    first = error.errors()[0]
    where = ".".join(map(str, first["loc"])) or "the item"
    return f"{where}: {first['msg']}"


def _utc_text(t: datetime | None) -> str | None:
    if t is None:
        return None
    t = t.replace(tzinfo=timezone.utc) if t.tzinfo is None else t.astimezone(timezone.utc)
    return t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def check_export(raw: Any, emails: Mapping[int, str]) -> tuple[list[dict[str, Any]], list[str]]:
    """An export's tasks in the shape `export_annotations` documents, each task and annotation
    checked (types, ids, times, lead times): what does not fit is left out and said, with its
    task id, and the rest kept. Raises LabelStudioUnavailable when the export is no list."""
    if not isinstance(raw, list):
        raise LabelStudioUnavailable(f"the export is a {type(raw).__name__}, not a list of "
                                     "tasks: is that Label Studio?")
    tasks, problems = [], []
    for k, item in enumerate(raw):
        try:
            task = _Task.model_validate(item)
        except ValidationError as e:
            tid = item.get("id", f"#{k}") if isinstance(item, dict) else f"#{k}"
            problems.append(f"exported task {tid}: {_problem(e)}; left out")
            continue
        annotations = []
        for a in task.annotations:
            try:
                ann = _Annotation.model_validate(a)
            except ValidationError as e:
                aid = a.get("id", "?") if isinstance(a, dict) else "?"
                problems.append(f"task {task.id}: annotation {aid}: {_problem(e)}; left out")
                continue
            who = ann.completed_by
            if isinstance(who, dict):  # some versions export the user, not the id
                who = who.get("email") or who.get("id")
            annotations.append({
                "id": ann.id, "result": ann.result,
                "completed_by": None if who is None else emails.get(who, str(who)),
                "created_at": _utc_text(ann.created_at), "updated_at": _utc_text(ann.updated_at),
                "was_cancelled": ann.was_cancelled, "lead_time": ann.lead_time})
        tasks.append({"id": task.id, "data": task.data, "meta": task.meta or {},
                      "annotations": sorted(annotations, key=lambda a: a["id"])})
    return sorted(tasks, key=lambda t: t["id"]), problems


def export_annotations(client: Client, project_id: int, all_tasks: bool = False
                       ) -> tuple[list[dict[str, Any]], list[str]]:
    """Project `project_id`'s tasks that have an annotation, skipped ones included (every task
    with `all_tasks`), by id, from one JSON export: `{"id": int, "data": dict, "meta": dict,
    "annotations": [{"id": int, "result": list, "completed_by": str (the annotator's email,
    else their user id; None for an account removed since), "created_at": str, "updated_at":
    str (ISO 8601, UTC), "was_cancelled": bool, "lead_time": float | None}]}`, annotations by
    id; and the problems (`check_export`: a malformed task or annotation is left out, said)."""
    raw = _call(client, f"exporting project {project_id}",
                lambda o: b"".join(client.sdk.projects.exports.download_sync(
                    project_id, export_type="JSON", download_all_tasks=all_tasks,
                    download_resources=False, request_options=o)),
                BULK_TIMEOUT_S)
    users = _call(client, "listing users",
                  lambda o: _listed(client.sdk.users.list(request_options=o), "users"))
    emails = {u.id: u.email for u in users if u.email}
    try:
        parsed = json.loads(raw)
    except (ValueError, RecursionError) as e:
        raise LabelStudioUnavailable(f"Label Studio at {redact(client.url)}: the export of "
                                     f"project {project_id} is not JSON ({str(e)[:100]})"
                                     ) from None
    return check_export(parsed, emails)


def choices_answers(result: Sequence[Mapping[str, Any]]) -> dict[str, list[str]]:
    """The reverse of `choices_result`: {question: [choice, ...]} from a result's Choices
    regions (one choice per single-choice question); other regions are left out."""
    out: dict[str, list[str]] = {}
    for region in result:
        choices = (region.get("value") or {}).get("choices")
        if region.get("type") == "choices" and isinstance(choices, list):
            out[str(region["from_name"])] = [str(c) for c in choices]
    return out
