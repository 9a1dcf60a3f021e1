"""PostgreSQL behind the services, live: `scripts/postgres.sh` starts a server on 127.0.0.1
with a database per service; MLflow's server (`scripts/mlflow.sh`) and Prefect's
(`scripts/prefect.sh`) run on it, a model trained by the stages is registered and decided
through them; Label Studio (`scripts/labelstudio.sh`) keeps its tasks and answers there."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from esgar.active.simulate import SimulatedAnnotator
from esgar.integrations import labelstudio as ls
from esgar.integrations import registry as reg
from tests.helpers import (
    REPO,
    VENV_BIN,
    commit_all,
    copy_repo,
    free_port,
    in_ci,
    run,
    set_params,
)
from tests.labelstudio import MIGRATE_S, TOKEN, run_script, script_env
from tests.test_stages_relabel import PROJECT, RELABEL_TINY, truth_of

pytestmark = pytest.mark.slow
HAS_POSTGRES = shutil.which("postgres") or list(Path("/usr/lib/postgresql").glob("*/bin"))


@contextlib.contextmanager
def service(script: str, env: dict[str, str]) -> Iterator[subprocess.CompletedProcess]:
    """`scripts/SCRIPT start` with `env`, stopped after the block."""
    started = run([str(REPO / "scripts" / script), "start"], REPO, env=env, timeout=300)
    try:
        yield started
    finally:
        run([str(REPO / "scripts" / script), "stop"], REPO, env=env, check=False, timeout=60)


@pytest.fixture
def postgres() -> Iterator[dict[str, str]]:
    """A PostgreSQL server of the test's own; yields the settings `urls` prints."""
    if not HAS_POSTGRES:
        if in_ci():
            pytest.fail("no PostgreSQL server on this machine (apt-get install postgresql)")
        pytest.skip("no PostgreSQL server on this machine (apt-get install postgresql)")
    # not under pytest's temporary folder: as root the server runs as `postgres`, which must
    # reach its data folder (pytest's folders are private to root)
    folder = Path(tempfile.mkdtemp(prefix="esgar-pg-"))
    folder.chmod(0o755)
    env = {"POSTGRES_DIR": str(folder / "pg"), "POSTGRES_PORT": str(free_port()),
           "POSTGRES_ENV_FILE": os.devnull, "ESGAR_VENV": str(VENV_BIN.parent)}
    try:
        with service("postgres.sh", env) as started:
            for db in ("mlflow", "prefect", "labelstudio"):
                assert f"created database {db}" in started.stdout, started.stdout
            urls = run([str(REPO / "scripts/postgres.sh"), "urls"], REPO, env=env).stdout
            settings = dict(line.split("=", 1) for line in urls.splitlines())
            assert "***" not in urls and settings["POSTGRE_PORT"] == env["POSTGRES_PORT"]
            yield {**env, **settings}
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def mlflow_on(pg: dict[str, str], tmp_path: Path) -> dict[str, str]:
    """scripts/mlflow.sh's settings for a server of the test's own on `pg`'s mlflow database."""
    return {"MLFLOW_PORT": str(free_port()), "MLFLOW_ENV_FILE": os.devnull,
            "MLFLOW_SERVICE_DIR": str(tmp_path / "mlflow"),
            "MLFLOW_ARTIFACTS_DESTINATION": str(tmp_path / "mlartifacts"),
            "MLFLOW_BACKEND_STORE_URI": pg["MLFLOW_BACKEND_STORE_URI"],
            "ESGAR_VENV": str(VENV_BIN.parent)}


def sql(pg: dict[str, str], database: str, query: str) -> str:
    return run(["psql", "-X", "-t", "-A", "-h", "127.0.0.1", "-p", pg["POSTGRES_PORT"], "-U",
                "esgar", "-d", database, "-c", query], REPO,
               env={"PGPASSWORD": pg["POSTGRE_PASSWORD"]}).stdout.strip()


