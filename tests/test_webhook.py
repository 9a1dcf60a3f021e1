"""The webhook receiver's counting and its HTTP side, on loopback with a run starter the test
controls (the real one, against Label Studio and Prefect, is in tests/test_deployments.py)."""

from __future__ import annotations

import socket
import time

import httpx
import pytest

from esgar.errors import ConfigError
from flows.webhook import (
    MAX_BODY,
    READ_TIMEOUT_S,
    SECRET_HEADER,
    Receiver,
    RetrainTrigger,
    annotations_in,
)


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
    server = Receiver("127.0.0.1", 0, RetrainTrigger(1, start=broken, active=lambda last: False))
    server.start()
    yield server
    server.stop()


def test_a_failed_start_answers_503_and_the_receiver_keeps_listening(receiver):
    event = {"action": "ANNOTATION_CREATED", "annotation": {"id": 7}}
    answer = httpx.post(receiver.url, json=event, timeout=5)
    assert answer.status_code == 503 and answer.json()["counted"] == 1
    health = httpx.get(receiver.url + "health", timeout=5).json()
    assert health["pending"] == 1 and health["runs"] == []  # kept for the next try
    assert httpx.post(receiver.url, content=b"not json", timeout=5).status_code == 400
    other = httpx.post(receiver.url, json={"action": "PROJECT_UPDATED"}, timeout=5)
    assert other.status_code == 200 and other.json()["counted"] == 0
    assert httpx.get(receiver.url + "elsewhere", timeout=5).status_code == 404


@pytest.mark.bad_input(stage="webhook", kind="security")
def test_hostile_requests_get_4xx_and_the_receiver_stays_up(receiver):
    deep = b"[" * 100_000 + b"]" * 100_000
    assert httpx.post(receiver.url, content=deep, timeout=5).status_code == 400
    assert httpx.post(receiver.url, json=[1, 2], timeout=5).status_code == 400  # no object
    big = b"{" + b" " * (MAX_BODY + 10) + b"}"
    assert httpx.post(receiver.url, content=big, timeout=10).status_code == 413
    assert httpx.get(receiver.url + "health", timeout=5).status_code == 200


@pytest.mark.bad_input(stage="webhook", kind="security")
def test_slow_or_silent_connections_are_closed(receiver, monkeypatch):
    host, port = receiver.url.split("//")[1].rstrip("/").split(":")
    silent = [socket.create_connection((host, int(port))) for _ in range(20)]
    slow = socket.create_connection((host, int(port)))
    slow.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
    started = time.monotonic()
    try:
        # served meanwhile: the silent ones hold no one up
        assert httpx.get(receiver.url + "health", timeout=5).status_code == 200
        for conn in silent:  # closed by the receiver once READ_TIMEOUT_S has passed
            conn.settimeout(READ_TIMEOUT_S + 10)
            assert conn.recv(1) == b""
        slow.settimeout(READ_TIMEOUT_S + 10)
        assert b" 408 " in slow.recv(200)  # the body never came whole
        assert time.monotonic() - started < READ_TIMEOUT_S + 10
    finally:
        for conn in [*silent, slow]:
            conn.close()


@pytest.mark.bad_input(stage="webhook", kind="security")
def test_a_secret_is_required_when_set_and_beyond_loopback():
    trigger = RetrainTrigger(5, start=lambda: "run", active=lambda last: False)
    with pytest.raises(ConfigError, match="0.0.0.0.*not a loopback address.*ESGAR_WEBHOOK"):
        Receiver("0.0.0.0", 0, trigger)
    guarded = Receiver("127.0.0.1", 0, trigger, secret="s3cret-value")
    guarded.start()
    try:
        event = {"action": "ANNOTATION_CREATED", "annotation": {"id": 7}}
        assert httpx.post(guarded.url, json=event, timeout=5).status_code == 401
        wrong = httpx.post(guarded.url, json=event, timeout=5, headers={SECRET_HEADER: "no"})
        assert wrong.status_code == 401 and trigger.pending == 0
        right = httpx.post(guarded.url, json=event, timeout=5,
                           headers={SECRET_HEADER: "s3cret-value"})
        assert right.status_code == 200 and trigger.pending == 1
    finally:
        guarded.stop()


def test_health_says_ready_only_once_the_webhook_is_registered():
    # an annotation made before Label Studio knows the receiver would never be posted
    trigger = RetrainTrigger(5, start=lambda: "run", active=lambda last: False)
    receiver = Receiver("127.0.0.1", 0, trigger, ready=False)
    receiver.start()
    try:
        waiting = httpx.get(receiver.url + "health", timeout=5)
        assert waiting.status_code == 503 and waiting.json()["ready"] is False
        receiver.ready_event.set()
        assert httpx.get(receiver.url + "health", timeout=5).json()["ready"] is True
    finally:
        receiver.stop()
