"""A tiny repository for the flow and registry tests: a pytest plugin (tests/conftest.py).

- `tiny_repo` (session): a copy of the project on 160 synthetic pairs, `dvc repro evaluate`
  done once per test run, logged to the copy's own `mlflow.db` (the stages' default store at
  its root). Under pytest-xdist the first worker builds it under a file lock in the run's
  shared temporary folder and the others wait for it (pytest-xdist's documented pattern for a
  session fixture done once): read only from then on.
- `repo` (function): a private copy of it (the store too), MLFLOW_TRACKING_URI pointed at it.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from filelock import FileLock

from tests.helpers import commit_all, copy_repo, run, set_params

TINY = {
    "data": {"source": "synthetic", "synthetic.pairs": 160},
    "prepare": {"val_fraction": 0.25},
    "masks": {"contact_sheet.n": 2, "grids": [[2, 2]]},
    "model": {"img_size": 64},
    "train": {"epochs": 4, "batch_size": 16, "loss_kwargs": {"smoothing": 1.0}},
    "evaluate": {"bootstrap": 50, "attention_samples": 2},
    "registry": {"policy.bootstrap": 500},
}


@pytest.fixture(scope="session")
def tiny_repo(tmp_path_factory, worker_id) -> Path:
    base = tmp_path_factory.getbasetemp()
    shared = base if worker_id == "master" else base.parent  # every worker's, under xdist
    root, built = shared / "tiny", shared / "tiny.built"
    with FileLock(str(shared / "tiny.lock")):
        if not built.is_file():
            shutil.rmtree(root, ignore_errors=True)  # a build that failed half way
            repo = copy_repo(root / "repo")
            set_params(repo, **TINY)
            commit_all(repo, "tiny settings")
            home = root / "home"
            run(["dvc", "repro", "evaluate"], repo,
                env={"HOME": str(home), "XDG_CONFIG_HOME": str(home / ".config"),
                     "XDG_CACHE_HOME": str(home / ".cache"), "MLFLOW_TRACKING_URI": ""})
            built.touch()
    return root / "repo"


@pytest.fixture
def repo(tiny_repo, tmp_path, monkeypatch) -> Iterator[Path]:
    copy = tmp_path / "repo"
    shutil.copytree(tiny_repo, copy, symlinks=True)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{copy / 'mlflow.db'}")
    yield copy
    # a few hundred MB each (models, DVC's cache, MLflow's artifacts): kept, dozens of them
    # would fill a small disk before the suite ends
    shutil.rmtree(copy, ignore_errors=True)
