"""The loop's surfaces against hostile but realistic servers and text, on 127.0.0.1: a server
that drips a byte every few seconds, one whose list never ends, credentials in URLs, malformed
exports, formulas in annotators' names. Each ends in one line, within a bounded time, nothing
lost, no secret printed (issue 25)."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pandas as pd
import pytest

from esgar.active.answers import read_answers
from esgar.connectivity import redact, redact_text
from esgar.integrations import labelstudio as ls
from esgar.io import spreadsheet_safe
from tests.helpers import free_port, run

CHECK_S = 5  # a service check's bound
SLACK_S = 15  # scheduling on a busy 2-core machine
SECRET = "s3cret-PASSWORD"


@contextlib.contextmanager
def drip_server(interval: float = 2.0) -> Iterator[str]:
    """`http://127.0.0.1:<port>`: it answers every request with a status line and then one byte
    every `interval` seconds, for ever: each read is quick, the answer never ends."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.2)
    stop = threading.Event()

    def drip(conn: socket.socket) -> None:
        with contextlib.suppress(OSError):
            conn.recv(65536)
            conn.sendall(b"HTTP/1.1 200 OK\r\n")
            while not stop.wait(interval):
                conn.sendall(b"X")
        conn.close()

    def accept() -> None:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError, OSError):
                conn, _ = server.accept()
                threading.Thread(target=drip, args=(conn,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.getsockname()[1]}"
    finally:
        stop.set()
        server.close()


class _Endless(BaseHTTPRequestHandler):
    """A Label Studio look-alike whose project list never ends (each page points to the next)."""

    def _json(self, body: object) -> None:
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:  # noqa: N802
        if self.path.startswith("/health"):
            self._json({"status": "UP"})
        elif self.path.startswith("/api/current-user/whoami"):
            self._json({"id": 1, "email": "a@b.c", "username": "a"})
        elif self.path.startswith("/api/projects"):
            page = int((self.path.split("page=")[1].split("&")[0]) if "page=" in self.path
                       else 1)
            self.server.pages += 1  # type: ignore[attr-defined]
            self._json({"count": 10**9, "next": f"/api/projects?page={page + 1}",
                        "previous": None,
                        "results": [{"id": page * 1000 + k, "title": f"p{k}"}
                                    for k in range(1000)]})
        else:
            self.send_error(404)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def endless_url() -> Iterator[tuple[str, ThreadingHTTPServer]]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Endless)
    server.pages = 0  # type: ignore[attr-defined]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", server
    finally:
        server.shutdown()
        server.server_close()


def one_line(proc, took: float, within: float) -> str:
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, proc.stderr[-3000:]
    assert took < within, f"took {took:.0f} s, more than {within:.0f} s: {errors[0]}"
    return errors[0]


def stage(repo: Path, name: str, env: dict, timeout: float = 180):
    """`python -m name` in `repo`: (the finished process, its seconds)."""
    started = time.monotonic()
    proc = run(["python", "-m", name], repo, check=False, env=env, timeout=timeout)
    return proc, time.monotonic() - started


def refused(repo: Path, name: str, variable: str, suffix: str = "") -> float:
    """Seconds `name` takes to fail on a closed port (its imports and checks, no waiting):
    what a hostile server may add to is its own bound, whatever the machine's load."""
    closed = f"http://127.0.0.1:{free_port()}{suffix}"
    proc, took = stage(repo, name, {variable: closed, "LABEL_STUDIO_API_KEY": "k"})
    line = one_line(proc, took, float("inf"))
    assert "cannot connect" in line or "connection refused" in line
    return took


@pytest.mark.bad_input(stage="pull", kind="service")
def test_a_dripping_label_studio_is_cut_off_at_the_deadline(repo_copy):
    before = (repo_copy / "data/relabels/snapshot.csv").read_bytes()
    baseline = refused(repo_copy, "pipeline.pull", "LABEL_STUDIO_URL")
    with drip_server() as url:
        proc, took = stage(repo_copy, "pipeline.pull",
                           {"LABEL_STUDIO_URL": url, "LABEL_STUDIO_API_KEY": "k"})
    line = one_line(proc, took, baseline + CHECK_S + SLACK_S)
    assert "no answer within 5 s" in line
    assert (repo_copy / "data/relabels/snapshot.csv").read_bytes() == before


