"""`plan`'s speaker data: announcing node, interfaces and every other node's reason (speaker/explain.py)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml

from metallb_fast.config.model import L2Advertisement
from metallb_fast.resources import Service
from metallb_fast.speaker.explain import cluster_objects, explain
from tests.unit.speaker_builders import (
    hash_order,
    make_config,
    make_node,
    make_pool,
    make_service,
    make_slice,
    selector,
)

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "three-nodes.yaml"
NODES = ("node-a", "node-b", "node-c")


def load_example() -> tuple[list[dict], list[Service]]:
    docs = [d for d in yaml.safe_load_all(EXAMPLE.read_text()) if d]
    services = []
    for doc in docs:
        if doc["kind"] == "Service":
            svc = Service.from_dict(doc)
            # What the controller assigns: the requested address (the allocator is another module's job).
            ips = tuple(svc.annotation_map["metallb.io/loadBalancerIPs"].split(","))
            services.append(dataclasses.replace(svc, ingress_ips=ips))
    return docs, services


EXAMPLE_CONFIG = make_config(
    L2Advertisement(name="lan", ip_address_pools=("lan",)), pools=(make_pool("lan", "192.0.2.0/24"),)
)


def explain_example(dead: frozenset[str] = frozenset()) -> dict[str, dict]:
    docs, services = load_example()
    nodes, slices = cluster_objects(docs)
    return {s.name: explain(s, EXAMPLE_CONFIG, nodes, slices, dead=dead).as_dict() for s in services}


def test_example_names_the_announcing_node_of_each_address() -> None:
    out = explain_example()
    assert out["web"] == {
        "announcements": [{"ip": "192.0.2.10", "node": hash_order(NODES, "192.0.2.10")[0], "interfaces": []}],
        "reasons": {n: "notOwner" for n in NODES if n != hash_order(NODES, "192.0.2.10")[0]},
    }
    assert out["api"]["announcements"][0]["node"] == hash_order(NODES, "192.0.2.11")[0]
    # Local: only nodes with a serving endpoint (node-c's endpoint is not ready).
    assert out["shop"]["announcements"][0]["node"] == hash_order(["node-a", "node-b"], "192.0.2.12")[0]
    # The example's comment states these orders; keep it honest.
    assert hash_order(NODES, "192.0.2.10") == ["node-c", "node-b", "node-a"]
    assert hash_order(NODES, "192.0.2.11") == ["node-a", "node-c", "node-b"]
    assert hash_order(["node-a", "node-b"], "192.0.2.12") == ["node-b", "node-a"]


@pytest.mark.parametrize("service", ["web", "api", "shop"])
def test_dead_announcer_moves_each_address_to_the_next_node_in_the_order(service: str) -> None:
    before = explain_example()[service]["announcements"][0]
    dead = before["node"]
    after = explain_example(dead=frozenset({dead}))[service]
    address = before["ip"]
    candidates = ["node-a", "node-b"] if service == "shop" else list(NODES)
    order = hash_order(candidates, address)
    assert order[0] == dead
    assert after["announcements"][0]["node"] == order[1]
    assert after["reasons"][dead] == "notOwner"
    assert order[1] not in after["reasons"]


def test_every_node_dead_means_nobody_announces() -> None:
    out = explain_example(dead=frozenset(NODES))["web"]
    assert out["announcements"] == [{"ip": "192.0.2.10", "node": None, "interfaces": []}]
    assert out["reasons"] == dict.fromkeys(NODES, "notOwner")


def test_interfaces_and_no_matching_advertisement_reasons() -> None:
    nodes = {"a": make_node("a", lan="yes"), "b": make_node("b", lan="yes"), "c": make_node("c")}
    config = make_config(
        L2Advertisement(name="1", interfaces=("eth1",), node_selectors=(selector(lan="yes"),)),
        L2Advertisement(name="2", interfaces=("bond0",), node_selectors=(selector(lan="yes"),)),
    )
    service = make_service(ips=["192.0.2.10", "2001:db8::10"])
    out = explain(service, config, nodes, [make_slice(service, "a", "b", "c")]).as_dict()
    winner = hash_order(["a", "b"], "192.0.2.10")[0]
    assert out["announcements"] == [
        {"ip": "192.0.2.10", "node": winner, "interfaces": ["bond0", "eth1"]},
        {"ip": "2001:db8::10", "node": winner, "interfaces": ["bond0", "eth1"]},
    ]
    assert out["reasons"] == {"a" if winner == "b" else "b": "notOwner", "c": "noMatchingAdvertisement"}


def test_service_without_addresses_has_nothing_to_explain() -> None:
    out = explain(make_service(ips=[]), make_config(L2Advertisement(name="x")), {}, []).as_dict()
    assert out == {"announcements": [], "reasons": {}}


def test_cluster_objects_reads_nodes_and_both_endpoint_slice_versions() -> None:
    docs, _ = load_example()
    nodes, slices = cluster_objects([None, *docs, {"apiVersion": "v1", "kind": "ConfigMap"}])
    assert sorted(nodes) == list(NODES)
    assert nodes["node-c"].label_map["topology.kubernetes.io/zone"] == "rack-2"
    assert not nodes["node-a"].condition_is_true("NetworkUnavailable")
    by_name = {s.name: s for s in slices}
    assert sorted(by_name) == ["api-x1", "shop-x1", "web-x1"]
    beta = by_name["shop-x1"]
    assert [(e.node_name, e.can_serve) for e in beta.endpoints] == [
        ("node-a", True),
        ("node-b", True),
        ("node-c", False),
    ]
    assert [(e.node_name, e.can_serve) for e in by_name["api-x1"].endpoints] == [("node-c", True), ("node-b", True)]


def test_cluster_objects_errors_name_the_object() -> None:
    with pytest.raises(ValueError, match=r"Node \(document 1\): metadata.name is missing"):
        cluster_objects([{"apiVersion": "v1", "kind": "Node", "metadata": {}}])
    twice = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"}}
    with pytest.raises(ValueError, match="Node 'n1' \\(document 2\\): defined twice"):
        cluster_objects([twice, twice])
    orphan = {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "metadata": {"name": "s", "namespace": "x"}}
    with pytest.raises(ValueError, match=r"EndpointSlice x/s .*kubernetes\.io/service-name"):
        cluster_objects([orphan])
