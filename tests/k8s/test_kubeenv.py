"""The test control plane itself: restarts keep state, kube-controller-manager turns Pods into EndpointSlices, and
a crashed run's leftovers are cleaned up."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from metallb_fast.lab.waiting import wait_for
from metallb_fast.testing.kubeenv import KubeEnv, KubeEnvError, remove_stale_workdirs

if TYPE_CHECKING:
    from kubernetes.client import ApiClient


@pytest.mark.parametrize("kill", [False, True], ids=["sigterm", "sigkill"])
def test_apiserver_restart_keeps_port_and_data(kill: bool, kube_env: KubeEnv, kube_namespace: str) -> None:
    kube_env.kubectl("create", "configmap", "survivor", "-n", kube_namespace, "--from-literal=k=v")
    server = kube_env.server
    kube_env.stop_apiserver(kill=kill)
    try:
        with pytest.raises(KubeEnvError, match="refused"):
            kube_env.request("GET", "/version")
    finally:
        kube_env.start_apiserver()
    assert kube_env.server == server
    data = json.loads(kube_env.kubectl("get", "configmap", "survivor", "-n", kube_namespace, "-o", "json").stdout)
    assert data["data"] == {"k": "v"}


def test_empty_strings_in_custom_resources_are_kept(kube_env: KubeEnv, kube_namespace: str) -> None:
    # Go >= 1.16 broke this in 1.20's vendored schema validator; install-kube.sh patches it (see there).
    peer = {"apiVersion": "metallb.io/v1beta2", "kind": "BGPPeer", "metadata": {"name": "empty"},
            "spec": {"myASN": 64500, "peerASN": 64501, "peerAddress": "198.51.100.1", "password": "",
                     "peerPort": 179}}
    kube_env.kubectl("apply", "-n", kube_namespace, "-f", "-", input=json.dumps(peer))
    stored = json.loads(kube_env.kubectl("get", "-n", kube_namespace, "bgppeers/empty", "-o", "json").stdout)
    assert stored["spec"]["password"] == ""


def test_identities_follow_rbac(kube_env: KubeEnv) -> None:
    # No role of deploy/ lets the speaker read Secrets outside metallb-system (and admin can).
    kube_env.kubectl("get", "secrets", "-n", "default")
    result = kube_env.kubectl("get", "secrets", "-n", "default", user="speaker", check=False)
    assert result.returncode != 0 and "forbidden" in result.stderr.lower()


def test_controller_manager_makes_endpointslices(kube_controller_manager: KubeEnv, kube_namespace: str) -> None:
    env = kube_controller_manager
    env.create_node(f"{kube_namespace}-n1", {"zone": "a"}, internal_ip="192.0.2.11")
    env.create_ready_pod(kube_namespace, "web-1", f"{kube_namespace}-n1", {"app": "web"}, ["10.0.0.11"])
    env.request("POST", f"/api/v1/namespaces/{kube_namespace}/services", {
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
        "spec": {"type": "LoadBalancer", "selector": {"app": "web"}, "ports": [{"port": 80, "protocol": "TCP"}]}})

    def slice_endpoints() -> list[dict[str, object]]:
        slices = env.request("GET", f"/apis/discovery.k8s.io/v1beta1/namespaces/{kube_namespace}/endpointslices"
                                    "?labelSelector=kubernetes.io/service-name=web")
        return [e for s in slices["items"] for e in (s.get("endpoints") or [])]  # type: ignore[union-attr]

    endpoints = wait_for(slice_endpoints, what="an EndpointSlice for Service web")
    assert [(e["addresses"], e["nodeName"], e["conditions"]["ready"]) for e in endpoints] == [  # type: ignore[index]
        (["10.0.0.11"], f"{kube_namespace}-n1", True)]

    env.set_pod_ready(kube_namespace, "web-1", False)
    wait_for(lambda: [e for e in slice_endpoints() if e["conditions"]["ready"] is False],  # type: ignore[index]
             what="the endpoint to turn not ready")


def test_stale_workdir_of_a_dead_run_is_removed(tmp_path: Path) -> None:
    # A "run" whose owner pid is gone, with a leftover process naming its dir, and one unrelated process.
    dead = subprocess.Popen(["true"])
    dead.wait()
    workdir = tmp_path / f"run-{dead.pid}-abc"
    workdir.mkdir()
    sleeper = [sys.executable, "-c", "import time; time.sleep(300)"]
    leftover = subprocess.Popen([*sleeper, str(workdir)])
    bystander = subprocess.Popen(sleeper)
    try:
        (workdir / "pids").write_text(f"{leftover.pid}\n{bystander.pid}\n")
        live = tmp_path / f"run-{os.getpid()}-xyz"
        live.mkdir()
        assert remove_stale_workdirs(tmp_path) == [workdir]
        assert leftover.wait(timeout=10) != 0
        assert bystander.poll() is None, "a process not naming the stale dir was killed"
        assert not workdir.exists() and live.exists()
    finally:
        for proc in (leftover, bystander):
            proc.kill()
            proc.wait()


def test_api_client_factory_speaks_to_the_server(kube_client: Callable[..., ApiClient], kube_namespace: str) -> None:
    from kubernetes.client import CoreV1Api

    response = CoreV1Api(kube_client()).read_namespace(kube_namespace, _preload_content=False)
    assert json.loads(response.data)["metadata"]["name"] == kube_namespace
    # The speaker's identity is refused what deploy/'s roles do not grant it.
    from kubernetes.client.exceptions import ApiException

    with pytest.raises(ApiException) as error:
        CoreV1Api(kube_client("speaker")).list_namespaced_secret("default", _preload_content=False)
    assert error.value.status == 403


def test_readyz_needs_a_token(kube_env: KubeEnv) -> None:
    import ssl

    context = ssl.create_default_context(cafile=str(kube_env.pki.ca_cert))
    with pytest.raises(urllib.error.HTTPError) as error:
        urllib.request.urlopen(f"{kube_env.server}/api/v1/namespaces", context=context, timeout=10)
    assert error.value.code in (401, 403)
