"""A worker's machine lost mid-run, for real: a Prefect server, the deployments on a work pool,
a worker killed with everything under it while the run trains; the server's automation marks the
run Crashed, and the next run on a new worker works. (A file of its own: it waits on heartbeats
for a minute and a half, beside the other files' tests.)"""

from __future__ import annotations

import contextlib
import os
import subprocess
from pathlib import Path

import httpx
import psutil
import pytest
import torch

from esgar.integrations import registry as reg
from flows.deploy import CRASH_AUTOMATION
from tests.helpers import VENV_BIN, commit_all, run, set_params, stage_env
from tests.test_deployments import DEPLOYMENT, flow_runs, started_prefect, stop, wait_for

pytestmark = pytest.mark.slow


@pytest.fixture
def prefect(tmp_path):
    """A Prefect server of the test's own."""
    with started_prefect(tmp_path / "prefect-home") as server:
        yield server


def _kill_tree(pid: int) -> list[str]:
    """SIGKILL `pid` and every process under it at once, as a machine that dies; their names."""
    root = psutil.Process(pid)
    tree = [root, *root.children(recursive=True)]
    names = [" ".join(p.cmdline()[:3]) for p in tree]
    for p in tree:
        with contextlib.suppress(psutil.NoSuchProcess):
            p.kill()
    psutil.wait_procs(tree, timeout=30)
    return names


@pytest.mark.bad_input(stage="flows", kind="interrupt")
def test_a_worker_killed_mid_run_crashes_the_run_and_the_next_run_works(repo, prefect, tmp_path):
    """The worker, its flow run, dvc and the training under it killed at once mid-training (a
    machine lost): the server's automation marks the run Crashed after three missed heartbeats
    (30 s apart here), which frees the deployment's one-run slot; a new worker's run then
    acquires DVC's lock, resumes the training from `last.pt` and registers the model."""
    api, client_env = prefect
    set_params(repo, registry={"model_name": "t-crash"}, flows={"work_pool": "t-crash"},
               train={"epochs": 60, "patience": 60})
    commit_all(repo, "a long training")
    env = {**stage_env(), **client_env, "ESGAR_VENV": str(VENV_BIN.parent),
           "PREFECT_ENV_FILE": os.devnull, "PREFECT_WORKER_QUERY_SECONDS": "2",
           "PREFECT_FLOWS_HEARTBEAT_FREQUENCY": "30",
           "MLFLOW_TRACKING_URI": f"sqlite:///{repo / 'mlflow.db'}"}
    run(["python", "-m", "flows.deploy"], repo, env=env, timeout=120)
    found = httpx.post(f"{api}/automations/filter", json={}, timeout=5).json()
    assert [(a["name"], a["trigger"]["within"]) for a in found] == [(CRASH_AUTOMATION, 90.0)]
    run(["prefect", "deployment", "run", DEPLOYMENT], tmp_path, env=client_env, timeout=60)
    last = repo / "models/esgar/last.pt"
    before = last.stat().st_mtime_ns
    logs = [tmp_path / "worker1.log", tmp_path / "worker2.log"]

    def start_worker(log: Path) -> subprocess.Popen:
        with open(log, "w") as out:
            return subprocess.Popen([str(repo / "scripts/prefect.sh"), "worker"], cwd=repo,
                                    env=env, stdout=out, stderr=subprocess.STDOUT)

    worker = start_worker(logs[0])
    try:
        wait_for("the run's training to write an epoch",
                 lambda: last.stat().st_mtime_ns != before, 300, logs[:1])
        killed = _kill_tree(worker.pid)
    finally:
        stop(worker)
    assert any("pipeline.train" in k for k in killed) and any("dvc" in k for k in killed), killed
    (crashed,) = flow_runs(api, strict=True)
    assert crashed["state"]["type"] == "RUNNING"  # nothing told the server yet

    def crash_marked():
        (r,) = flow_runs(api)
        return r if r["state"]["type"] == "CRASHED" else None
    crashed = wait_for("the automation to mark the run Crashed", crash_marked, 240)
    assert "no heartbeat for 90 s" in crashed["state"]["message"], crashed["state"]

    done = torch.load(last, weights_only=True)["state"]["epoch"]  # loads: written whole
    set_params(repo, train={"epochs": done + 1})  # one epoch more than the killed run made
    commit_all(repo, "a short training")
    run(["prefect", "deployment", "run", DEPLOYMENT], tmp_path, env=client_env, timeout=60)
    worker = start_worker(logs[1])
    try:
        def finished():
            runs = [r for r in flow_runs(api) if r["id"] != crashed["id"]]
            return runs if runs and runs[0]["state"]["type"] in ("COMPLETED", "FAILED",
                                                                "CRASHED") else None
        (second,) = wait_for("the next run", finished, 600, logs[1:])
    finally:
        stop(worker)
    assert second["state"]["type"] == "COMPLETED", (second, logs[1].read_text()[-3000:])
    said: list[str] = []
    while page := httpx.post(f"{api}/logs/filter", timeout=5, json={
            "logs": {"flow_run_id": {"any_": [second["id"]]}}, "offset": len(said),
            "limit": 200}).json():
        said += [line["message"] for line in page]
    assert any("resuming after epoch" in line for line in said), said[-20:]
    versions = reg.list_versions(reg.client(), "t-crash")
    assert [v.tags["decision"] for v in versions] == ["first champion"]
