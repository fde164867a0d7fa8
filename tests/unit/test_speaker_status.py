"""Desired ServiceL2Status objects and Service events (speaker/status.py), checked against the reference CRD."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import yaml

from metallb_fast.speaker.status import desired_l2_status, node_assigned_event, node_assigned_events
from tests.conftest import require
from tests.unit.speaker_builders import make_service

CRD_DIR = Path(__file__).resolve().parents[3] / "shared" / "reference" / "metallb-crds"


def _crd_status_properties() -> dict:
    path = CRD_DIR / "metallb.io_servicel2statuses.yaml"
    require(path.exists(), f"MetalLB's reference CRD {path}")
    crd = yaml.safe_load(path.read_text())
    version = crd["spec"]["versions"][0]
    assert version["name"] == "v1beta1"
    return version["schema"]["openAPIV3Schema"]["properties"]["status"]["properties"]


def test_status_for_specific_interfaces_matches_the_crd() -> None:
    service = make_service("web", namespace="shop")
    obj = desired_l2_status(service, "node-b", ["eth1", "bond0"])
    assert obj == {
        "apiVersion": "metallb.io/v1beta1",
        "kind": "ServiceL2Status",
        "metadata": {
            "generateName": "l2-",
            "namespace": "metallb-system",
            "labels": {
                "metallb.io/node": "node-b",
                "metallb.io/service-name": "web",
                "metallb.io/service-namespace": "shop",
            },
        },
        "status": {
            "node": "node-b",
            "serviceName": "web",
            "serviceNamespace": "shop",
            "interfaces": [{"name": "bond0"}, {"name": "eth1"}],
        },
    }
    props = _crd_status_properties()
    assert set(obj["status"]) <= set(props)
    item_fields = set(props["interfaces"]["items"]["properties"])
    assert all(set(i) <= item_fields for i in obj["status"]["interfaces"])


def test_status_for_all_interfaces_omits_them_and_carries_the_owner() -> None:
    owner = {"apiVersion": "v1", "kind": "Pod", "name": "speaker-x", "uid": "u1", "controller": True}
    obj = desired_l2_status(make_service(), "node-a", [], namespace="lb", owner=owner)
    assert "interfaces" not in obj["status"]
    assert obj["metadata"]["namespace"] == "lb"
    assert obj["metadata"]["ownerReferences"] == [owner]


def test_node_assigned_only_when_this_node_starts_announcing() -> None:
    web, api = make_service("web"), make_service("api", ips=["192.0.2.11"])
    first = node_assigned_events(set(), [web, api], "node-a")
    assert [(e.type, e.reason, e.service_name, e.message) for e in first] == [
        ("Normal", "nodeAssigned", "web", 'announcing from node "node-a" with protocol "layer2"'),
        ("Normal", "nodeAssigned", "api", 'announcing from node "node-a" with protocol "layer2"'),
    ]
    assert node_assigned_events({"default/web", "default/api"}, [web, api], "node-a") == ()
    assert [e.service_name for e in node_assigned_events({"default/web"}, [web, api], "node-a")] == ["api"]


def test_event_dict_names_the_service() -> None:
    service = dataclasses.replace(make_service("web", namespace="shop"), uid="abc-123")
    event = node_assigned_event(service, "node-c").to_dict()
    assert event == {
        "type": "Normal",
        "reason": "nodeAssigned",
        "message": 'announcing from node "node-c" with protocol "layer2"',
        "involvedObject": {"apiVersion": "v1", "kind": "Service", "namespace": "shop", "name": "web", "uid": "abc-123"},
    }
