"""`check_tracking` against a closed port, a silent server, a real `mlflow server` and sqlite
stores, and how `run()` ends its runs: FINISHED, FAILED, KILLED (KeyboardInterrupt, SIGTERM
from outside) and when the store dies meanwhile. Nothing is mocked: real sockets, a real server,
sqlite files in tmp and a child process."""

from __future__ import annotations

import contextlib
import logging
import os
import select
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import mlflow
import pytest
import requests
from mlflow import MlflowClient

from esgar.integrations import tracking
from esgar.integrations.tracking import TrackingUnavailable, check_tracking
from tests.helpers import free_port

MLFLOW = Path(sys.executable).parent / "mlflow"
SERVER_START_S = 90  # `mlflow server` took 13-22 s to answer /health where this was written



def run_status(uri: str, run_id: str) -> str:
    return MlflowClient(uri).get_run(run_id).info.status


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> str:
    """One sqlite store for the module: creating its tables takes seconds."""
    uri = f"sqlite:///{tmp_path_factory.mktemp('store')}/mlflow.db"
    return check_tracking(uri)


@pytest.fixture
def local_store(store, tmp_path, monkeypatch) -> str:
    """`store` as MLFLOW_TRACKING_URI, with tmp as the working directory (./mlruns, git)."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store)
    monkeypatch.chdir(tmp_path)
    return store




class Server(NamedTuple):
    uri: str
    proc: subprocess.Popen
    backend: str  # its store, readable once it is stopped
    log: Path


@pytest.fixture(scope="module", autouse=True)
def mlflow_server(tmp_path_factory) -> Iterator[Server]:
    """A real `mlflow server` on a free port, its sqlite store, artifacts and HOME in tmp. It is
    started first thing for the module and waited for only by the test that uses it (the last),
    so its start (13-22 s) overlaps the other tests."""
    tmp = tmp_path_factory.mktemp("server")
    port, backend = free_port(), f"sqlite:///{tmp}/server.db"
    log = (tmp / "server.log").open("w")
    proc = subprocess.Popen(
        [str(MLFLOW), "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
         "--backend-store-uri", backend, "--default-artifact-root", str(tmp / "art")],
        # no job-runner processes: they would outlive the server they belong to
        env={**os.environ, "HOME": str(tmp), "XDG_CACHE_HOME": str(tmp / ".cache"),
             "XDG_CONFIG_HOME": str(tmp / ".config"),
             "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"},
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        yield Server(f"http://127.0.0.1:{port}", proc, backend, tmp / "server.log")
    finally:
        stop_group(proc)
        log.close()


def wait_for_health(server: Server) -> None:
    uri, proc, log = server.uri, server.proc, server.log
    deadline = time.monotonic() + SERVER_START_S
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"mlflow server exited:\n{log.read_text()[-3000:]}"
        with contextlib.suppress(requests.RequestException):
            if requests.get(f"{uri}/health", timeout=1).status_code == 200:
                return
        time.sleep(0.25)
    raise AssertionError(f"mlflow server: no /health in {SERVER_START_S} s:\n"
                         f"{log.read_text()[-3000:]}")


def stop_group(proc: subprocess.Popen) -> None:
    """Terminate the process group `proc` leads (the server and its uvicorn workers)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=20)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


@pytest.mark.bad_input(stage="train", kind="service")
def test_closed_port_fails_at_once_naming_the_uri():
    uri = f"http://127.0.0.1:{free_port()}"
    start = time.monotonic()
    with pytest.raises(TrackingUnavailable, match="connection refused") as err:
        check_tracking(uri)
    assert time.monotonic() - start < 3
    message = str(err.value)
    assert uri in message and "MLFLOW_TRACKING_URI" in message and "\n" not in message


@pytest.mark.bad_input(stage="train", kind="service")
def test_silent_url_fails_within_the_timeout(silent_url):
    start = time.monotonic()
    with pytest.raises(TrackingUnavailable, match="no answer within 1 s") as err:
        check_tracking(silent_url, timeout=1)
    assert 1 <= time.monotonic() - start < 3
    assert silent_url in str(err.value)


@pytest.mark.bad_input(stage="train", kind="service")
def test_later_calls_to_a_dead_server_are_bounded(monkeypatch):
    for name, value in tracking.HTTP_DEFAULTS.items():
        monkeypatch.setenv(name, value)
    start = time.monotonic()
    with pytest.raises(mlflow.MlflowException):
        MlflowClient(f"http://127.0.0.1:{free_port()}").search_experiments()
    assert time.monotonic() - start < 10  # MLflow's own defaults retry for ~4 minutes


def test_sqlite_store_passes_with_absolute_and_relative_paths(store, monkeypatch):
    assert check_tracking(store) == store
    db = Path(store.removeprefix("sqlite:///"))
    monkeypatch.chdir(db.parent.parent)
    relative = f"sqlite:///{db.parent.name}/{db.name}"
    assert check_tracking(relative) == relative


@pytest.mark.bad_input(stage="train", kind="service")
@pytest.mark.parametrize("relative", [False, True])
def test_sqlite_store_in_an_unwritable_folder_raises(tmp_path, monkeypatch, relative):
    monkeypatch.chdir(tmp_path)
    if os.geteuid() == 0:  # root writes through chmod; nothing can be created under a file
        (tmp_path / "a-file").write_text("")
        folder = tmp_path / "a-file" / "db"
    else:
        folder = tmp_path / "locked"
        folder.mkdir(mode=0o500)
    uri = f"sqlite:///{folder.relative_to(tmp_path) if relative else folder}/mlflow.db"
    try:
        with pytest.raises(TrackingUnavailable, match="cannot be created or written") as err:
            check_tracking(uri)
    finally:
        if folder.is_dir():
            folder.chmod(0o700)  # so tmp can be cleaned up
    assert uri in str(err.value) and "\n" not in str(err.value)


