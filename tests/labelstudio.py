"""A real Label Studio server for tests: a pytest plugin (registered by tests/conftest.py).

- `labelstudio_template` (session): a data dir migrated once, by starting and stopping
  `scripts/labelstudio.sh` with the test account (~40-60 s: Label Studio's migrations). It
  needs `.labelstudio/venv` (`scripts/labelstudio.sh install`, which scripts/test.sh runs);
  when that is missing the fixture builds it, and skips only if that fails.
- `labelstudio` (function): a copy of the template, started by `scripts/labelstudio.sh start`
  on a free port of 127.0.0.1 (~5 s), with a fresh document root in tmp and HOME in tmp (see
  conftest); yields a `RunningLabelStudio`. After the test `scripts/labelstudio.sh stop` ends
  the server's process group, and the fixture makes sure no process of it is left (SIGKILL
  otherwise).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
import warnings
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from esgar.integrations.labelstudio import Server
from tests.helpers import REPO, free_port, required_in_ci

SCRIPT = REPO / "scripts" / "labelstudio.sh"
VENV = REPO / ".labelstudio" / "venv"
USERNAME = "annotator@example.com"
PASSWORD = "test-password-1"
TOKEN = "esgar-test-token-0123456789"
INSTALL_S = 1200  # building the venv from PyPI: ~2 min where this was written
MIGRATE_S = 240  # first start of an empty data dir: 40-60 s where this was written
START_S = 90  # start of a migrated copy: ~5-7 s where this was written


LABEL_CONFIG = (REPO / "label_config.xml").read_text()
_ROOT = ET.fromstring(LABEL_CONFIG)
# The attribute questions (single-choice Choices) and their answers (the choices' aliases),
# the object they are asked about, and the variables a task's data must hold.
QUESTIONS = {c.get("name"): [x.get("alias") for x in c.iter("Choice")]
             for c in _ROOT.iter("Choices") if c.get("choice") == "single-radio"}
TO_NAME = next(c.get("toName") for c in _ROOT.iter("Choices"))
IMAGES = [e.get("value")[1:] for e in _ROOT.iter("Image")]
TEXTS = [e.get("value")[1:] for e in _ROOT.iter("Text")]


@dataclass(frozen=True)
class RunningLabelStudio:
    """A running server: `url`, `api_key` (the admin's token), `server` for the adapter,
    `document_root` (a tmp folder the test may put files in, served under
    /data/local-files/?d=...), `data_dir`, `pid` (= its process group), `env` (what
    scripts/labelstudio.sh needs to address it) and `start_s` (seconds its start took)."""

    url: str
    api_key: str
    server: Server
    document_root: Path
    data_dir: Path
    pid: int
    env: dict[str, str]
    start_s: float

    @property
    def log(self) -> Path:
        return self.data_dir / "labelstudio.log"



def script_env(data_dir: Path, port: int, document_root: Path,
               home: Path | None = None) -> dict[str, str]:
    """The environment for scripts/labelstudio.sh: this process's, without any LABEL_STUDIO_*
    setting of the user's and without the repository's .env, plus the test server's own."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LABEL_STUDIO_")}
    if home is not None:
        env.update(HOME=str(home), XDG_CONFIG_HOME=str(home / ".config"),
                   XDG_CACHE_HOME=str(home / ".cache"), XDG_DATA_HOME=str(home / ".local"))
    env.update(LABEL_STUDIO_ENV_FILE=os.devnull, LABEL_STUDIO_DATA_DIR=str(data_dir),
               LABEL_STUDIO_PORT=str(port), LABEL_STUDIO_DOCUMENT_ROOT=str(document_root),
               LABEL_STUDIO_USERNAME=USERNAME, LABEL_STUDIO_PASSWORD=PASSWORD,
               LABEL_STUDIO_USER_TOKEN=TOKEN, LABEL_STUDIO_START_TIMEOUT=str(MIGRATE_S))
    return env


def run_script(command: str, env: dict[str, str],
               timeout: float = START_S) -> subprocess.CompletedProcess:
    """`scripts/labelstudio.sh <command>`, its output captured, not checked."""
    return subprocess.run([str(SCRIPT), command], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=timeout)


def group_processes(pgid: int) -> list[int]:
    """Live (non-zombie) processes of process group `pgid`."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(") ", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            found.append(int(stat.parent.name))
    return found


def _start(data_dir: Path, document_root: Path, timeout: float,
           home: Path | None = None) -> tuple[int, dict[str, str], float]:
    """Start a server on a free port: (pid, its env, seconds). A port taken between choosing
    and starting (another test run) is retried with another one."""
    for _ in range(3):
        env = script_env(data_dir, free_port(), document_root, home)
        started = time.monotonic()
        proc = run_script("start", env, timeout)
        if proc.returncode == 0:
            pid = int((data_dir / "labelstudio.pid").read_text().split()[0])
            return pid, env, time.monotonic() - started
        if "already in use" not in proc.stderr:
            break
    raise AssertionError(f"scripts/labelstudio.sh start failed ({proc.returncode}):\n"
                         f"{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}")


def _stop(pid: int, env: dict[str, str]) -> None:
    """`scripts/labelstudio.sh stop`, then SIGKILL to whatever of the group survived it; fails
    when the script failed or left a process behind."""
    proc = run_script("stop", env, timeout=60)
    left = group_processes(pid)
    if left:
        os.killpg(pid, signal.SIGKILL)
    assert proc.returncode == 0, f"stop failed: {proc.stdout}{proc.stderr}"
    assert not left, f"scripts/labelstudio.sh stop left processes {left} of group {pid}"


def _ensure_venv() -> None:
    """`scripts/labelstudio.sh install` (a no-op when up to date). On a developer's machine the
    test skips when there is no Label Studio venv and it cannot be built (e.g. no access to
    PyPI), and an existing venv that cannot be updated (perhaps of another version) is used as
    it is, with a warning; in CI (`in_ci`) both fail the test."""
    try:
        proc = subprocess.run([str(SCRIPT), "install"], cwd=REPO, capture_output=True,
                              text=True, timeout=INSTALL_S)
        ok, output = proc.returncode == 0, proc.stdout[-1500:] + proc.stderr[-1500:]
    except subprocess.TimeoutExpired:
        ok, output = False, f"took over {INSTALL_S} s"
    if ok:
        return
    if (VENV / "bin" / "label-studio").exists():
        required_in_ci(f"scripts/labelstudio.sh install failed, and the existing {VENV} may be "
                       f"of another version: {output.strip()[-600:]}")
        warnings.warn(f"scripts/labelstudio.sh install failed; testing the existing {VENV} as it "
                      f"is: {output.strip()[-600:]}", stacklevel=2)
        return
    required_in_ci(f"no Label Studio venv ({VENV}) and scripts/labelstudio.sh install cannot "
                   f"build it: {output.strip()[-600:]}")
    pytest.skip(f"no Label Studio venv ({VENV}) and scripts/labelstudio.sh install cannot build "
                f"it: {output.strip()[-600:]}")


@pytest.fixture(scope="session")
def labelstudio_template(tmp_path_factory) -> Path:
    """A data dir in which Label Studio's database is migrated and the test account exists."""
    _ensure_venv()
    root = tmp_path_factory.mktemp("labelstudio-template")
    data, docs, home = root / "data", root / "docs", root / "home"
    docs.mkdir()
    pid, env, _ = _start(data, docs, MIGRATE_S, home)
    _stop(pid, env)
    for name in ("labelstudio.pid", "labelstudio.log", "labelstudio.log.1"):
        (data / name).unlink(missing_ok=True)
    return data


@pytest.fixture
def labelstudio(labelstudio_template, tmp_path) -> Iterator[RunningLabelStudio]:
    """A server of its own for the test, on a copy of the template (see the module)."""
    data, docs = tmp_path / "labelstudio-data", tmp_path / "docroot"
    shutil.copytree(labelstudio_template, data)
    docs.mkdir()
    pid, env, seconds = _start(data, docs, START_S)
    url = f"http://127.0.0.1:{env['LABEL_STUDIO_PORT']}"
    try:
        yield RunningLabelStudio(url=url, api_key=TOKEN, server=Server(url=url, api_key=TOKEN),
                                 document_root=docs, data_dir=data, pid=pid, env=env,
                                 start_s=seconds)
    finally:
        _stop(pid, env)
