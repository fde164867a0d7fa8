"""Everything together: a real API server, the controller, one speaker per lab node, and a client on the LAN.

A Service applied with kubectl gets an address; `arping` from the client resolves it to the MAC of the node that
`metallb-fast plan` names; that node's speaker wrote the ServiceL2Status. Then the API server goes away for a few
seconds, the cluster changes, and every program catches up without a restart. SIGTERM ends every program cleanly
and leaves no XDP program behind.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from metallb_fast.lab.cluster import METALLB_NAMESPACE, ClusterLab
from metallb_fast.lab.waiting import wait_for
from metallb_fast.testing.kubeenv import KubeEnv
from tests.conftest import require, require_root

EXCLUDE_LABEL = "node.kubernetes.io/exclude-from-external-load-balancers"

CONFIG = """
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: lan, namespace: metallb-system}
spec: {addresses: ["192.0.2.200-192.0.2.209"]}
---
apiVersion: metallb.io/v1beta1
kind: L2Advertisement
metadata: {name: lan, namespace: metallb-system}
spec: {ipAddressPools: [lan]}
"""


def service_manifest(namespace: str, name: str) -> str:
    return f"""
apiVersion: v1
kind: Service
metadata: {{name: {name}, namespace: {namespace}}}
spec:
  type: LoadBalancer
  selector: {{app: {name}}}
  ports: [{{port: 80, protocol: TCP}}]
"""


@pytest.fixture
def cluster(kube_controller_manager: KubeEnv, kube_namespace: str, tmp_path: Path) -> Iterator[ClusterLab]:
    require_root()
    for tool in ("arping", "ip"):
        require(shutil.which(tool) is not None, f"the {tool} tool")
    kube = kube_controller_manager
    with ClusterLab(kube, tmp_path, nodes=3, backend="xdp") as lab:
        try:
            yield lab
        finally:
            lab.stop_and_verify([kube_namespace])


def test_service_answers_from_the_planned_node_and_survives_an_apiserver_outage(
    cluster: ClusterLab, kube_namespace: str
) -> None:
    ns = kube_namespace
    cluster.apply(CONFIG)
    cluster.apply(service_manifest(ns, "web"))
    cluster.add_ready_pods(ns, "web", {"app": "web"})
    address = wait_for(lambda: cluster.ingress(ns, "web"), what="web's address")[0]
    assert address.startswith("192.0.2.20")

    svc = cluster.get("service", "-n", ns, "web")
    assert svc["metadata"]["annotations"]["metallb.io/ip-allocated-from-pool"] == "lan"
    events = cluster.get("events", "-n", ns)["items"]
    assert any(e["reason"] == "IPAllocated" and e["involvedObject"]["name"] == "web" for e in events)

    wait_for(lambda: cluster.get("endpointslices", "-n", ns)["items"], what="EndpointSlices")
    winner = wait_for(lambda: cluster.planned_nodes(ns, "web").get(address), what="plan names a node")
    assert wait_for(lambda: cluster.resolve(address) == cluster.node_mac(winner), what=f"{address} at {winner}")

    def l2_statuses() -> list[dict[str, Any]]:
        items = cluster.get("servicel2statuses", "-n", METALLB_NAMESPACE)["items"]
        return [s for s in items if (s.get("status") or {}).get("serviceName") == "web"]

    statuses = wait_for(l2_statuses, what="ServiceL2Status for web")
    assert [s["status"]["node"] for s in statuses] == [winner]
    assert statuses[0]["metadata"]["labels"]["metallb.io/node"] == winner
    assert cluster.dead_programs() == {}

    # The API server goes away for a few seconds; changes made as soon as it is back are picked up by every
    # program without a restart.
    cluster.kube.restart_apiserver(down_for=3.0)
    cluster.kube.kubectl("label", "node", winner, f"{EXCLUDE_LABEL}=true")
    cluster.apply(service_manifest(ns, "api"))
    cluster.add_ready_pods(ns, "api", {"app": "api"})

    new_winner = wait_for(lambda: cluster.planned_nodes(ns, "web").get(address), what="plan after the outage")
    assert new_winner != winner
    assert wait_for(
        lambda: cluster.resolve(address) == cluster.node_mac(new_winner), timeout=60, what=f"{address} moved"
    )
    api_address = wait_for(lambda: cluster.ingress(ns, "api"), timeout=60, what="api's address")[0]
    api_winner = wait_for(lambda: cluster.planned_nodes(ns, "api").get(api_address), what="plan for api")
    assert wait_for(lambda: cluster.resolve(api_address) == cluster.node_mac(api_winner), timeout=60, what="api")
    assert wait_for(lambda: [s["status"]["node"] for s in l2_statuses()] == [new_winner], what="status moved")
    assert cluster.dead_programs() == {}


def test_the_excludel2_file_keeps_an_interface_silent_until_an_edit_allows_it(
    kube_controller_manager: KubeEnv, kube_namespace: str, tmp_path: Path
) -> None:
    """The metallb-excludel2 ConfigMap as its mount presents it: eth0 excluded, the Service gets an address but
    nobody answers for it; the file edited (as the kubelet updates a ConfigMap mount), the next link rescan (every
    10 s) re-plans and the node answers."""
    require_root()
    require(shutil.which("arping") is not None, "the arping tool")
    kube, ns = kube_controller_manager, kube_namespace
    exclude = tmp_path / "excludel2.yaml"
    exclude.write_text('announcedInterfacesToExclude: ["^eth0$"]\n')
    with ClusterLab(kube, tmp_path / "logs", nodes=1, backend="xdp", exclude_l2_file=exclude) as lab:
        try:
            lab.apply(CONFIG)
            lab.apply(service_manifest(ns, "quiet"))
            lab.add_ready_pods(ns, "quiet", {"app": "quiet"})
            address = wait_for(lambda: lab.ingress(ns, "quiet"), what="quiet's address")[0]
            silent_until = time.monotonic() + 3.0  # several arpings: the speaker has had its chance to announce
            while time.monotonic() < silent_until:
                assert lab.resolve(address) is None, lab.tail(f"speaker-{lab.lab.nodes[0].name}")
            exclude.write_text('announcedInterfacesToExclude: ["^docker.*"]\n')
            mac = wait_for(lambda: lab.resolve(address), timeout=30, what="an answer once eth0 is allowed")
            assert mac == lab.node_mac(lab.lab.nodes[0].name)
        finally:
            lab.stop_and_verify([ns])
