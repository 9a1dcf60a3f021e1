"""MLflow runs: params, data version, curves, plots, models (the registry: `registry.py`; the two
are the MLflow adapter, and beside them only the served model's code, `esgar.inference.pyfunc`,
imports MLflow).

Default store: `sqlite:///mlflow.db` in the working directory (the repo root for stages), with
artifacts in `./mlruns`; `MLFLOW_TRACKING_URI` overrides it. `check_tracking()` tries the store
with bounded timeouts and raises `TrackingUnavailable` (one line: URI, what failed, what to do);
`run()` calls it first, and stages call it before any heavy work. Every later MLflow HTTP call is
bounded too: importing this module sets defaults (which the environment may override) for
MLflow's request timeout and retries, see `HTTP_DEFAULTS`. `log_model` logs a pyfunc from its
code file and a trained-model folder; what that model serves is `esgar.inference`'s business
(`esgar.inference.publish`).
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import tempfile
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlparse
from urllib.request import url2pathname

import requests
import yaml

from esgar.connectivity import bounded, redact
from esgar.errors import EsgarError

# MLflow's defaults (120 s per request, 7 retries with backoff 2) turn a dead server into a
# ~4 minute wait per call; these bound one call to 3 tries of 20 s plus ~3 s of backoff.
HTTP_DEFAULTS = {
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "20",
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
}
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
for _name, _value in HTTP_DEFAULTS.items():
    os.environ.setdefault(_name, _value)

import mlflow  # noqa: E402
from mlflow.exceptions import MlflowException  # noqa: E402
from mlflow.utils.credentials import get_default_host_creds  # noqa: E402
from mlflow.utils.rest_utils import http_request  # noqa: E402

DEFAULT_URI = "sqlite:///mlflow.db"
EXPERIMENT = "esgar"
CHECK_TIMEOUT_S = 5.0  # connect and read timeout of each request `check_tracking` makes
STORE_TIMEOUT_S = 60.0  # opening a database store; creating a new sqlite one takes ~7 s
_SERVER_HINT = ("start the server, or unset MLFLOW_TRACKING_URI to log to sqlite:///mlflow.db "
                "in the repository")
_STORE_HINT = ("check the server's backend store (its database: e.g. scripts/postgres.sh status) "
               "and its log")
_log = logging.getLogger(__name__)


class TrackingUnavailable(EsgarError, RuntimeError):
    """The MLflow tracking store cannot be used; the message is one line: the URI, what went
    wrong and what to do."""


def tracking_uri() -> str:
    """`MLFLOW_TRACKING_URI` when set, else the repository's `sqlite:///mlflow.db`."""
    return os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_URI


def check_tracking(uri: str | None = None, timeout: float = CHECK_TIMEOUT_S) -> str:
    """Check that the tracking store `uri` (default `tracking_uri()`) can be used, cheaply and
    within bounded time: an http(s) server must answer `/health` and one API call, each within
    `timeout` seconds to connect and to answer, without retries; a local store (sqlite file or
    folder) needs a writable folder and a database that opens within `STORE_TIMEOUT_S`.
    Returns the URI checked; raises `TrackingUnavailable` otherwise."""
    uri = uri or tracking_uri()
    if urlparse(uri).scheme in ("http", "https"):
        _check_server(uri, timeout)
        return uri
    folder = _local_folder(uri)
    if folder is not None:
        _check_folder(uri, folder)
    _check_store(uri, folder)
    return uri


def _unavailable(uri: str, what: str, todo: str = _SERVER_HINT) -> TrackingUnavailable:
    what = " ".join(what.split())  # one line, whatever the underlying error printed
    return TrackingUnavailable(f"MLflow tracking at {redact(uri)} is unavailable: {what}; "
                               f"{todo}")


