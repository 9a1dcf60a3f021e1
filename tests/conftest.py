"""Shared fixtures: a private copy of the repository for stage tests, services' homes in tmp."""

from __future__ import annotations

import logging
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from esgar import schema
from tests.helpers import copy_repo, silent_server

# A real Label Studio server per test (`labelstudio`); a tiny repository built once (`tiny_repo`).
pytest_plugins = ["tests.labelstudio", "tests.tiny_repo"]


@pytest.fixture(autouse=True)
def _private_home(tmp_path_factory, monkeypatch):
    """Services and tools write under HOME / XDG dirs: keep them out of the user's home."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(home / ".cache"))
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    monkeypatch.setenv("DVC_NO_ANALYTICS", "1")
    for var in ("LABEL_STUDIO_URL", "LABEL_STUDIO_API_KEY", "MLFLOW_TRACKING_URI"):
        monkeypatch.delenv(var, raising=False)  # a developer's own servers stay out of tests


@pytest.fixture(autouse=True)
def _no_tracking_uri_from_an_earlier_test():
    """`mlflow.set_tracking_uri` (the stages call it in process) keeps a module global and writes
    MLFLOW_TRACKING_URI into os.environ: a later test on the same worker would talk to a server
    that test started and stopped. Each test starts from the environment alone."""
    _forget_tracking_uri()
    yield
    _forget_tracking_uri()


def _forget_tracking_uri() -> None:
    tracking = sys.modules.get("mlflow.tracking._tracking_service.utils")
    if tracking is not None:  # not imported yet: nothing to forget
        tracking.set_tracking_uri(None)


@pytest.fixture(autouse=True)
def _fs2k_schema():
    """The schema in use is per process (a stage puts its dataset's in use): every test starts
    and ends with FS2K's, whatever an earlier test on the same worker used."""
    schema.use(schema.FS2K)
    yield
    schema.use(schema.FS2K)


@pytest.fixture(autouse=True)
def _library_logs(caplog):
    """The library logs what it decides at INFO: make that visible to `caplog`."""
    caplog.set_level(logging.INFO, logger="esgar")


@pytest.fixture
def repo_copy(tmp_path) -> Iterator[Path]:
    """The project's files (tracked and untracked-not-ignored) in a fresh git repo in tmp,
    removed after the test (what the stages write there can reach hundreds of MB)."""
    copy = copy_repo(tmp_path / "repo")
    yield copy
    shutil.rmtree(copy, ignore_errors=True)


@pytest.fixture
def silent_url():
    """The URL of a server that accepts connections and never answers."""
    with silent_server() as url:
        yield url