@pytest.mark.bad_input(stage="train", kind="service")
def test_exception_ends_the_run_failed(local_store):
    with pytest.raises(ValueError, match="boom"):
        with tracking.run("fails", {"a": 1}, {}) as active:
            raise ValueError("boom")
    assert run_status(local_store, active.info.run_id) == "FAILED"
    assert mlflow.active_run() is None


@pytest.mark.bad_input(stage="train", kind="service")
def test_keyboard_interrupt_ends_the_run_killed_and_restores_sigterm(local_store):
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(KeyboardInterrupt):
        with tracking.run("interrupted", {}, {}) as active:
            assert signal.getsignal(signal.SIGTERM) is not before
            raise KeyboardInterrupt
    assert run_status(local_store, active.info.run_id) == "KILLED"
    assert signal.getsignal(signal.SIGTERM) is before


CHILD = textwrap.dedent("""
    import time
    from esgar.integrations import tracking
    with tracking.run("sigterm", {}, {}) as active:
        print(active.info.run_id, flush=True)
        time.sleep(120)
""")


CHILD_LOGGING = textwrap.dedent("""
    from esgar.integrations import tracking
    with tracking.run("sigterm while logging", {}, {}) as active:
        print(active.info.run_id, flush=True)
        step = 0
        while True:  # nearly all its time inside a write to the store
            tracking.log_metrics({"loss": 1.0 / (step + 1)}, step=step)
            step += 1
""")


@contextlib.contextmanager
def child_run(code: str, cwd: Path) -> Iterator[tuple[subprocess.Popen, str]]:
    """A Python child running `code`, which prints its MLflow run id first: (process, run id)
    once printed (within 60 s); killed on the way out if still alive."""
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=cwd, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        ready, _, _ = select.select([proc.stdout], [], [], 60)
        assert ready, "the child opened no run within 60 s"
        run_id = proc.stdout.readline().strip()
        assert run_id, proc.stderr.read()[-2000:]
        yield proc, run_id
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.bad_input(stage="train", kind="interrupt")
def test_sigterm_while_logging_ends_the_run_killed(local_store, tmp_path):
    """SIGTERM lands in the middle of a metric write (a sqlite transaction) nearly every time
    here; it is held until the write ends, so the store is not left locked and the run ends
    KILLED, its metrics kept. Three times, at different moments."""
    for delay in (0.5, 1.3, 2.1):
        with child_run(CHILD_LOGGING, tmp_path) as (proc, run_id):
            time.sleep(delay)
            proc.send_signal(signal.SIGTERM)
            _, err = proc.communicate(timeout=60)
        assert "KeyboardInterrupt: SIGTERM" in err, err[-2000:]
        assert "could not be marked" not in err, err[-2000:]
        assert run_status(local_store, run_id) == "KILLED", err[-2000:]
        assert MlflowClient(local_store).get_run(run_id).data.metrics["loss"] > 0


def test_sigterm_inside_a_store_call_waits_for_its_end(local_store):
    """In process: the signal arrives inside a store call, which still completes; the
    interrupt is raised as it ends, and the run is KILLED."""
    with pytest.raises(KeyboardInterrupt):
        with tracking.run("held", {}, {}) as active:
            with tracking._store_call():
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(0.2)  # the handler has run by now, and raised nothing
                mlflow.log_metric("after", 1.0)
            raise AssertionError("the held SIGTERM was not raised at the call's end")
    got = MlflowClient(local_store).get_run(active.info.run_id)
    assert got.info.status == "KILLED" and got.data.metrics["after"] == 1.0


@pytest.mark.bad_input(stage="train", kind="service")
def test_sigterm_ends_the_run_killed(local_store, tmp_path):
    with child_run(CHILD, tmp_path) as (proc, run_id):
        assert run_status(local_store, run_id) == "RUNNING"
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode != 0 and "KeyboardInterrupt: SIGTERM" in err, err[-2000:]
    assert run_status(local_store, run_id) == "KILLED"


def test_real_server_passes_and_logs_a_run(mlflow_server, tmp_path, monkeypatch, caplog):
    wait_for_health(mlflow_server)
    uri, proc, backend, _ = mlflow_server
    assert check_tracking(uri) == uri
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "curve.csv").write_text("epoch,acc\n1,0.5\n")
    with tracking.run("server", {"train": {"lr": 0.1}}, {"stage": "test"}) as active:
        tracking.log_metrics({"val/acc": 0.5}, step=1)
        tracking.log_artifact(tmp_path / "curve.csv", "plots")
    client = MlflowClient(uri)
    logged = client.get_run(active.info.run_id)
    assert logged.info.status == "FINISHED" and logged.data.params["train.lr"] == "0.1"
    assert logged.data.metrics == {"val/acc": 0.5} and logged.data.tags["stage"] == "test"
    assert [a.path for a in client.list_artifacts(active.info.run_id, "plots")] == \
        ["plots/curve.csv"]

    # the store dies during a run: the run's own error comes out, within bounded time
    caplog.set_level(logging.WARNING, "esgar.integrations.tracking")
    with pytest.raises(ValueError, match="training broke"):
        with tracking.run("server-dies", {}, {}) as active:
            stop_group(proc)
            start = time.monotonic()
            raise ValueError("training broke")
    assert time.monotonic() - start < 10  # trying to close it took ~2 s
    assert "stays RUNNING" in caplog.text and active.info.run_id in caplog.text
    assert run_status(backend, active.info.run_id) == "RUNNING"  # nobody could close it