@pytest.mark.bad_input(stage="train", kind="service")
def test_a_dripping_mlflow_is_cut_off_at_the_deadline(repo_copy):
    baseline = refused(repo_copy, "pipeline.train", "MLFLOW_TRACKING_URI")
    with drip_server() as url:
        proc, took = stage(repo_copy, "pipeline.train", {"MLFLOW_TRACKING_URI": url})
    line = one_line(proc, took, baseline + CHECK_S + SLACK_S)
    assert "no answer within 5 s" in line and url in line


@pytest.mark.bad_input(stage="pull", kind="service")
def test_a_list_that_never_ends_is_refused(repo_copy, endless_url):
    url, server = endless_url
    baseline = refused(repo_copy, "pipeline.pull", "LABEL_STUDIO_URL")
    proc, took = stage(repo_copy, "pipeline.pull",
                       {"LABEL_STUDIO_URL": url, "LABEL_STUDIO_API_KEY": "k"})
    line = one_line(proc, took, baseline + 30 + SLACK_S)  # a call's bound: 30 s
    assert "listing projects" in line and ("more than" in line or "no answer within" in line)
    pages = server.pages
    time.sleep(2)
    assert server.pages <= pages + 1  # nothing goes on asking after the stage ended


FLOWS = ["flows.retrain", "flows.relabel", "flows.loop", "flows.serve"]


@pytest.mark.bad_input(stage="flows", kind="service")
@pytest.mark.parametrize("module", FLOWS)
def test_prefect_that_never_answers_or_refuses_is_one_line(repo_copy, silent_url, module):
    silent_prefect_is_one_line(repo_copy, silent_url, module)


@pytest.mark.bad_input(stage="webhook", kind="service")
def test_the_webhook_receiver_checks_prefect_before_it_listens(repo_copy, silent_url):
    silent_prefect_is_one_line(repo_copy, silent_url, "flows.webhook")


def silent_prefect_is_one_line(repo_copy: Path, silent_url: str, module: str) -> None:
    baseline = refused(repo_copy, module, "PREFECT_API_URL", "/api")
    proc, took = stage(repo_copy, module, {"PREFECT_API_URL": silent_url + "/api"})
    line = one_line(proc, took, baseline + CHECK_S + SLACK_S)
    assert "Prefect at" in line and "no answer within 5 s" in line


# ---- secrets -------------------------------------------------------------------------------

def test_the_redactor():
    assert redact(f"http://user:{SECRET}@127.0.0.1:8080/api?x=1&token=abc") == \
        "http://***@127.0.0.1:8080/api?x=1&token=***"
    assert redact("https://m.example/FS2K.zip?X-Amz-Signature=ab&X-Amz-Expires=60") == \
        "https://m.example/FS2K.zip?X-Amz-Signature=***&X-Amz-Expires=60"
    assert redact("sqlite:///mlflow.db") == "sqlite:///mlflow.db"
    assert SECRET not in redact_text(f"failed at http://a:{SECRET}@h:1/x, retry")


@pytest.mark.bad_input(stage="pull", kind="security")
@pytest.mark.parametrize(("module", "variable", "path"), [
    ("pipeline.pull", "LABEL_STUDIO_URL", ""),
    ("pipeline.train", "MLFLOW_TRACKING_URI", ""),
    ("flows.retrain", "PREFECT_API_URL", "/api"),
])
def test_no_password_in_a_services_url_is_printed(repo_copy, module, variable, path):
    url = f"http://user:{SECRET}@127.0.0.1:{free_port()}{path}"
    proc, took = stage(repo_copy, module, {variable: url, "LABEL_STUDIO_API_KEY": "k"})
    line = one_line(proc, took, float("inf"))  # a closed port: no bound to measure here
    assert "127.0.0.1" in line and "***@" in line
    assert SECRET not in proc.stdout + proc.stderr


@pytest.mark.bad_input(stage="download", kind="security")
def test_no_token_of_a_mirror_url_is_printed(repo_copy):
    url = f"http://127.0.0.1:{free_port()}/FS2K.zip?token={SECRET}"
    params = repo_copy / "params.yaml"
    params.write_text(params.read_text().replace('  source: auto', '  source: url', 1)
                      .replace('  url: ""', f'  url: "{url}"', 1))
    proc, took = stage(repo_copy, "pipeline.download", {})
    one_line(proc, took, float("inf"))
    assert SECRET not in proc.stdout + proc.stderr


# ---- what annotators and exports bring ---------------------------------------------------

