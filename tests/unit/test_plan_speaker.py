"""`metallb-fast plan` with Nodes and EndpointSlices: the announcing node of each address, the other nodes' reasons,
and `--dead`. Expected winners come from sha256(node + "#" + ip) (speaker_builders), not from the code under test."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.unit.plan_cli import EXAMPLES, plan
from tests.unit.speaker_builders import hash_order

EXAMPLE = EXAMPLES / "three-nodes.yaml"
NODES = ("node-a", "node-b", "node-c")
# Who may announce each Service of the example: every node for Cluster; for Local (shop) only the nodes with a
# serving endpoint, and node-c's endpoint is not ready.
CANDIDATES = {"web": NODES, "api": NODES, "shop": ("node-a", "node-b")}
ADDRESS = {"web": "192.0.2.10", "api": "192.0.2.11", "shop": "192.0.2.12"}


def plan_json(path: Path, *args: str) -> dict[str, dict[str, Any]]:
    code, out, err = plan("-f", str(path), "-o", "json", *args)
    assert code == 0, err
    document = json.loads(out)
    return {s["name"]: s for s in document["services"]}


def dead_args(*names: str) -> list[str]:
    return [a for n in names for a in ("--dead", n)]


def variant(
    tmp_path: Path, change: Callable[[list[dict[str, Any]]], None], extra: Iterable[dict[str, Any]] = ()
) -> Path:
    """The example with `change(docs)` applied and `extra` documents appended, written to a file."""
    docs = [d for d in yaml.safe_load_all(EXAMPLE.read_text()) if d]
    change(docs)
    path = tmp_path / "variant.yaml"
    path.write_text(yaml.safe_dump_all([*docs, *extra]))
    return path


def find(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    return next(d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name)


def test_table_names_the_announcing_node_of_each_address() -> None:
    code, out, _ = plan("-f", str(EXAMPLE))
    assert code == 0
    lines = out.splitlines()
    for service, ip in ADDRESS.items():
        order = hash_order(CANDIDATES[service], ip)
        assert f"    {ip} announced by {order[0]} on all interfaces" in lines
        assert f"    election order: {', '.join(order)}" in lines
    # Every other node is listed with its reason; node-c is no candidate for the Local Service.
    shop_others = [
        n if n in CANDIDATES["shop"] else f"{n} [ineligible]"
        for n in NODES
        if n != hash_order(CANDIDATES["shop"], ADDRESS["shop"])[0]
    ]
    assert f"    not announcing: {', '.join(shop_others)} (notOwner)" in lines
    assert "no v1 Node" not in out


def test_json_shape_and_winners() -> None:
    services = plan_json(EXAMPLE)
    assert sorted(services) == sorted(ADDRESS)
    for name, service in services.items():
        assert set(service) == {"namespace", "name", "ips", "pool", "events", "announcements", "reasons"}
        winner = hash_order(CANDIDATES[name], ADDRESS[name])[0]
        assert service["ips"] == [ADDRESS[name]]
        assert service["announcements"] == [{"ip": ADDRESS[name], "node": winner, "interfaces": []}]
        assert service["reasons"] == {n: "notOwner" for n in NODES if n != winner}
        assert all(isinstance(k, str) and isinstance(v, str) for k, v in service["reasons"].items())


@pytest.mark.parametrize("service", sorted(ADDRESS))
def test_dead_moves_each_address_to_the_next_node_in_the_order(service: str) -> None:
    ip = ADDRESS[service]
    order = hash_order(CANDIDATES[service], ip)
    before = plan_json(EXAMPLE)[service]["announcements"][0]["node"]
    assert before == order[0]
    after = plan_json(EXAMPLE, *dead_args(order[0]))
    assert after[service]["announcements"] == [{"ip": ip, "node": order[1], "interfaces": []}]
    assert after[service]["reasons"][order[0]] == "notOwner"
    assert order[1] not in after[service]["reasons"]
    # The other Services only move if they were on the dead node too.
    for other, found in after.items():
        expected = [n for n in hash_order(CANDIDATES[other], ADDRESS[other]) if n != order[0]]
        assert found["announcements"][0]["node"] == expected[0]
    code, out, _ = plan("-f", str(EXAMPLE), *dead_args(order[0]))
    assert code == 0
    assert f"    {ip} announced by {order[1]} on all interfaces" in out.splitlines()
    assert f"{order[0]} [dead: not a live memberlist member]" in out  # membership is why the address moved


def test_dead_is_repeatable_and_every_candidate_dead_means_nobody() -> None:
    for service, ip in ADDRESS.items():
        order = hash_order(CANDIDATES[service], ip)
        found = plan_json(EXAMPLE, *dead_args(*order[:-1]))[service]
        assert found["announcements"][0]["node"] == order[-1]
        nobody = plan_json(EXAMPLE, *dead_args(*order))[service]
        assert nobody["announcements"] == [{"ip": ip, "node": None, "interfaces": []}]
        assert nobody["reasons"] == dict.fromkeys(NODES, "notOwner")


def test_local_policy_only_nodes_with_serving_endpoints(tmp_path: Path) -> None:
    # shop (Local): node-c is alive but its endpoint is not ready, so it never takes over.
    found = plan_json(EXAMPLE, *dead_args("node-a", "node-b"))["shop"]
    assert found["announcements"][0]["node"] is None
    code, out, _ = plan("-f", str(EXAMPLE), *dead_args("node-a", "node-b"))
    assert code == 0
    assert "192.0.2.12 announced by no node: no eligible node" in out

    # api made Local: its endpoints are on node-c (ready) and node-b (terminating but serving); never node-a.
    def api_local(docs: list[dict[str, Any]]) -> None:
        find(docs, "Service", "api")["spec"]["externalTrafficPolicy"] = "Local"

    path = variant(tmp_path, api_local)
    order = hash_order(["node-b", "node-c"], ADDRESS["api"])
    assert plan_json(path)["api"]["announcements"][0]["node"] == order[0]
    assert plan_json(path, *dead_args(order[0]))["api"]["announcements"][0]["node"] == order[1]
    assert plan_json(path, *dead_args("node-b", "node-c"))["api"]["announcements"][0]["node"] is None
    # Cluster policy, same endpoints: node-a is a candidate although it runs no endpoint.
    assert plan_json(EXAMPLE, *dead_args("node-b", "node-c"))["api"]["announcements"][0]["node"] == "node-a"


def test_planned_addresses_are_used_not_the_manifest_status(tmp_path: Path) -> None:
    requested, stale = "192.0.2.20", "192.0.2.21"
    assert hash_order(NODES, requested)[0] != hash_order(NODES, stale)[0]  # else this test proves nothing
    extra = [
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": name, "namespace": "shop", "annotations": annotations},
            "spec": {"type": "LoadBalancer", "ports": [{"port": 80}]},
            "status": status,
        }
        for name, annotations, status in (
            ("moved", {"metallb.io/loadBalancerIPs": requested}, {"loadBalancer": {"ingress": [{"ip": stale}]}}),
            ("auto", {}, {}),
        )
    ] + [
        {
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": {"name": f"{name}-x", "namespace": "shop", "labels": {"kubernetes.io/service-name": name}},
            "addressType": "IPv4",
            "endpoints": [{"addresses": ["198.51.100.40"], "nodeName": "node-a"}],
        }
        for name in ("moved", "auto")
    ]
    services = plan_json(variant(tmp_path, lambda docs: None, extra))
    moved = services["moved"]
    assert moved["ips"] == [requested]
    assert moved["announcements"] == [{"ip": requested, "node": hash_order(NODES, requested)[0], "interfaces": []}]
    auto = services["auto"]
    assert len(auto["ips"]) == 1  # assigned by the plan; the manifest had none
    assert auto["announcements"] == [
        {"ip": auto["ips"][0], "node": hash_order(NODES, auto["ips"][0])[0], "interfaces": []}
    ]


def test_interfaces_of_the_advertisement(tmp_path: Path) -> None:
    def named(docs: list[dict[str, Any]]) -> None:
        find(docs, "L2Advertisement", "lan")["spec"]["interfaces"] = ["eth1", "bond0"]

    found = plan_json(variant(tmp_path, named))["web"]
    assert found["announcements"][0]["interfaces"] == ["bond0", "eth1"]
    code, out, _ = plan("-f", str(tmp_path / "variant.yaml"))
    assert code == 0
    assert f"    192.0.2.10 announced by {hash_order(NODES, '192.0.2.10')[0]} on bond0, eth1" in out.splitlines()


def test_without_nodes_the_output_is_as_before_plus_empty_announcements() -> None:
    services = plan_json(EXAMPLES / "ipv4.yaml")
    assert services and all(s["announcements"] == [] and s["reasons"] == {} for s in services.values())
    code, out, _ = plan("-f", str(EXAMPLES / "ipv4.yaml"))
    assert code == 0
    assert "(no v1 Node in the manifests: add Nodes and EndpointSlices to see which node announces each address)" in out
    assert "announced by" not in out


def test_unknown_dead_node_exits_2_naming_it() -> None:
    code, out, err = plan("-f", str(EXAMPLE), "--dead", "node-a", "--dead", "node-x")
    assert code == 2 and out == ""
    assert "--dead node-x: no Node named 'node-x'" in err and "node-a, node-b, node-c" in err
    assert "'node-a'" not in err
    code, out, err = plan("-f", str(EXAMPLES / "ipv4.yaml"), "--dead", "node-a", "-o", "json")
    assert code == 2 and out == "" and "node-a" in err and "no v1 Node" in err


def test_other_load_balancer_class_is_not_announced(tmp_path: Path) -> None:
    def other_class(docs: list[dict[str, Any]]) -> None:
        service = find(docs, "Service", "web")
        service["spec"]["loadBalancerClass"] = "other"
        service["status"] = {"loadBalancer": {"ingress": [{"ip": "192.0.2.77"}]}}

    path = variant(tmp_path, other_class)
    web = plan_json(path)["web"]
    assert web["ips"] == ["192.0.2.77"] and web["announcements"] == [] and web["reasons"] == {}
    _, out, _ = plan("-f", str(path))
    assert "    not announced: spec.loadBalancerClass is 'other'" in out
    # With --lb-class other it is ours: the controller moves it to the address it asks for, the speaker announces.
    web = plan_json(path, "--lb-class", "other")["web"]
    assert web["announcements"][0] == {"ip": "192.0.2.10", "node": hash_order(NODES, "192.0.2.10")[0], "interfaces": []}


def test_malformed_nodes_and_slices_are_all_listed(tmp_path: Path) -> None:
    extra = [
        {"apiVersion": "v1", "kind": "Node", "metadata": {}},
        {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "node-a"}},
        {
            "apiVersion": "discovery.k8s.io/v1beta1",
            "kind": "EndpointSlice",
            "metadata": {"name": "s", "namespace": "x"},
        },
    ]
    code, out, _ = plan("-f", str(variant(tmp_path, lambda docs: None, extra)), "-o", "json")
    assert code == 2
    errors = json.loads(out)["errors"]
    assert len(errors) == 3
    assert "metadata.name is missing" in errors[0]
    assert "Node 'node-a'" in errors[1] and "defined twice" in errors[1]
    assert "EndpointSlice x/s" in errors[2] and "kubernetes.io/service-name" in errors[2]


def test_console_script() -> None:
    script = Path(sys.executable).with_name("metallb-fast")
    assert script.exists(), f"{script}: the console script is missing; run scripts/install.sh"
    order = hash_order(NODES, ADDRESS["web"])
    done = subprocess.run(
        [str(script), "plan", "-f", str(EXAMPLE), "--dead", order[0], "-o", "json"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    web = next(s for s in json.loads(done.stdout)["services"] if s["name"] == "web")
    assert web["announcements"] == [{"ip": ADDRESS["web"], "node": order[1], "interfaces": []}]
    done = subprocess.run(
        [str(script), "plan", "-f", str(EXAMPLE), "--dead", "nope"], capture_output=True, text=True, check=False
    )
    assert done.returncode == 2 and "nope" in done.stderr and done.stdout == ""
