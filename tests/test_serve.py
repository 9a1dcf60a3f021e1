"""The registered model served by `mlflow models serve` on loopback answers a POST of sketches
(base64 image bytes, with their masks) with class names and probabilities."""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import time

import numpy as np
import pytest
import requests

from esgar import schema
from esgar.integrations import registry as reg
from tests.helpers import VENV_BIN, free_port, stage_env
from tests.test_predict import split_rows, stage_probs

pytestmark = pytest.mark.slow
START_TIMEOUT_S = 180


def b64(path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


def test_served_champion_answers_a_posted_sketch(repo, monkeypatch):
    monkeypatch.chdir(repo)
    run_id = json.loads((repo / "models/esgar/model.json").read_text())["mlflow_run_id"]
    c = reg.client()
    version, _ = reg.register(c, "t-serve", run_id, {})
    reg.set_alias(c, "t-serve", reg.CHAMPION, version.version)

    port = free_port()
    env = {**stage_env(), "MLFLOW_TRACKING_URI": os.environ["MLFLOW_TRACKING_URI"]}
    server = subprocess.Popen(
        [str(VENV_BIN / "mlflow"), "models", "serve", "-m", "models:/t-serve@champion",
         "--env-manager", "local", "-h", "127.0.0.1", "-p", str(port), "-w", "1"],
        cwd=repo, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if server.poll() is not None:
                pytest.fail(f"mlflow models serve exited:\n{server.stdout.read()[-4000:]}")
            try:
                if requests.get(f"{url}/ping", timeout=2).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            assert time.monotonic() < deadline, "the model server did not start in time"
            time.sleep(1)

        rows = split_rows(repo, 2)
        parsing = repo / "data/fs2k/parsing/bisenet"
        records = [{"sketch": b64(repo / r.sketch_path),
                    "masks": b64(parsing / f"{r.image_name}.png")} for r in rows.itertuples()]
        records.append({"sketch": base64.b64encode(b"not an image").decode(),
                        "masks": records[0]["masks"]})
        answer = requests.post(f"{url}/invocations", json={"dataframe_records": records},
                               timeout=60)
        assert answer.status_code == 200, answer.text[:2000]
        predictions = answer.json()["predictions"]
        assert [p["sketch"] for p in predictions] == ["0", "1", "2"]
        assert predictions[0]["error"] == "" and "cannot read the image" in predictions[2]["error"]
        want = stage_probs(repo, list(rows.sample_id))
        for a in schema.ATTRIBUTES:
            got = np.array([[p[f"{a.name}.{c}"] for c in a.classes] for p in predictions[:2]])
            np.testing.assert_allclose(got, want[a.name], atol=1e-5, err_msg=a.name)
            assert [p[a.name] for p in predictions[:2]] == [a.classes[k]
                                                            for k in want[a.name].argmax(1)]

        bad = requests.post(f"{url}/invocations", json={"dataframe_records": [{"photo": "x"}]},
                            timeout=60)
        assert bad.status_code == 400 and "sketch" in bad.text  # the schema names what is missing
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
