"""Bad inputs against the flows' command lines: one `error:` line within seconds, before any
stage runs or any model is registered (counted by bench/bad_inputs.py). One case runs the real
`python -m flows.retrain`; the others call the same `main` in this process (the imports, ~10 s
a process, are paid once)."""

from __future__ import annotations

import importlib
import json
import sys
import time
from types import SimpleNamespace

import pytest

from flows.cli import run_cli
from tests.helpers import free_port, ran_stages, run, set_params

pytestmark = pytest.mark.slow
FAST_S = 30.0  # python start, imports, and the bounded checks, on a busy machine


def flow_cli(repo, module: str, env: dict[str, str] | None = None, *args: str):
    """`python -m MODULE ARGS` in `repo`: (completed process, seconds)."""
    started = time.monotonic()
    proc = run(["python", "-m", module, *args], repo, check=False, env=env)
    return proc, time.monotonic() - started


@pytest.fixture
def flow_main(monkeypatch, capsys):
    """`flow_main(repo, module, env, *args)`: MODULE's command line run in this process, in
    `repo`, with `env` set ("" unsets); (result with returncode/stderr, seconds)."""
    def call(repo, module: str, env: dict[str, str] | None = None, *args: str):
        main = importlib.import_module(module).main
        for key, value in (env or {}).items():
            if value:
                monkeypatch.setenv(key, value)
            else:
                monkeypatch.delenv(key, raising=False)
        monkeypatch.chdir(repo)
        monkeypatch.setattr(sys, "argv", [module, *args])
        capsys.readouterr()
        started = time.monotonic()
        with pytest.raises(SystemExit) as exit:
            run_cli(main)
        out = capsys.readouterr()
        return (SimpleNamespace(returncode=exit.value.code, stdout=out.out, stderr=out.err),
                time.monotonic() - started)
    return call


def assert_one_line(proc, *words: str) -> None:
    assert proc.returncode == 1, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, proc.stderr[-3000:]
    message = proc.stderr[proc.stderr.index("error: "):]  # a settings error lists each problem
    for w in words:
        assert w in message, message


def assert_untouched(repo) -> None:
    """No stage ran, no model was registered."""
    import mlflow

    client = mlflow.MlflowClient(f"sqlite:///{repo / 'mlflow.db'}")
    assert client.search_registered_models() == []


BAD_SETTINGS = {"registry": {"policy.confidence": 1.5, "model_name": "no spaces allowed"},
                "flows": {"retrain_cron": "every monday", "work_pool": "two words"}}
SETTINGS_WORDS = ("4 problems", "registry.policy.confidence", "registry.model_name",
                  "not a cron expression", "flows.work_pool")


@pytest.mark.bad_input(stage="flows", kind="params")
def test_bad_settings_are_listed_before_any_work(repo):
    set_params(repo, **BAD_SETTINGS)
    proc, seconds = flow_cli(repo, "flows.retrain")
    assert_one_line(proc, *SETTINGS_WORDS)
    assert ran_stages(proc) == [] and seconds < FAST_S
    assert_untouched(repo)


@pytest.mark.bad_input(stage="flows", kind="params")
@pytest.mark.parametrize("module", ["flows.relabel", "flows.loop", "flows.serve",
                                    "flows.webhook", "flows.deploy", "flows.worker"])
def test_every_flow_command_checks_the_settings(repo, module, flow_main):
    set_params(repo, **BAD_SETTINGS)
    proc, _ = flow_main(repo, module, {"PREFECT_API_URL": "http://127.0.0.1:9/api"})
    assert_one_line(proc, *SETTINGS_WORDS)
    assert_untouched(repo)


@pytest.mark.bad_input(stage="flows", kind="params")
def test_an_unknown_key_names_the_known_ones(repo, flow_main):
    set_params(repo, registry={"policy.confidense": 0.9})
    proc, _ = flow_main(repo, "flows.retrain")
    assert_one_line(proc, "registry.policy.confidense: unknown key", "did you mean 'confidence'")


@pytest.mark.bad_input(stage="flows", kind="service")
def test_retrain_with_mlflow_down_stops_before_any_stage(repo, flow_main):
    proc, seconds = flow_main(repo, "flows.retrain",
                             {"MLFLOW_TRACKING_URI": f"http://127.0.0.1:{free_port()}"})
    assert_one_line(proc, "MLflow tracking at http://127.0.0.1", "connection refused")
    assert seconds < FAST_S


@pytest.mark.bad_input(stage="flows", kind="service")
def test_retrain_with_a_silent_mlflow_fails_within_its_timeout(repo, flow_main, silent_url):
    proc, seconds = flow_main(repo, "flows.retrain", {"MLFLOW_TRACKING_URI": silent_url})
    assert_one_line(proc, "no answer within 5 s")
    assert seconds < FAST_S + 10


@pytest.mark.bad_input(stage="flows", kind="service")
def test_relabel_with_label_studio_down_stops_before_any_stage(repo, flow_main):
    proc, seconds = flow_main(repo, "flows.relabel",
                             {"LABEL_STUDIO_URL": f"http://127.0.0.1:{free_port()}",
                              "LABEL_STUDIO_API_KEY": "x" * 20})
    assert_one_line(proc, "Label Studio at http://127.0.0.1", "connection refused")
    assert ran_stages(proc) == [] and seconds < FAST_S


@pytest.mark.bad_input(stage="flows", kind="service")
@pytest.mark.parametrize("where", ["unset", "closed", "silent"])
@pytest.mark.parametrize("module", ["flows.serve", "flows.deploy", "flows.worker"])
def test_serving_deploying_and_working_need_a_prefect_server(repo, flow_main, module, where,
                                                            silent_url):
    url = {"unset": "", "closed": f"http://127.0.0.1:{free_port()}/api",
           "silent": f"{silent_url}/api"}[where]
    proc, seconds = flow_main(repo, module, {"PREFECT_API_URL": url})
    words = {"unset": "PREFECT_API_URL is not set", "closed": "cannot connect",
             "silent": "no answer within 5 s"}[where]
    assert_one_line(proc, words, "scripts/prefect.sh start")
    assert seconds < FAST_S + 5


@pytest.mark.bad_input(stage="flows", kind="service")
def test_webhook_needs_the_prefect_api_url(repo, flow_main):
    """Its Label Studio failures, which need a live Prefect server first, are in
    tests/test_deployments.py."""
    proc, _ = flow_main(repo, "flows.webhook", {"PREFECT_API_URL": ""})
    assert_one_line(proc, "PREFECT_API_URL is not set")


@pytest.mark.bad_input(stage="flows", kind="data")
def test_registering_a_run_the_store_does_not_hold_is_refused(repo, tmp_path, monkeypatch):
    """The model folder names an MLflow run of another store: a clear error, nothing
    registered."""
    from esgar.data.table import load_table
    from esgar.integrations.registry import RegistryError
    from esgar.promotion.decide import register_and_decide
    from esgar.promotion.policy import Policy

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
