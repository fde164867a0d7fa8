"""pytest fixtures for a real Kubernetes API server (registered for the whole suite by tests/conftest.py).

    kube_env                  session: etcd + kube-apiserver 1.20 with our CRDs applied and Established and
                              deploy/'s RBAC applied (KubeEnv)
    kube_controller_manager   session: the same KubeEnv with kube-controller-manager running, so Endpoints and
                              EndpointSlices come from Nodes + Pods (mark Pods Ready through their status)
    kubectl                   the env's kubectl(*args, input=None, check=True, user="admin") -> CompletedProcess
    kube_client               factory: kube_client(user="admin") -> kubernetes.client.ApiClient (closed at teardown)
    kube_namespace            function: a fresh namespace, deleted afterwards

Everything starts lazily: a run that selects no Kubernetes test starts nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from metallb_fast.testing.kubeenv import KubeBinaries, KubeEnv
from tests.conftest import require

if TYPE_CHECKING:
    from kubernetes.client import ApiClient

DEPLOY_DIR = Path(__file__).resolve().parents[2] / "deploy"
CRD_DIR = DEPLOY_DIR / "crds"


@pytest.fixture(scope="session")
def kube_binaries() -> KubeBinaries:
    binaries = KubeBinaries.find()
    missing = binaries.missing()
    require(not missing, f"Kubernetes binaries ({', '.join(missing)}; run `make kube`)")
    return binaries


@pytest.fixture(scope="session")
def kube_env(kube_binaries: KubeBinaries) -> Iterator[KubeEnv]:
    env = KubeEnv(kube_binaries).start()
    try:
        env.apply_crds(CRD_DIR)
        env.apply_deploy_rbac(DEPLOY_DIR)
        yield env
    finally:
        env.stop()


@pytest.fixture(scope="session")
def kube_controller_manager(kube_env: KubeEnv) -> Iterator[KubeEnv]:
    kube_env.start_controller_manager()
    try:
        yield kube_env
    finally:
        kube_env.stop_controller_manager()


@pytest.fixture
def kubectl(kube_env: KubeEnv) -> Callable[..., Any]:
    return kube_env.kubectl


@pytest.fixture
def kube_client(kube_env: KubeEnv) -> Iterator[Callable[..., ApiClient]]:
    made: list[ApiClient] = []

    def factory(user: str = "admin") -> ApiClient:
        client = kube_env.api_client(user)
        made.append(client)
        return client

    yield factory
    for client in made:
        client.close()


_namespace_counter = iter(range(1, 1_000_000))


@pytest.fixture
def kube_namespace(kube_env: KubeEnv, request: pytest.FixtureRequest) -> Iterator[str]:
    # Short and DNS-safe, unique within the session; the test name keeps logs readable.
    base = "".join(c if c.isalnum() else "-" for c in request.node.name.lower()).strip("-")[:40].strip("-")
    name = f"t{next(_namespace_counter)}-{base}"
    kube_env.kubectl("create", "namespace", name)
    yield name
    kube_env.kubectl("delete", "namespace", name, "--wait=false", check=False)
