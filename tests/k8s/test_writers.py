"""The writers against a real API server: Event aggregation, ServiceL2Status ownership across nodes."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson
import pytest

from metallb_fast.k8s.client import KubeClient
from metallb_fast.k8s.writers import EventRecorder, ObjectRef, ServiceL2StatusWriter
from metallb_fast.lab.waiting import wait_for
from metallb_fast.resources import Service
from metallb_fast.speaker.status import desired_l2_status
from metallb_fast.testing.kubeenv import KubeEnv

NAMESPACE = "metallb-system"


@pytest.fixture
def client(kube_env: KubeEnv) -> Iterator[KubeClient]:
    kube_env.kubectl("create", "namespace", NAMESPACE, check=False)
    # The speaker's ServiceAccount (deploy/rbac.yaml): these are the writes the speaker makes.
    client = KubeClient.from_kubeconfig(str(kube_env.kubeconfig_path("speaker")))
    yield client
    kube_env.kubectl("delete", "servicel2statuses", "--all", "-n", NAMESPACE, check=False)
    client.close()


def statuses(client: KubeClient) -> list[dict[str, Any]]:
    return client.get(f"/apis/metallb.io/v1beta1/namespaces/{NAMESPACE}/servicel2statuses")["items"]


def test_repeated_event_is_aggregated_into_one_with_a_count(
    client: KubeClient, kube_env: KubeEnv, kube_namespace: str
) -> None:
    recorder = EventRecorder(client, "metallb-controller")
    ref = ObjectRef("Service", kube_namespace, "web")
    for _ in range(3):
        recorder.record(ref, "Warning", "AllocationFailed", "no available IPs")
    recorder.record(ref, "Normal", "IPAllocated", 'Assigned IP ["192.0.2.1"]')
    recorder.close()
    events = orjson.loads(kube_env.kubectl("get", "events", "-n", kube_namespace, "-o", "json").stdout)["items"]
    by_reason = {e["reason"]: e for e in events}
    assert len(events) == 2
    assert by_reason["AllocationFailed"]["count"] == 3
    assert by_reason["IPAllocated"]["count"] == 1
    assert by_reason["AllocationFailed"]["source"]["component"] == "metallb-controller"


def test_announcing_node_takes_over_the_service_l2_status(client: KubeClient) -> None:
    service = Service(namespace="shop", name="web", type="LoadBalancer", ingress_ips=("192.0.2.1",))
    old = ServiceL2StatusWriter(client, NAMESPACE, "node-a")
    new = ServiceL2StatusWriter(client, NAMESPACE, "node-b")
    old.apply({("shop", "web"): desired_l2_status(service, "node-a", [], namespace=NAMESPACE)})
    assert [s["status"]["node"] for s in statuses(client)] == ["node-a"]

    # node-a died (its Pod and its objects stay); node-b now announces the Service.
    new.apply({("shop", "web"): desired_l2_status(service, "node-b", ["eth1"], namespace=NAMESPACE)})
    items = statuses(client)
    assert [s["status"]["node"] for s in items] == ["node-b"]
    assert items[0]["status"]["interfaces"] == [{"name": "eth1"}]
    assert items[0]["metadata"]["labels"]["metallb.io/node"] == "node-b"
    assert items[0]["metadata"]["name"].startswith("l2-")

    # Withdrawn: the object goes, and applying the same empty state again changes nothing.
    new.apply({})
    new.apply({})
    wait_for(lambda: statuses(client) == [], timeout=5, what="the withdrawn ServiceL2Status to go")
