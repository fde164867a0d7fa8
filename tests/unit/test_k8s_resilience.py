"""The API server being unreachable is an ordinary, retried condition: never a crash, never a hang on stop."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
import urllib3

from metallb_fast.commands.common import run_in_worker
from metallb_fast.controller.loop import Controller
from metallb_fast.k8s.client import ApiError, ApiUnavailable, KubeClient
from metallb_fast.k8s.connection import Connection
from metallb_fast.lab.waiting import wait_for
from metallb_fast.speaker.loop import Speaker, SpeakerOptions


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class CountingClient(KubeClient):
    """A client of a closed port that counts the requests made through it."""

    requests = 0

    def request(self, *args: Any, **kwargs: Any) -> Any:
        self.requests += 1
        return super().request(*args, **kwargs)


def unreachable_client() -> CountingClient:
    return CountingClient(Connection(f"https://127.0.0.1:{closed_port()}", urllib3.PoolManager(retries=0)))


def stops_promptly(thread: threading.Thread, stop: Callable[[], None]) -> None:
    started = time.monotonic()
    stop()
    thread.join(timeout=10)
    assert not thread.is_alive()
    assert time.monotonic() - started < 10


def test_unreachable_server_raises_api_unavailable() -> None:
    client = unreachable_client()
    with pytest.raises(ApiUnavailable) as caught:
        client.get("/api/v1/services")
    assert isinstance(caught.value, ApiError) and caught.value.status == 0
    assert "unreachable" in str(caught.value)


def test_controller_without_server_keeps_retrying_and_stops_promptly() -> None:
    controller = Controller(unreachable_client())
    thread = threading.Thread(target=controller.run, daemon=True)
    thread.start()
    wait_for(lambda: controller.services.reconnects >= 2 or not thread.is_alive(), timeout=20, what="reconnects")
    assert thread.is_alive(), "the controller gave up instead of retrying"
    stops_promptly(thread, controller.stop)


def test_speaker_started_without_server_keeps_retrying_and_stops_promptly() -> None:
    # Defect K: the speaker's start-up discovery of the EndpointSlice version was one unretried call.
    client = unreachable_client()
    speaker = Speaker(client, PythonResponderStandIn(), SpeakerOptions(node_name="node-a"))
    failures: list[BaseException] = []

    def run() -> None:
        try:
            speaker.run()
        except BaseException as error:
            failures.append(error)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    wait_for(lambda: client.requests >= 3 or not thread.is_alive(), timeout=20, what="three start-up attempts")
    assert not failures, f"the speaker crashed: {failures!r}"
    assert thread.is_alive(), "the speaker gave up instead of retrying"
    stops_promptly(thread, speaker.stop)
    assert not failures


class PythonResponderStandIn:
    """A responder that records what the speaker asks of it (no sockets: this test is about the API server)."""

    backend = "stand-in"

    def __init__(self) -> None:
        self.synced: list[dict[Any, bytes]] = []

    def sync(self, owned: dict[Any, bytes]) -> None:
        self.synced.append(dict(owned))

    def close(self) -> None:
        pass

    def set_liveness_deadline(self, deadline_ns: int | None) -> None:
        pass


def test_run_in_worker_reports_a_dead_loop_as_failure() -> None:
    def crash() -> None:
        raise RuntimeError("boom")

    assert run_in_worker(crash, lambda: None) == 1
    assert run_in_worker(lambda: None, lambda: None) == 0


def test_latest_state_writer_retries_and_skips_superseded_states() -> None:
    from metallb_fast.k8s.writers import LatestStateWriter

    written: list[int] = []
    failures_left = [2]
    gate = threading.Event()

    def apply(state: int) -> None:
        gate.wait(5)
        if failures_left[0]:
            failures_left[0] -= 1
            raise ApiUnavailable("PATCH", "/x", OSError("connection refused"))
        written.append(state)

    writer = LatestStateWriter("test", apply, max_delay=0.05)
    writer.submit(1)
    writer.submit(2)  # supersedes 1 if 1 was not picked up yet
    writer.submit(3)
    gate.set()
    assert writer.flush(timeout=10)
    writer.close()
    assert written[-1] == 3  # the latest state always lands, after the failures were retried
    assert writer.failures == 2
    assert written == sorted(written) and len(written) <= 2
