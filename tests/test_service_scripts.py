"""scripts/prefect.sh and scripts/mlflow.sh against real servers, each on a free port of
127.0.0.1, with everything they write (Prefect's home, MLflow's store and artifacts, the pid
files and logs) in the test's tmp folder and HOME in tmp (see conftest): start, status, a second
start, stop; a busy port; and for MLflow a run with an artifact logged through the server.
A start takes ~12 s (Prefect) and ~20 s (MLflow, a new store) where this was written."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.helpers import REPO, free_port
from tests.labelstudio import group_processes

START_S = 90  # the scripts' own wait for the health URL
TIMEOUT_S = START_S + 30  # any call of a script


@dataclass(frozen=True)
class Service:
    """How a script is addressed: its name, its port variable, where it keeps its pid file
    (relative to the test's tmp folder), its health path and answer, the repository folder it
    uses by default (which the tests must leave alone)."""

    name: str
    port_var: str
    pid_file: str
    health: str
    answer: str
    default_dir: str

    @property
    def script(self) -> Path:
        return REPO / "scripts" / f"{self.name}.sh"

    def env(self, tmp: Path, port: int) -> dict[str, str]:
        """This process's environment without any PREFECT_* / MLFLOW_* setting of the user's
        and without the repository's .env, plus the test server's own settings."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "MLFLOW_"))}
        env["MLFLOW_DISABLE_TELEMETRY"] = "true"
        env[self.port_var] = str(port)
        if self.name == "prefect":
            env.update(PREFECT_ENV_FILE=os.devnull, PREFECT_HOME=str(tmp / "prefect-home"),
                       PREFECT_START_TIMEOUT=str(START_S))
        else:
            env.update(MLFLOW_ENV_FILE=os.devnull, MLFLOW_SERVICE_DIR=str(tmp / "mlflow-service"),
                       MLFLOW_BACKEND_STORE_URI=f"sqlite:///{tmp / 'mlflow.db'}",
                       MLFLOW_ARTIFACTS_DESTINATION=str(tmp / "mlartifacts"),
                       MLFLOW_START_TIMEOUT=str(START_S))
        return env

    def run(self, command: str, env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
        return subprocess.run([str(self.script), command, *args], cwd=REPO, env=env,
                              capture_output=True, text=True, timeout=TIMEOUT_S)


PREFECT = Service("prefect", "PREFECT_PORT", "prefect-home/prefect.pid", "/api/health", "true",
                  ".prefect")
MLFLOW = Service("mlflow", "MLFLOW_PORT", "mlflow-service/server.pid", "/health", "OK", ".mlflow")


def get(url: str) -> str:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(url, timeout=10) as r:
        return r.read().decode().strip()


def start(service: Service, tmp: Path) -> tuple[dict[str, str], subprocess.CompletedProcess]:
    """`start` on a free port; a port taken between choosing and starting is retried."""
    for _ in range(3):
        env = service.env(tmp, free_port())
        proc = service.run("start", env)
        if "already in use" not in proc.stderr:
            return env, proc
    return env, proc


def lifecycle(service: Service, tmp: Path, while_running: Callable[[str, dict], None]) -> None:
    """start -> status -> health -> a second start -> `while_running(url, env)` -> stop ->
    status 3, no process of the group left, a quiet second stop; nothing in HOME or in the
    repository's default folder."""
    home = Path(os.environ["HOME"])
    repo_dir_existed = (REPO / service.default_dir).exists()
    started = time.monotonic()
    env, proc = start(service, tmp)
    pid_file = tmp / service.pid_file
    pid = int(pid_file.read_text().split()[0]) if pid_file.exists() else None
    try:
        assert proc.returncode == 0, f"start failed ({proc.returncode}):\n{proc.stdout}" \
                                     f"{proc.stderr}"
        print(f"{service.name} start: {time.monotonic() - started:.1f} s")
        port = env[service.port_var]
        url = f"http://127.0.0.1:{port}"
        assert pid_file.read_text().split() == [str(pid), port]
        assert get(url + service.health) == service.answer

        status = service.run("status", env)
        assert status.returncode == 0 and f"running at {url}" in status.stdout, status.stdout
        again = service.run("start", env)
        assert again.returncode == 0 and "already running" in again.stdout, again.stderr
        assert int(pid_file.read_text().split()[0]) == pid  # the same server, not a second one

        while_running(url, env)
    finally:
        stopped = service.run("stop", env)
        left = group_processes(pid) if pid else []
        if left:
            os.killpg(pid, signal.SIGKILL)
    assert stopped.returncode == 0 and f"stopped (pid {pid})" in stopped.stdout, stopped.stderr
    assert not left, f"stop left processes {left} of group {pid}"
    assert not pid_file.exists()
    status = service.run("status", env)
    assert status.returncode == 3 and "not running" in status.stdout
    quiet = service.run("stop", env)
    assert quiet.returncode == 0 and quiet.stdout == "" and quiet.stderr == ""

    assert sorted(home.rglob("*")) == [], "the service wrote in HOME"
    if not repo_dir_existed:
        assert not (REPO / service.default_dir).exists()


@pytest.mark.slow
def test_prefect_script_starts_serves_and_stops_a_server(tmp_path):
    def serve(url: str, env: dict) -> None:
        # `serve` execs python -m flows.serve with the arguments given (here: its help); the
        # flows' own imports (matplotlib's cache) write in a HOME of their own
        client_home = tmp_path / "client-home"
        served = PREFECT.run("serve", {**env, "HOME": str(client_home),
                                       "XDG_CACHE_HOME": str(client_home / ".cache"),
                                       "XDG_CONFIG_HOME": str(client_home / ".config")}, "--help")
        assert served.returncode == 0 and "usage" in served.stdout, served.stderr[-2000:]
        assert f"serving the deployments on {url}/api" in served.stdout

    lifecycle(PREFECT, tmp_path, serve)
    assert (tmp_path / "prefect-home" / "prefect.db").exists()  # Prefect's home, in tmp


@pytest.mark.slow
def test_mlflow_script_serves_the_store_and_its_artifacts(tmp_path):
    def log_a_run(url: str, env: dict) -> None:
        code = ("import mlflow, pathlib\n"
                "mlflow.set_experiment('service-test')\n"
                "with mlflow.start_run() as run:\n"
                "    mlflow.log_param('p', 1)\n"
                "    pathlib.Path('note.txt').write_text('hello')\n"
                "    mlflow.log_artifact('note.txt')\n"
                "print(run.info.run_id)\n")
        client_env = {**env, "MLFLOW_TRACKING_URI": url, "no_proxy": "127.0.0.1",
                      "NO_PROXY": "127.0.0.1"}
        (tmp_path / "client").mkdir()
        logged = subprocess.run([sys.executable, "-c", code], cwd=tmp_path / "client",
                                env=client_env, capture_output=True, text=True, timeout=120)
        assert logged.returncode == 0, logged.stderr[-3000:]
        run_id = logged.stdout.split()[-1]
        found = list((tmp_path / "mlartifacts").rglob(f"{run_id}/artifacts/note.txt"))
        assert len(found) == 1 and found[0].read_text() == "hello"

    lifecycle(MLFLOW, tmp_path, log_a_run)
    assert (tmp_path / "mlflow.db").exists()  # the store it was given


@pytest.mark.parametrize("service", [PREFECT, MLFLOW], ids=lambda s: s.name)
def test_a_busy_port_is_refused_naming_it(service, tmp_path):
    with socket.create_server(("127.0.0.1", 0)) as busy:
        port = busy.getsockname()[1]
        proc = service.run("start", service.env(tmp_path, port))
    assert proc.returncode == 1
    assert f"port {port} on 127.0.0.1 is already in use" in proc.stderr
    assert service.port_var in proc.stderr and "starting" not in proc.stdout
    assert not (tmp_path / service.pid_file).exists()
    # a port that is not one is named too
    bad = service.run("status", {**service.env(tmp_path, port), service.port_var: "99999"})
    assert bad.returncode == 1 and f"{service.port_var}='99999' is not a port" in bad.stderr


def test_prefect_serve_needs_a_server_or_an_api_url(tmp_path):
    proc = PREFECT.run("serve", PREFECT.env(tmp_path, free_port()))
    assert proc.returncode == 1
    assert "no local Prefect server" in proc.stderr and "scripts/prefect.sh start" in proc.stderr