@pytest.mark.bad_input(stage="pull", kind="relabel")
def test_a_malformed_export_is_checked_item_by_item():
    good = {"id": 1, "data": {"sample_id": "photo1_image0001", "questions": ["earring"],
                              "labels": {"earring": "with_earring"}},
            "annotations": [{"id": 10, "completed_by": 5, "created_at": "2026-11-25T10:00:00Z",
                             "updated_at": "2026-11-25T10:00:00Z", "lead_time": 4.0,
                             "result": [{"from_name": "earring", "to_name": "sketch",
                                         "type": "choices", "origin": "manual",
                                         "value": {"choices": ["without_earring"]}}]}]}
    raw = [good,
           {"data": {}},  # no id
           {"id": 3, "annotations": {"not": "a list"}},
           {"id": 4, "annotations": [{"id": 40, "updated_at": "not a date"}]},
           {"id": 5, "annotations": [{"id": 50, "lead_time": "slow"}, "nonsense"]}]
    tasks, problems = ls.check_export(raw, {5: "a@x"})
    assert [t["id"] for t in tasks] == [1, 4, 5]
    assert [len(t["annotations"]) for t in tasks] == [1, 0, 0]
    assert len(problems) == 5
    assert problems[0].startswith("exported task #1: id:") and "left out" in problems[0]
    assert problems[1].startswith("exported task 3: annotations:")
    assert problems[2].startswith("task 4: annotation 40: updated_at:")
    assert problems[3].startswith("task 5: annotation 50: lead_time:")
    answers, _ = read_answers(tasks)  # the good one still counts
    assert answers[["sample_id", "answer", "annotator"]].values.tolist() == [
        ["photo1_image0001", "without_earring", "a@x"]]
    with pytest.raises(ls.LabelStudioUnavailable, match="not a list of tasks"):
        ls.check_export({"tasks": raw}, {})


@pytest.mark.bad_input(stage="pull", kind="security")
def test_formulas_from_annotators_cannot_run_in_a_spreadsheet():
    task = {"id": 1, "data": {"sample_id": "photo1_image0001", "questions": ["earring"],
                              "labels": {"earring": "with_earring"}},
            "meta": {}, "annotations": [{
                "id": 10, "completed_by": '=HYPERLINK("http://evil.example","x")',
                "created_at": "2026-11-25T10:00:00Z", "updated_at": "2026-11-25T10:00:00Z",
                "was_cancelled": False, "lead_time": 4.0,
                "result": [{"from_name": "earring", "to_name": "sketch", "type": "choices",
                            "origin": "manual", "value": {"choices": ["without_earring"]}}]}]}
    answers, _ = read_answers([task])
    written = spreadsheet_safe(answers, ["annotator"]).to_csv(index=False)
    back = pd.read_csv(pd.io.common.StringIO(written), dtype=str)
    assert back.loc[0, "annotator"].startswith("'=HYPERLINK")
    for cell in back.loc[0]:
        assert not str(cell).startswith(("=", "+", "-", "@"))
    # and a sample id that is not one of the pipeline's is refused
    hostile = {**task, "data": {**task["data"], "sample_id": "=cmd|' /C calc'!A0"}}
    answers, problems = read_answers([hostile])
    assert answers.empty and "is no sample id of the pipeline" in problems[0]


def test_no_password_in_the_flows_reports(monkeypatch):
    from flows.report import labelstudio_link, mlflow_model_link, mlflow_run_link

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://user:{SECRET}@127.0.0.1:{free_port()}")
    monkeypatch.setenv("LABEL_STUDIO_URL", f"http://user:{SECRET}@127.0.0.1:{free_port()}")
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", "k")
    shown = [mlflow_run_link("0123456789abcdef"), mlflow_model_link("esgar-fs2k", "3"),
             labelstudio_link("esgar")]
    assert all("***@127.0.0.1" in line for line in shown[:2]), shown
    assert "Label Studio unavailable" in shown[2], shown
    assert not any(SECRET in line for line in shown), shown


def test_thousands_of_warnings_are_a_few_lines():
    from esgar.log import summarize

    lines = [f"snapshot.csv row {k}: sample 'photo1_image{k:04d}' is not in the table"
             for k in range(50_000)]
    lines += [f"snapshot.csv row {k}: class 'x{k}' is no class of hair" for k in range(7)]
    shown = summarize(lines)
    assert len(shown) == 3 + 3 + 2, shown
    assert shown[:3] == lines[:3]
    assert "... and 49997 more like: sample * is not in the table" in shown
    assert "... and 4 more like: class * is no class of hair" in shown
