"""/metrics, /healthz and /readyz answer for what they are (prometheus_client alone answers metrics everywhere)."""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest

from metallb_fast.obs import http
from metallb_fast.obs.health import Health


@pytest.fixture
def served() -> Iterator[tuple[Health, str]]:
    health = Health(stall_after_s=0.2)
    server = http.serve(0, "127.0.0.1", health)
    try:
        yield health, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def test_each_path_answers_for_itself(served: tuple[Health, str]) -> None:
    health, base = served
    status, body = get(f"{base}/metrics")
    assert status == 200 and "metallb_k8s_client_updates_total" in body
    assert get(f"{base}/readyz") == (503, "failed: starting: caches not synced yet\n")
    assert get(f"{base}/healthz")[0] == 200
    assert get(f"{base}/nothing-here")[0] == 404
    health.set_ready(True, "caches synced")
    assert get(f"{base}/readyz") == (200, "ok: caches synced\n")


def test_a_loop_that_stops_beating_fails_liveness(served: tuple[Health, str]) -> None:
    health, base = served
    health.beat()
    assert get(f"{base}/healthz")[0] == 200
    time.sleep(0.3)
    status, body = get(f"{base}/healthz")
    assert status == 503 and "no progress" in body
    health.beat()
    assert get(f"{base}/healthz")[0] == 200
    health.stopped("the speaker loop has ended")
    assert get(f"{base}/healthz") == (503, "failed: the speaker loop has ended\n")
    assert get(f"{base}/readyz")[0] == 503
