"""Bad inputs against the flows' command lines: one `error:` line within seconds, before any
stage runs or any model is registered (counted by bench/bad_inputs.py)."""

from __future__ import annotations

import json
import time

import pytest

from tests.helpers import free_port, ran_stages, run, set_params

pytestmark = pytest.mark.slow
FAST_S = 20.0  # python start, imports, and the bounded checks


def flow_cli(repo, module: str, env: dict[str, str] | None = None, *args: str):
    started = time.monotonic()
    proc = run(["python", "-m", module, *args], repo, check=False, env=env)
    return proc, time.monotonic() - started


def assert_one_line(proc, *words: str) -> None:
    assert proc.returncode == 1, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    line = proc.stderr.strip().splitlines()[-1]
    assert line.startswith("error: "), proc.stderr[-2000:]
    for w in words:
        assert w in proc.stderr, proc.stderr[-2000:]


def assert_untouched(repo) -> None:
    """No stage ran, no model was registered."""
    import mlflow

    client = mlflow.MlflowClient(f"sqlite:///{repo / 'mlflow.db'}")
    assert client.search_registered_models() == []


@pytest.mark.bad_input(stage="flows", kind="params")
@pytest.mark.parametrize("module", ["flows.retrain", "flows.relabel", "flows.loop"])
def test_bad_settings_are_listed_before_any_work(repo, module):
    set_params(repo, registry={"policy.confidence": 1.5, "model_name": "no spaces allowed"},
               flows={"retrain_cron": "every monday"})
    proc, seconds = flow_cli(repo, module)
    assert_one_line(proc, "3 problems", "registry.policy.confidence", "registry.model_name",
                    "not a cron expression")
    assert ran_stages(proc) == [] and seconds < FAST_S
    assert_untouched(repo)


@pytest.mark.bad_input(stage="flows", kind="params")
def test_an_unknown_key_names_the_known_ones(repo):
    set_params(repo, registry={"policy.confidense": 0.9})
    proc, _ = flow_cli(repo, "flows.retrain")
    assert_one_line(proc, "registry.policy.confidense: unknown key", "did you mean 'confidence'")


@pytest.mark.bad_input(stage="flows", kind="service")
def test_retrain_with_mlflow_down_stops_before_any_stage(repo):
    proc, seconds = flow_cli(repo, "flows.retrain",
                             {"MLFLOW_TRACKING_URI": f"http://127.0.0.1:{free_port()}"})
    assert_one_line(proc, "MLflow tracking at http://127.0.0.1", "connection refused")
    assert ran_stages(proc) == [] and seconds < FAST_S


@pytest.mark.bad_input(stage="flows", kind="service")
def test_retrain_with_a_silent_mlflow_fails_within_its_timeout(repo, silent_url):
    proc, seconds = flow_cli(repo, "flows.retrain", {"MLFLOW_TRACKING_URI": silent_url})
    assert_one_line(proc, "no answer within 5 s")
    assert seconds < FAST_S + 10


@pytest.mark.bad_input(stage="flows", kind="service")
def test_relabel_with_label_studio_down_stops_before_any_stage(repo):
    proc, seconds = flow_cli(repo, "flows.relabel",
                             {"LABEL_STUDIO_URL": f"http://127.0.0.1:{free_port()}",
                              "LABEL_STUDIO_API_KEY": "x" * 20})
    assert_one_line(proc, "Label Studio at http://127.0.0.1", "connection refused")
    assert ran_stages(proc) == [] and seconds < FAST_S


@pytest.mark.bad_input(stage="flows", kind="service")
@pytest.mark.parametrize("where", ["unset", "closed", "silent"])
def test_serve_needs_a_prefect_server(repo, where, silent_url):
    url = {"unset": "", "closed": f"http://127.0.0.1:{free_port()}/api",
           "silent": f"{silent_url}/api"}[where]
    proc, seconds = flow_cli(repo, "flows.serve", {"PREFECT_API_URL": url})
    words = {"unset": "PREFECT_API_URL is not set", "closed": "cannot connect",
             "silent": "no answer within 5 s"}[where]
    assert_one_line(proc, words, "scripts/prefect.sh start")
    assert seconds < FAST_S + 5


@pytest.mark.bad_input(stage="flows", kind="service")
def test_webhook_needs_label_studio(repo, silent_url):
    proc, _ = flow_cli(repo, "flows.webhook", {"PREFECT_API_URL": ""})
    assert_one_line(proc, "PREFECT_API_URL is not set")


@pytest.mark.bad_input(stage="flows", kind="data")
def test_registering_a_run_the_store_does_not_hold_is_refused(repo, tmp_path, monkeypatch):
    """The model folder names an MLflow run of another store: a clear error, nothing
    registered."""
    from esgar.data.table import load_table
    from esgar.integrations.registry import RegistryError
    from esgar.promotion import register_and_decide
    from esgar.registry import Policy

    monkeypatch.chdir(repo)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'other.db'}")
    run_id = json.loads((repo / "models/esgar/model.json").read_text())["mlflow_run_id"]
    policy = Policy(confidence=0.95, min_gain=0, max_attribute_drop=0.02, bootstrap=10, seed=0)
    with pytest.raises(RegistryError, match=f"MLflow run {run_id} is not in"):
        register_and_decide("t-bad", run_id, load_table("data/prepared/samples.parquet"),
                            "data/masks", policy, {}, {})
    import mlflow

    assert mlflow.MlflowClient(f"sqlite:///{tmp_path / 'other.db'}").search_registered_models(
        filter_string="name = 't-bad'") == []