def _check_server(uri: str, timeout: float) -> None:
    """GET <uri>/health (MLflow answers "OK"), then search for at most one experiment; each
    within `timeout` seconds in all (`bounded`: a server that drips bytes is cut off too)."""
    base = uri.rstrip("/")
    creds = get_default_host_creds(base)
    endpoint = "/api/2.0/mlflow/experiments/search"
    try:
        health = bounded(lambda: requests.get(f"{base}/health", timeout=(timeout, timeout),
                                              verify=creds.verify), timeout, "GET /health")
    except TimeoutError:
        raise _unavailable(uri, f"no answer within {timeout:g} s") from None
    except (requests.RequestException, MlflowException) as e:
        _log.debug("tracking check of %s failed", uri, exc_info=True)
        raise _unavailable(uri, _connection_failure(e, timeout)) from None
    if health.status_code != 200:
        raise _unavailable(uri, f"HTTP {health.status_code} from /health")
    try:
        api = bounded(lambda: http_request(
            creds, endpoint, "GET", params={"max_results": 1}, max_retries=0, backoff_factor=0,
            backoff_jitter=0, timeout=(timeout, timeout), raise_on_status=False),
            timeout, endpoint)
    except (TimeoutError, requests.RequestException, MlflowException) as e:
        # the server is up; what hangs or fails behind it is usually its store
        what = (f"no answer within {timeout:g} s" if isinstance(e, TimeoutError)
                else _connection_failure(e, timeout))
        raise _unavailable(uri, f"the server answers /health but {endpoint}: {what}",
                           _STORE_HINT) from None
    if api.status_code in (401, 403):
        raise _unavailable(uri, f"HTTP {api.status_code} from {endpoint}",
                           "set MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD (or "
                           "MLFLOW_TRACKING_TOKEN), or unset MLFLOW_TRACKING_URI to log to "
                           "sqlite:///mlflow.db in the repository")
    if api.status_code >= 500:
        raise _unavailable(uri, f"the server answers /health but HTTP {api.status_code} from "
                           f"{endpoint}", _STORE_HINT)
    if api.status_code != 200:
        raise _unavailable(uri, f"HTTP {api.status_code} from {endpoint} (is it MLflow?)")


def _connection_failure(error: BaseException, timeout: float) -> str:
    """What went wrong, in a few words, from a requests error (MLflow wraps them)."""
    root: BaseException | None = error
    while root is not None and not isinstance(root, requests.RequestException):
        root = root.__cause__ or root.__context__
    if isinstance(root, requests.Timeout):
        return f"no answer within {timeout:g} s"
    if isinstance(root, requests.exceptions.SSLError):
        return "TLS handshake failed (check the certificate or MLFLOW_TRACKING_INSECURE_TLS)"
    text = str(root or error).lower()
    known = {"refused": "connection refused", "resolve": "host name not found",
             "reset": "connection reset", "disconnected": "connection closed without an answer"}
    return next((what for key, what in known.items() if key in text),
                f"cannot connect ({str(root or error)[:200]})")


def _local_folder(uri: str) -> Path | None:
    """The folder a local store writes into: a sqlite file's folder or a file store itself;
    None for in-memory sqlite and other databases."""
    parsed = urlparse(uri)
    if parsed.scheme == "sqlite":
        path = uri[len("sqlite:///"):].split("?")[0] if uri.startswith("sqlite:///") else ""
        return Path(path).parent if path not in ("", ":memory:") else None
    if parsed.scheme == "file":
        return Path(url2pathname(parsed.path))
    return Path(uri) if parsed.scheme == "" else None


