"""The deployments for real: a Prefect server started by `scripts/prefect.sh`, the deployments
served by `python -m flows.serve`, `prefect deployment run` from another process; then
annotations in a real Label Studio reach `python -m flows.webhook`, which starts `retrain`."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from esgar.integrations import labelstudio as ls
from esgar.integrations import registry as reg
from tests.helpers import (
    REPO,
    VENV_BIN,
    commit_all,
    free_port,
    repo_params,
    run,
    set_params,
    stage_env,
)
from tests.labelstudio import IMAGES, LABEL_CONFIG, QUESTIONS, TEXTS, TO_NAME

pytestmark = pytest.mark.slow
DEPLOYMENT = "retrain/fs2k"


def wait_for(what: str, check, timeout: float, logs: list[Path] = ()):
    """Poll `check()` until it returns something true; fail with `what` and the logs."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = check()
        if got:
            return got
        time.sleep(1)
    tails = "\n".join(f"--- {p}:\n{p.read_text(errors='replace')[-3000:]}" for p in logs
                      if p.exists())
    raise AssertionError(f"{what}: not within {timeout:g} s\n{tails}")


def flow_runs(api: str, tag: str | None = None) -> list[dict]:
    body = {"flow_runs": {"tags": {"all_": [tag]}}} if tag else {}
    try:
        return httpx.post(f"{api}/flow_runs/filter", json=body, timeout=5).json()
    except httpx.HTTPError:
        return []


def deployments(api: str) -> list[str]:
    try:
        found = httpx.post(f"{api}/deployments/filter", json={}, timeout=5).json()
    except httpx.HTTPError:
        return []
    return [d["name"] for d in found]


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


@pytest.fixture
def prefect_server(tmp_path):
    """`scripts/prefect.sh start` with its home in tmp; yields (api url, client env)."""
    home = tmp_path / "prefect-home"
    env = {"PREFECT_HOME": str(home), "PREFECT_PORT": str(free_port()),
           "PREFECT_ENV_FILE": os.devnull, "ESGAR_VENV": str(VENV_BIN.parent)}
    run([str(REPO / "scripts/prefect.sh"), "start"], REPO, env=env, timeout=200)
    api = f"http://127.0.0.1:{env['PREFECT_PORT']}/api"
    try:
        yield api, {"PREFECT_API_URL": api, "PREFECT_HOME": str(home),
                    "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    finally:
        run([str(REPO / "scripts/prefect.sh"), "stop"], REPO, env=env, timeout=60)


def test_served_deployment_runs_and_annotations_start_retrain(repo, prefect_server, labelstudio,
                                                              tmp_path):
    api, client_env = prefect_server
    hook_port = free_port()
    set_params(repo, registry={"model_name": "t-deploy"},
               flows={"webhook.port": hook_port, "webhook.min_annotations": 2})
    commit_all(repo, "deployment test settings")
    env = {**stage_env(), **client_env,
           "MLFLOW_TRACKING_URI": f"sqlite:///{repo / 'mlflow.db'}"}
    env.pop("LABEL_STUDIO_URL", None)  # the served flows' pull keeps the snapshot
    serve_log, hook_log = tmp_path / "serve.log", tmp_path / "webhook.log"
    with open(serve_log, "w") as out:
        serve = subprocess.Popen(["python", "-m", "flows.serve", "--repo", str(repo)], cwd=repo,
                                 env=env, stdout=out, stderr=subprocess.STDOUT)
    hook = None
    try:
        wait_for("the served deployments", lambda: {"fs2k"} <= set(deployments(api)), 120,
                 [serve_log])
        # from another process, as a user would
        proc = run(["prefect", "deployment", "run", DEPLOYMENT, "--watch",
                    "--watch-timeout", "400"], repo, env=client_env, timeout=450)
        assert "Completed" in proc.stdout + proc.stderr, proc.stdout[-2000:]
        c = reg.client()
        champion = reg.get_alias(c, "t-deploy", reg.CHAMPION)
        assert champion is not None and str(champion.version) == "1"
        assert champion.tags["decision"] == "first champion"

        # annotations answered in Label Studio start the next retrain run by themselves
        with ls.connect(labelstudio.server) as client:
            project = ls.ensure_project(client, repo_params("labelstudio")["project"],
                                        LABEL_CONFIG)
            data = {**{k: "/data/local-files/?d=x.png" for k in IMAGES},
                    **{k: "text" for k in TEXTS}}
            ids = ls.import_tasks(client, project, [{"data": {**data, "sample_id": f"s{i}"}}
                                                    for i in range(2)])
            hook_env = {**env, "LABEL_STUDIO_URL": labelstudio.url,
                        "LABEL_STUDIO_API_KEY": labelstudio.api_key}
            with open(hook_log, "w") as out:
                hook = subprocess.Popen(["python", "-m", "flows.webhook"], cwd=repo,
                                        env=hook_env, stdout=out, stderr=subprocess.STDOUT)
            health = f"http://127.0.0.1:{hook_port}/health"

            def receiving():
                try:
                    return httpx.get(health, timeout=2).status_code == 200
                except httpx.HTTPError:
                    return False
            wait_for("the webhook receiver", receiving, 90, [hook_log])
            answers = {q: choices[0] for q, choices in QUESTIONS.items()}
            ls.annotate(client, ids[0], ls.choices_result(answers, TO_NAME))
            time.sleep(2)
            assert not flow_runs(api, "webhook"), "one annotation must not start a run"
            ls.annotate(client, ids[1], ls.choices_result(answers, TO_NAME))

        def finished():
            runs = flow_runs(api, "webhook")
            return runs if runs and runs[0]["state"]["type"] in ("COMPLETED", "FAILED",
                                                                  "CRASHED") else None
        runs = wait_for("a retrain run started by the annotations", finished, 400,
                        [hook_log, serve_log])
        assert len(runs) == 1 and runs[0]["state"]["type"] == "COMPLETED", runs
        assert httpx.get(health, timeout=2).json()["pending"] == 0
    finally:
        if hook is not None:
            stop(hook)
        stop(serve)
    assert "Traceback" not in hook_log.read_text()