def test_mlflow_and_prefect_on_postgres_register_and_decide_a_trained_model(postgres, repo,
                                                                           tmp_path,
                                                                           monkeypatch):
    pg = postgres
    mlflow_env = mlflow_on(pg, tmp_path)
    prefect_env = {"PREFECT_PORT": str(free_port()), "PREFECT_ENV_FILE": os.devnull,
                   "PREFECT_HOME": str(tmp_path / "prefect"),
                   "PREFECT_API_DATABASE_CONNECTION_URL":
                       pg["PREFECT_API_DATABASE_CONNECTION_URL"],
                   "ESGAR_VENV": str(VENV_BIN.parent)}
    set_params(repo, registry={"model_name": "t-pg"})
    commit_all(repo, "postgres test settings")
    with service("mlflow.sh", mlflow_env) as ml, service("prefect.sh", prefect_env):
        assert pg["POSTGRE_PASSWORD"] not in ml.stdout  # the store's URL is shown redacted
        clients = {"MLFLOW_TRACKING_URI": f"http://127.0.0.1:{mlflow_env['MLFLOW_PORT']}",
                   "PREFECT_API_URL": f"http://127.0.0.1:{prefect_env['PREFECT_PORT']}/api",
                   "PREFECT_HOME": prefect_env["PREFECT_HOME"]}
        # the model trained again, logged through the server, then the retrain flow on
        # Prefect's server: registered and decided in MLflow's registry on PostgreSQL
        run(["dvc", "repro", "--force", "--single-item", "train"], repo, env=clients)
        flow = run(["python", "-m", "flows.retrain"], repo, env=clients, timeout=600)
        assert '"decision": "first champion"' in flow.stdout, flow.stdout[-3000:]
        runs = httpx.post(f"{clients['PREFECT_API_URL']}/flow_runs/filter", json={},
                          timeout=10).json()
        assert [r["state"]["type"] for r in runs] == ["COMPLETED"]
        monkeypatch.setenv("MLFLOW_TRACKING_URI", clients["MLFLOW_TRACKING_URI"])
        champion = reg.get_alias(reg.client(), "t-pg", reg.CHAMPION)
        assert champion is not None and champion.tags["decision"] == "first champion"
    # the rows are in PostgreSQL, not in a sqlite file beside them
    assert sql(pg, "mlflow", "SELECT name FROM registered_models") == "t-pg"
    assert sql(pg, "mlflow", "SELECT count(*) FROM runs WHERE status = 'FINISHED'") != "0"
    assert sql(pg, "prefect", "SELECT count(*) FROM flow_run") == "1"
    assert not (Path(prefect_env["PREFECT_HOME"]) / "prefect.db").exists()


def test_push_and_pull_stages_on_label_studio_on_postgres(postgres, tmp_path):
    """Label Studio started by its script with the six settings `urls` prints: `dvc repro push`
    of a tiny repository creates its tasks, an annotator answers them, `pull` brings the
    answers into the labels, all unchanged from sqlite; the rows are in PostgreSQL."""
    pg = postgres
    docs, data_dir = tmp_path / "docs", tmp_path / "ls"
    docs.mkdir()
    env = {**script_env(data_dir, free_port(), docs),
           **{k: pg[k] for k in ("DJANGO_DB", "POSTGRE_NAME", "POSTGRE_USER",
                                 "POSTGRE_PASSWORD", "POSTGRE_HOST", "POSTGRE_PORT")}}
    repo = copy_repo(docs / "repo")  # inside the document root: its images are served
    set_params(repo, **RELABEL_TINY)
    started = run_script("start", env, timeout=MIGRATE_S + 60)
    assert started.returncode == 0, started.stdout[-3000:] + started.stderr[-3000:]
    url = f"http://127.0.0.1:{env['LABEL_STUDIO_PORT']}"
    stages = {"LABEL_STUDIO_URL": url, "LABEL_STUDIO_API_KEY": TOKEN,
              "LABEL_STUDIO_DOCUMENT_ROOT": str(docs),
              "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}"}
    try:
        run(["dvc", "repro", "push"], repo, env=stages)
        pushed = json.loads((repo / "data/labelstudio/pushed.json").read_text())
        with ls.connect(ls.Server(url, TOKEN)) as client:
            tasks = ls.list_tasks(client, ls.find_project(client, PROJECT))
            truth = truth_of(repo)
            careful = SimulatedAnnotator("admin", accuracy=1.0, laziness=0.0)
            for task in tasks:
                ls.annotate(client, task["id"], careful.answer(task["data"], truth)[0],
                            lead_time=3.0)
        run(["python", "-m", "pipeline.pull"], repo, env=stages)
    finally:
        stopped = run_script("stop", env, timeout=60)
        assert stopped.returncode == 0, stopped.stderr
    assert len(tasks) == len(pushed["created"]) > 0
    answers = pd.read_csv(repo / "data/relabels/answers.csv", dtype=str)
    assert set(answers["task_id"].astype(int)) == {t["id"] for t in tasks}
    assert set(answers["origin"]) >= {"manual"}
    assert sql(pg, "labelstudio", "SELECT count(*) FROM task") == str(len(tasks))
    assert sql(pg, "labelstudio", "SELECT count(*) FROM task_completion") == str(len(tasks))
    assert not list(data_dir.glob("*.sqlite3"))