def _check_folder(uri: str, folder: Path) -> None:
    """`folder` exists or is created, and a file can be written in it."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as e:
        raise _unavailable(uri, f"folder {folder} cannot be created or written "
                                f"({e.strerror or e})",
                           "make it writable, or set MLFLOW_TRACKING_URI to a writable store "
                           "such as sqlite:///<writable folder>/mlflow.db") from None


def _check_store(uri: str, folder: Path | None) -> None:
    """The store opens (a new sqlite one gets its tables) and lists one experiment."""
    try:
        bounded(lambda: mlflow.MlflowClient(uri).search_experiments(max_results=1),
                STORE_TIMEOUT_S, "opening the store")
    except TimeoutError:
        raise _unavailable(uri, f"no answer within {STORE_TIMEOUT_S:g} s",
                           "check that nothing holds the database locked") from None
    except Exception as e:
        _log.debug("tracking check of %s failed", uri, exc_info=True)
        where = f" in {folder}" if folder is not None else ""
        raise _unavailable(uri, f"the store does not open ({str(e)[:200]})",
                           f"repair or move away the store{where}, or set MLFLOW_TRACKING_URI "
                           "to another store") from None


def flatten(params: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """{"train": {"lr": 1e-5}} -> {"train.lr": "1e-05"} (MLflow params are flat strings)."""
    out: dict[str, str] = {}
    for key, value in params.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            out.update(flatten(value, f"{name}."))
        else:
            out[name] = json.dumps(value) if isinstance(value, (list, dict)) else str(value)
    return out


def git_commit(cwd: str | Path = ".") -> str:
    """HEAD's commit, suffixed `-dirty` when tracked files changed; `unknown` outside git."""
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True,
                              text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=cwd,
                               capture_output=True, text=True, check=True).stdout.strip()
    except (subprocess.CalledProcessError, FileNotFoundError):
        return "unknown"
    return head + ("-dirty" if dirty else "")


def data_version(paths: list[str], lock: str | Path = "dvc.lock") -> dict[str, str]:
    """DVC's hash of the output holding each path (the path itself or a folder above it), as
    recorded in dvc.lock; `missing` where no stage output holds it yet."""
    lock = Path(lock)
    outs: dict[str, str] = {}
    if lock.is_file():
        stages = (yaml.safe_load(lock.read_text()) or {}).get("stages", {})
        for stage in stages.values():
            for out in stage.get("outs", []):
                outs[out["path"].rstrip("/")] = out.get("md5") or out.get("hash", "")
    result = {}
    for p in paths:
        holder = next((o for o in outs if p == o or p.startswith(o + "/")), None)
        result[f"data.{holder or p}"] = outs[holder] if holder else "missing"
    return result


@contextmanager
def run(run_name: str, params: Mapping[str, Any], tags: Mapping[str, str],
        experiment: str = EXPERIMENT) -> Iterator[mlflow.ActiveRun]:
    """Start a run in `experiment` with flattened params and tags (git commit added), after
    `check_tracking()`; yields the active run. It ends FINISHED; FAILED if the block raises,
    KILLED on KeyboardInterrupt or (main thread) SIGTERM, and the exception is re-raised."""
    mlflow.set_tracking_uri(check_tracking())
    mlflow.set_experiment(experiment)
    with _sigterm_raises_interrupt():
        with _store_call():
            active = mlflow.start_run(run_name=run_name)
        try:
            with _store_call():
                mlflow.set_tags({"git_commit": git_commit(), **tags})
                mlflow.log_params(flatten(params))
            yield active
        except BaseException as error:
            _end_after_error(active, "KILLED" if isinstance(error, KeyboardInterrupt)
                             else "FAILED")
            raise
        _end_run(active, "FINISHED")


def _end_run(active: mlflow.ActiveRun, status: str) -> None:
    """End `active` as `status` if it is still the active run. SIGTERM is ignored meanwhile
    (the call is bounded), so a second `kill` cannot leave the run RUNNING."""
    main = threading.current_thread() is threading.main_thread()
    if main and signal.getsignal(signal.SIGTERM) is _raise_interrupt:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    current = mlflow.active_run()
    if current is not None and current.info.run_id == active.info.run_id:
        mlflow.end_run(status)


def _end_after_error(active: mlflow.ActiveRun, status: str) -> None:
    """`_end_run`, logging rather than raising its own failure: the error that ended the run
    (which may be that same dead store) is the one to report."""
    try:
        _end_run(active, status)
    except Exception as e:
        _log.warning("MLflow run %s could not be marked %s, it stays RUNNING at %s: %s",
                     active.info.run_id, status, mlflow.get_tracking_uri(),
                     " ".join(str(e).split())[:300])


