"""The webhook receiver's counting and its HTTP side, on loopback with a run starter the test
controls (the real one, against Label Studio and Prefect, is in tests/test_deployments.py)."""

from __future__ import annotations

import threading

import httpx
import pytest

from flows.webhook import Receiver, RetrainTrigger, annotations_in


def test_annotations_are_counted_from_the_payloads():
    assert annotations_in({"action": "ANNOTATION_CREATED", "annotation": {"id": 1}}) == 1
    assert annotations_in({"action": "ANNOTATIONS_CREATED", "annotation": [{}, {}, {}]}) == 3
    assert annotations_in({"action": "ANNOTATION_UPDATED", "annotation": {"id": 1}}) == 1
    assert annotations_in({"action": "TASKS_CREATED", "tasks": [{}]}) == 0
    assert annotations_in({}) == 0


def test_a_run_starts_at_the_threshold_and_never_two_at_once():
    started, busy = [], {"now": False}
    counter = RetrainTrigger(3, start=lambda: started.append(len(started)) or f"run{len(started)}",
                      active=lambda last: busy["now"])
    assert counter.add(2) is None and counter.pending == 2
    assert counter.add(1) == "run1" and counter.pending == 0
    busy["now"] = True                           # run1 still going
    assert counter.add(5) is None and counter.pending == 5
    assert counter.maybe_start() is None
    busy["now"] = False                          # over: the waiting ones start the next
    assert counter.maybe_start() == "run2" and counter.runs == ["run1", "run2"]


@pytest.fixture
def receiver():
    def broken() -> str:
        raise RuntimeError("Prefect at http://127.0.0.1:9/api: connection refused")
    server = Receiver(("127.0.0.1", 0), RetrainTrigger(1, start=broken, active=lambda last: False))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_a_failed_start_answers_503_and_the_receiver_keeps_listening(receiver):
    event = {"action": "ANNOTATION_CREATED", "annotation": {"id": 7}}
    answer = httpx.post(receiver.url, json=event, timeout=5)
    assert answer.status_code == 503 and answer.json()["counted"] == 1
    health = httpx.get(receiver.url + "health", timeout=5).json()
    assert health["pending"] == 1 and health["runs"] == []  # kept for the next try
    assert httpx.post(receiver.url, content=b"not json", timeout=5).status_code == 400
    other = httpx.post(receiver.url, json={"action": "PROJECT_UPDATED"}, timeout=5)
    assert other.status_code == 200 and other.json()["counted"] == 0
