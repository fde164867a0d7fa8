"""Tests against a real kube-apiserver; the API server's fixtures live in tests/k8s/fixtures.py (a plugin of
tests/conftest.py), the controller tests' ones here."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from metallb_fast.testing.kubeenv import KubeEnv
from tests.k8s.controller_harness import RunningController


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # `-m "not kube"` deselects whatever needs the API server, wherever the test lives.
    for item in items:
        if "kube_env" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.kube)


@pytest.fixture
def lb_namespace(kube_env: KubeEnv, kube_namespace: str) -> Iterator[str]:
    """A namespace whose Services are gone before the next test starts (namespace deletion is asynchronous, and a
    leftover LoadBalancer Service would compete for the next test's addresses)."""
    yield kube_namespace
    kube_env.kubectl("delete", "services", "--all", "-n", kube_namespace, "--wait=true", check=False)


@pytest.fixture
def metallb_namespace(kube_env: KubeEnv) -> Iterator[str]:
    kube_env.kubectl("create", "namespace", "metallb-system", check=False)
    kube_env.kubectl("delete", "ipaddresspools,l2advertisements,configurationstates", "--all", "-n", "metallb-system",
                     check=False)
    yield "metallb-system"
    kube_env.kubectl("delete", "ipaddresspools,l2advertisements,configurationstates", "--all", "-n", "metallb-system",
                     check=False)


@pytest.fixture
def run_controller(kube_env: KubeEnv) -> Iterator[Callable[..., RunningController]]:
    started: list[RunningController] = []

    def start(**options: Any) -> RunningController:
        running = RunningController(kube_env, **options)
        started.append(running)
        return running

    yield start
    for running in started:
        if running.thread.is_alive():
            running.stop()