# SIGTERM during a store call is held until the call returns: raised inside one (between the
# statements of a sqlite transaction, say), it can leave the store locked, and the run could not
# then be marked KILLED. Store calls are bounded, so the wait is too.
_store_calls = 0
_held_signal: int | None = None


def _raise_interrupt(signum: int, frame: Any) -> None:
    global _held_signal
    if _store_calls:
        _held_signal = signum
        return
    raise KeyboardInterrupt(signal.Signals(signum).name)


@contextmanager
def _store_call() -> Iterator[None]:
    """A call to the tracking store that SIGTERM must not cut in two (main thread only: the
    handler runs there)."""
    global _store_calls, _held_signal
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _store_calls += 1
    try:
        yield
    finally:
        _store_calls -= 1
        if not _store_calls and _held_signal is not None:
            signum, _held_signal = _held_signal, None
            if signal.getsignal(signal.SIGTERM) is _raise_interrupt:
                raise KeyboardInterrupt(signal.Signals(signum).name)


@contextmanager
def _sigterm_raises_interrupt() -> Iterator[None]:
    """Inside, SIGTERM raises KeyboardInterrupt, so `kill`, DVC's or Prefect's cancellation
    end the run KILLED; the previous handler comes back after. Only the main thread may set
    handlers: elsewhere nothing changes."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL if previous is None else previous)


def log_metrics(metrics: Mapping[str, float], step: int | None = None) -> None:
    """Metric names may hold '/', as MLflow groups them in its UI."""
    with _store_call():
        mlflow.log_metrics({k: float(v) for k, v in metrics.items()}, step=step)


def log_artifact(path: str | Path, folder: str | None = None) -> None:
    with _store_call():
        mlflow.log_artifact(str(path), artifact_path=folder)


def _signature(inputs: Mapping[str, bool], outputs: Mapping[str, str]):
    """Columns in ({name: required}) and out ({name: MLflow type, e.g. "string", "double"})."""
    from mlflow.models import ModelSignature
    from mlflow.types.schema import ColSpec, Schema

    return ModelSignature(
        inputs=Schema([ColSpec("string", c, required=r) for c, r in inputs.items()]),
        outputs=Schema([ColSpec(t, c) for c, t in outputs.items()]))


def log_model(net, masks: Mapping[str, Any], *, model_code: str | Path,
              inputs: Mapping[str, bool], outputs: Mapping[str, str], input_example: Any,
              name: str = "model", registered_model_name: str | None = None):
    """Log `net` (an `AttributeModel`) as a pyfunc whose code is the file `model_code` (MLflow's
    models-from-code: the file calls `mlflow.models.set_model`) and whose `model_dir` artifact
    is the trained-model folder: `net.config` and weights, and `masks`, the recipe of its masks
    (`esgar.masks.store.mask_recipe`), so the served model makes the same. `inputs`/`outputs`:
    the signature's columns; `input_example`: a valid request, stored with the model."""
    from esgar.models.factory import save_trained, save_weights

    with tempfile.TemporaryDirectory() as tmp, _store_call():
        save_trained(tmp, net, save_weights(tmp, net).name, masks=dict(masks))
        return mlflow.pyfunc.log_model(
            name=name, python_model=str(model_code), artifacts={"model_dir": tmp},
            signature=_signature(inputs, outputs), input_example=input_example,
            registered_model_name=registered_model_name, pip_requirements=_requirements(),
            code_paths=[str(Path(__file__).resolve().parents[1])],  # the esgar package itself
        )


def _requirements() -> list[str]:
    """The model's runtime packages, pinned to what is installed (skips MLflow's slow guess)."""
    from importlib.metadata import version

    return [f"{p}=={version(p)}" for p in ("torch", "timm", "numpy", "mlflow", "pandas",
                                           "opencv-python-headless", "facexlib", "grad-cam")]
