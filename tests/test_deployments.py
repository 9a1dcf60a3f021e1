"""The deployments for real: a Prefect server started by `scripts/prefect.sh`, the deployments
served by `python -m flows.serve`, `prefect deployment run` from another process; then
annotations in a real Label Studio reach `python -m flows.webhook`, which starts `retrain`,
whose pull brings those very answers into the labels, the loss, a new model and the
registry's decision."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest
import yaml

from esgar import schema
from esgar.active.tasks import build_tasks
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
from tests.labelstudio import LABEL_CONFIG, TO_NAME

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


def flow_runs(api: str, tag: str | None = None, strict: bool = False) -> list[dict]:
    """The flow runs (with `tag`); an unanswered or failed request is no runs, unless `strict`
    (where "no run" is what the test asserts, an error must not pass for it)."""
    body = {"flow_runs": {"tags": {"all_": [tag]}}} if tag else {}
    try:
        response = httpx.post(f"{api}/flow_runs/filter", json=body, timeout=5)
        response.raise_for_status()
        return response.json()
    except httpx.HTTPError:
        if strict:
            raise
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


@contextlib.contextmanager
def started_prefect(home: Path) -> Iterator[tuple[str, dict[str, str]]]:
    """`scripts/prefect.sh start` with its home in `home`; yields (api url, client env)."""
    env = {"PREFECT_HOME": str(home), "PREFECT_PORT": str(free_port()),
           "PREFECT_ENV_FILE": os.devnull, "ESGAR_VENV": str(VENV_BIN.parent)}
    run([str(REPO / "scripts/prefect.sh"), "start"], REPO, env=env, timeout=200)
    api = f"http://127.0.0.1:{env['PREFECT_PORT']}/api"
    try:
        yield api, {"PREFECT_API_URL": api, "PREFECT_HOME": str(home),
                    "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    finally:
        run([str(REPO / "scripts/prefect.sh"), "stop"], REPO, env=env, timeout=60)


@pytest.fixture
def prefect_server(tmp_path):
    """A Prefect server of the test's own (its deployments and runs are the test's)."""
    with started_prefect(tmp_path / "prefect-home") as server:
        yield server


@pytest.fixture(scope="module")
def idle_prefect_server(tmp_path_factory):
    """One Prefect server for the tests that only need one to be up."""
    with started_prefect(tmp_path_factory.mktemp("prefect") / "home") as server:
        yield server


def test_served_deployment_runs_and_annotations_start_retrain(repo, prefect_server, labelstudio,
                                                              tmp_path):
    api, client_env = prefect_server
    hook_port = free_port()
    # one annotator, not measured on gold, whose answer alone may change a label
    set_params(repo, registry={"model_name": "t-deploy"},
               flows={"webhook.port": hook_port, "webhook.min_annotations": 2},
               pull={"label_accuracy": 0.0, "min_confidence": 0.6})
    commit_all(repo, "deployment test settings")
    env = {**stage_env(), **client_env,
           "MLFLOW_TRACKING_URI": f"sqlite:///{repo / 'mlflow.db'}",
           "LABEL_STUDIO_URL": labelstudio.url, "LABEL_STUDIO_API_KEY": labelstudio.api_key,
           "LABEL_STUDIO_DOCUMENT_ROOT": str(repo)}
    serve_log, hook_log = tmp_path / "serve.log", tmp_path / "webhook.log"
    with open(serve_log, "w") as out:
        serve = subprocess.Popen(["python", "-m", "flows.serve", "--repo", str(repo)], cwd=repo,
                                 env=env, stdout=out, stderr=subprocess.STDOUT)
    hook = None
    try:
        wait_for("the served deployments", lambda: {"fs2k"} <= set(deployments(api)), 120,
                 [serve_log])
        # from another process, as a user would (no project yet: pull has nothing to pull)
        proc = run(["prefect", "deployment", "run", DEPLOYMENT, "--watch",
                    "--watch-timeout", "400"], repo, env=client_env, timeout=450)
        assert "Completed" in proc.stdout + proc.stderr, proc.stdout[-2000:]
        c = reg.client()
        champion = reg.get_alias(c, "t-deploy", reg.CHAMPION)
        assert champion is not None and str(champion.version) == "1"
        assert champion.tags["decision"] == "first champion"
        before = {name: json.loads((repo / f"reports/{name}.json").read_text())
                  for name in ("prepare", "train")}

        # two sketches asked about their earring, as push asks; two annotators' answers (each
        # flips the label) reach the webhook receiver, which starts retrain by itself
        with ls.connect(labelstudio.server) as client:
            project = ls.ensure_project(client, repo_params("labelstudio")["project"],
                                        LABEL_CONFIG)
            tasks, flipped = asked_tasks(repo)
            ids = ls.import_tasks(client, project, tasks)
            with open(hook_log, "w") as out:
                # the URL Label Studio posts to given, as behind a proxy (here the same one)
                public = f"http://127.0.0.1:{hook_port}/"
                hook = subprocess.Popen(["python", "-m", "flows.webhook", "--public-url",
                                         public], cwd=repo,
                                        env=env, stdout=out, stderr=subprocess.STDOUT)
            health = f"http://127.0.0.1:{hook_port}/health"

            def receiving():
                try:
                    return httpx.get(health, timeout=2).status_code == 200
                except httpx.HTTPError:
                    return False
            wait_for("the webhook receiver", receiving, 90, [hook_log])
            for task_id, task in zip(ids, tasks, strict=True):
                answers = {**task["data"]["labels"], "earring": flipped[task["data"]["sample_id"]]}
                ls.annotate(client, task_id, ls.choices_result(answers, TO_NAME, origins={
                    a: "manual" if a == "earring" else "prediction" for a in answers}),
                    lead_time=7.0)
                if task_id == ids[0]:  # one is under flows.webhook.min_annotations
                    counted = wait_for("the first annotation counted", lambda: httpx.get(
                        health, timeout=2).json()["pending"] == 1, 30, [hook_log])
                    assert counted and flow_runs(api, "webhook", strict=True) == []

        def finished():
            runs = flow_runs(api, "webhook")
            return runs if runs and runs[0]["state"]["type"] in ("COMPLETED", "FAILED",
                                                                  "CRASHED") else None
        runs = wait_for("a retrain run started by the annotations", finished, 600,
                        [hook_log, serve_log])
        assert len(runs) == 1 and runs[0]["state"]["type"] == "COMPLETED", runs
        assert httpx.get(health, timeout=2).json()["pending"] == 0
    finally:
        if hook is not None:
            stop(hook)
        stop(serve)
    assert "Traceback" not in hook_log.read_text()

    # the answers that started the run went all the way: snapshot, sample table, the loss's
    # class counts, a new model, evaluated, registered and decided
    snap = pd.read_csv(repo / "data/relabels/snapshot.csv", dtype=str, keep_default_na=False)
    assert sorted(zip(snap["sample_id"], snap["label"], snap["status"], strict=True)) == \
        sorted((sid, label, "decided") for sid, label in flipped.items())
    assert json.loads((repo / "metrics/prepare.json").read_text())["relabeled"] == 2
    table = pd.read_parquet(repo / "data/prepared/samples.parquet").set_index("sample_id")
    earring = schema.BY_NAME["earring"]
    for sid, label in flipped.items():
        assert earring.classes[table.loc[sid, "earring"]] == label
    shift = np.zeros(2, int)
    for sid, label in flipped.items():
        shift[earring.classes.index(label)] += 1
        shift[int(table.loc[sid, "earring_orig"])] -= 1
    after = {name: json.loads((repo / f"reports/{name}.json").read_text())
             for name in ("prepare", "train")}
    counts = [np.array(r["class_counts"]["train"]["earring"])
              for r in (before["prepare"], after["prepare"])]
    assert (counts[1] - counts[0]).tolist() == shift.tolist()
    assert (np.array(after["train"]["class_counts"]["earring"])
            - np.array(before["train"]["class_counts"]["earring"])).tolist() == shift.tolist()
    versions = reg.list_versions(reg.client(), "t-deploy")
    assert [str(v.version) for v in versions] == ["1", "2"]
    assert versions[1].tags["decision"] in ("promoted", "challenger")
    assert versions[1].tags["train_run_id"] != versions[0].tags["train_run_id"]


def test_a_worker_runs_the_pool_deployments_one_run_at_a_time(repo, prefect_server, tmp_path):
    """`python -m flows.deploy` in the checkout, `scripts/prefect.sh worker` in another process,
    two runs of retrain asked for at once from a third: the worker runs both, one after the
    other (the deployment's concurrency of one holds on the pool), each with its registry
    decision (the second has nothing new)."""
    api, client_env = prefect_server
    set_params(repo, registry={"model_name": "t-pool"}, flows={"work_pool": "t-pool"})
    commit_all(repo, "work pool test settings")
    env = {**stage_env(), **client_env, "ESGAR_VENV": str(VENV_BIN.parent),
           "PREFECT_ENV_FILE": os.devnull, "PREFECT_WORKER_QUERY_SECONDS": "2",
           "MLFLOW_TRACKING_URI": f"sqlite:///{repo / 'mlflow.db'}"}
    deployed = run(["python", "-m", "flows.deploy"], repo, env=env, timeout=120)
    assert "to work pool 't-pool'" in deployed.stdout, deployed.stdout[-2000:]
    pool = httpx.get(f"{api}/work_pools/t-pool", timeout=5).json()
    assert pool["type"] == "process"
    for _ in range(2):  # from another process, before any worker polls: both wait in the pool
        run(["prefect", "deployment", "run", DEPLOYMENT], tmp_path, env=client_env, timeout=60)
    worker_log = tmp_path / "worker.log"
    with open(worker_log, "w") as out:
        worker = subprocess.Popen([str(repo / "scripts/prefect.sh"), "worker"], cwd=repo,
                                  env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        def finished():
            runs = flow_runs(api)
            done = [r for r in runs if r["state"]["type"] in ("COMPLETED", "FAILED", "CRASHED")]
            return runs if len(runs) == 2 and len(done) == 2 else None
        runs = wait_for("two retrain runs by the worker", finished, 600, [worker_log])
    finally:
        stop(worker)
    assert [r["state"]["type"] for r in runs] == ["COMPLETED"] * 2, runs
    assert all(r["work_pool_name"] == "t-pool" for r in runs)
    first, second = sorted(runs, key=lambda r: r["start_time"])
    assert second["start_time"] >= first["end_time"], "the two runs overlapped"
    versions = reg.list_versions(reg.client(), "t-pool")
    assert [v.tags["decision"] for v in versions] == ["first champion"]
    # each run left its decision: the second found nothing new to register
    artifacts = httpx.post(f"{api}/artifacts/filter", json={}, timeout=5).json()
    decided = {a["flow_run_id"]: a["description"] for a in artifacts
               if a["key"] == "retrain-decision"}
    assert [decided.get(r["id"]) for r in (first, second)] == [
        "t-pool v1: first champion", "t-pool v1: none"], artifacts


@pytest.mark.bad_input(stage="flows", kind="service")
def test_a_pool_of_another_type_is_refused_in_one_line(idle_prefect_server, tmp_path):
    api, client_env = idle_prefect_server
    made = httpx.post(f"{api}/work_pools/", json={"name": "t-k8s", "type": "kubernetes"},
                      timeout=5)
    assert made.status_code == 201, made.text
    env = {**stage_env(), **client_env}
    for module in ("flows.deploy", "flows.worker"):
        proc = run(["python", "-m", module, "--pool", "t-k8s"], REPO, env=env, check=False,
                   timeout=120)
        errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
        assert proc.returncode == 1 and len(errors) == 1, proc.stderr[-3000:]
        assert "'t-k8s' is of type 'kubernetes', not 'process'" in errors[0], errors[0]
    assert deployments(api) == []


@pytest.mark.bad_input(stage="webhook", kind="service")
@pytest.mark.parametrize("where", ["unset", "closed", "silent"])
def test_the_receiver_needs_label_studio(idle_prefect_server, tmp_path, silent_url, where):
    """Prefect is up; Label Studio is not configured, refuses, or never answers: one line that
    says what to do, within the client's timeout."""
    _, client_env = idle_prefect_server
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    port = free_port()
    params["flows"]["webhook"]["port"] = port
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    url = {"unset": "", "closed": f"http://127.0.0.1:{free_port()}", "silent": silent_url}[where]
    env = {k: v for k, v in {**stage_env(), **client_env}.items()
           if not k.startswith("LABEL_STUDIO_")}
    if url:
        env.update(LABEL_STUDIO_URL=url, LABEL_STUDIO_API_KEY="x" * 20)
    started = time.monotonic()
    proc = subprocess.run(["python", "-m", "flows.webhook", "--params",
                           str(tmp_path / "params.yaml")], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120)
    seconds = time.monotonic() - started
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert proc.returncode == 1 and len(errors) == 1, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    words = {"unset": ["LABEL_STUDIO_URL is not set"],
             "closed": [f"Label Studio at {url}", "connection refused"],
             "silent": [f"Label Studio at {url}", "no answer within"]}[where]
    assert all(w in errors[0] for w in words), errors[0]
    assert seconds < 60, f"took {seconds:.0f} s"


def asked_tasks(repo: Path) -> tuple[list[dict], dict[str, str]]:
    """Push's tasks (esgar.active.tasks.build_tasks) asking two training sketches' earring,
    blind; and the other class of each, which the annotators will answer."""
    table = pd.read_parquet(repo / "data/prepared/samples.parquet")
    rows = table[table["split"] == "train"].head(2)
    names = {sid: {a.name: a.classes[int(r[a.name])] for a in schema.ATTRIBUTES}
             for sid, (_, r) in zip(rows["sample_id"], rows.iterrows(), strict=True)}
    manifest = pd.DataFrame({"task": [0, 1], "sample_id": list(names), "attribute": "earring",
                             "score": 0.5})
    urls = dict.fromkeys(("sketch", "photo", "overlay"), "/data/local-files/?d=x.png")
    tasks = build_tasks(manifest, names, names, lambda sid: urls, "test")
    earring = schema.BY_NAME["earring"]
    flipped = {sid: next(c for c in earring.classes if c != names[sid]["earring"])
               for sid in names}
    return tasks, flipped