@pytest.mark.bad_input(stage="services", kind="params")
@pytest.mark.parametrize("case", ["port", "bin", "foreign data", "urls not running"])
def test_postgres_script_mistakes_are_one_line_and_lose_nothing(tmp_path, case):
    folder = tmp_path / "pg"
    env = {"POSTGRES_DIR": str(folder), "POSTGRES_PORT": str(free_port()),
           "POSTGRES_ENV_FILE": os.devnull, "ESGAR_VENV": str(VENV_BIN.parent)}
    command, words = "start", []
    if case == "port":
        env["POSTGRES_PORT"], words = "54x", ["POSTGRES_PORT='54x' is not a port number"]
    elif case == "bin":
        env["POSTGRES_BIN"], words = str(tmp_path), [f"POSTGRES_BIN={tmp_path} holds no"]
    elif case == "foreign data":
        (folder / "data").mkdir(parents=True)
        (folder / "data/notes.txt").write_text("mine")
        words = ["is not empty and holds no PostgreSQL data"]
    else:
        command, words = "urls", ["not running", "scripts/postgres.sh start"]
    if case != "bin" and not HAS_POSTGRES:
        pytest.skip("no PostgreSQL server on this machine")
    proc = run([str(REPO / "scripts/postgres.sh"), command], REPO, env=env, check=False,
               timeout=60)
    errors = [line for line in proc.stderr.splitlines() if "error:" in line]
    assert proc.returncode == 1 and len(errors) == 1, proc.stdout + proc.stderr
    assert all(w in errors[0] for w in words), errors[0]
    if case == "foreign data":
        assert (folder / "data/notes.txt").read_text() == "mine"
        assert sorted(p.name for p in (folder / "data").iterdir()) == ["notes.txt"]


@pytest.mark.bad_input(stage="train", kind="service")
def test_postgres_stopped_under_mlflow_stops_the_stage_before_training(postgres, repo,
                                                                         tmp_path):
    """The MLflow server still answers /health with its database gone: the stage's check of
    the store fails in one line, within its timeout, before any training; the model as it
    was."""
    pg = postgres
    env = mlflow_on(pg, tmp_path)
    model = repo / "models/esgar"
    before = {p: p.read_bytes() for p in model.rglob("*") if p.is_file()}
    with service("mlflow.sh", env):
        run([str(REPO / "scripts/postgres.sh"), "stop"], REPO, env=pg)
        started = time.monotonic()
        proc = run(["python", "-m", "pipeline.train"], repo, check=False, timeout=120,
                   env={"MLFLOW_TRACKING_URI": f"http://127.0.0.1:{env['MLFLOW_PORT']}"})
        seconds = time.monotonic() - started
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert proc.returncode == 1 and len(errors) == 1, proc.stderr[-3000:]
    assert "the server answers /health but" in errors[0], errors[0]
    assert "backend store" in errors[0] and pg["POSTGRE_PASSWORD"] not in proc.stderr
    assert seconds < 60, f"took {seconds:.0f} s"
    assert {p: p.read_bytes() for p in model.rglob("*") if p.is_file()} == before


def test_a_sqlite_mlflow_store_copied_into_postgres_keeps_runs_and_registry(postgres, repo):
    """`esgar copy-store`: the tiny repository's sqlite store (its train and evaluate runs, and
    a registered model with a champion) into PostgreSQL's new mlflow database: the same runs,
    metric histories, versions and aliases there, new ids after the copied ones; a second copy
    over it is refused in one line and changes nothing."""
    pg_uri = postgres["MLFLOW_BACKEND_STORE_URI"]
    src_uri = f"sqlite:///{repo / 'mlflow.db'}"
    src = MlflowClient(src_uri, src_uri)
    train = next(r for r in src.search_runs(
        [e.experiment_id for e in src.search_experiments()]) if r.data.tags["stage"] == "train")
    src.create_registered_model("t-copy")
    version = src.create_model_version("t-copy", f"runs:/{train.info.run_id}/model",
                                       train.info.run_id)
    src.set_registered_model_alias("t-copy", "champion", version.version)
    src.set_model_version_tag("t-copy", version.version, "decision", "first champion")

    out = run([str(VENV_BIN / "esgar"), "copy-store", src_uri, pg_uri], REPO)
    assert "copied" in out.stdout and postgres["POSTGRE_PASSWORD"] not in out.stdout + out.stderr
    dst = MlflowClient(pg_uri, pg_uri)
    for client in (src, dst):
        experiments = client.search_experiments()
        runs = client.search_runs([e.experiment_id for e in experiments],
                                  order_by=["attributes.start_time ASC"])
        history = client.get_metric_history(train.info.run_id, "val/mean_bacc")
        model = client.get_registered_model("t-copy")
        got = ([(e.experiment_id, e.name) for e in experiments],
               [(r.info.run_id, r.info.status, r.info.artifact_uri, r.data.params,
                 r.data.metrics, r.data.tags) for r in runs],
               [(m.step, m.value, m.timestamp) for m in history],
               model.aliases, client.get_model_version("t-copy", version.version).tags)
        if client is src:
            before = got
    assert got == before
    assert len(got[1]) == 2 and got[3] == {"champion": version.version}
    made = dst.create_experiment("after the copy")  # PostgreSQL's ids go on past the copied
    assert int(made) > max(int(i) for i, _ in before[0])

    again = run([str(VENV_BIN / "esgar"), "copy-store", src_uri, pg_uri], REPO, check=False)
    errors = [line for line in again.stderr.splitlines() if "error:" in line]
    assert again.returncode == 1 and len(errors) == 1, again.stderr[-2000:]
    assert "is not a new store" in errors[0] and "***" in errors[0], errors[0]
    assert [e.name for e in dst.search_experiments()][0] == "after the copy"
    assert len(dst.search_experiments()) == len(before[0]) + 1
