"""`metallb-fast plan` on the examples: expected addresses, pools, events and counters; the JSON shape; exit codes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.unit.plan_cli import EXAMPLES, plan


def plan_json(*files: str, extra: tuple[str, ...] = ()) -> tuple[int, dict[str, Any]]:
    args = [a for f in files for a in ("-f", str(EXAMPLES / f))]
    code, out, _ = plan(*args, *extra, "--output", "json")
    return code, json.loads(out)


def summary(document: dict[str, Any]) -> dict[str, tuple[list[str], str | None, list[str]]]:
    return {
        f"{s['namespace']}/{s['name']}": (s["ips"], s["pool"], [e["reason"] for e in s["events"]])
        for s in document["services"]
    }


def counters(document: dict[str, Any]) -> dict[str, tuple[int, int, int, int]]:
    return {
        p["name"]: (p["assignedIPv4"], p["availableIPv4"], p["assignedIPv6"], p["availableIPv6"])
        for p in document["pools"]
    }


EXPECTED: dict[str, tuple[dict[str, tuple[list[str], str | None, list[str]]], dict[str, tuple[int, ...]]]] = {
    "ipv4.yaml": (
        {
            "shop/web": (["198.51.100.1"], "public", ["IPAllocated"]),
            "shop/api": (["198.51.100.20"], "public", ["IPAllocated"]),
            "shop/legacy": (["198.51.100.2"], "public", ["IPAllocated"]),
            "ops/grafana": (["203.0.113.10"], "reserved", ["IPAllocated"]),
            "ops/metrics": ([], None, ["AllocationFailed"]),
        },
        {"public": (3, 251, 0, 0), "reserved": (1, 9, 0, 0)},
    ),
    "ipv6.yaml": (
        {
            "edge/gateway": (["2001:db8:64::"], "v6-wide", ["IPAllocated"]),
            "edge/resolver": (["2001:db8:64::1"], "v6-wide", ["IPAllocated"]),
            "edge/ntp": (["2001:db8:53::53"], "v6-infra", ["IPAllocated"]),
        },
        {"v6-wide": (0, 0, 2, 2**63 - 3), "v6-infra": (0, 0, 1, 15)},
    ),
    "dual-stack.yaml": (
        {
            "web/frontend": (["198.51.100.0", "2001:db8:d5::"], "dual", ["IPAllocated"]),
            "web/backend": (["198.51.100.1", "2001:db8:d5::1"], "dual", ["IPAllocated"]),
            "web/search": (["198.51.100.2", "2001:db8:d5::2"], "dual", ["IPAllocated"]),
            "web/legacy": (["192.0.2.64"], "v4-only", ["IPAllocated", "AdditionalAssignFailed"]),
            "web/mail": (["198.51.100.3"], "dual", ["IPAllocated"]),
        },
        {"dual": (4, 124, 3, 65533), "v4-only": (1, 63, 0, 0)},
    ),
    "sharing.yaml": (
        {
            "dns/dns-udp": (["192.0.2.10"], "shared", ["IPAllocated"]),
            "dns/dns-tcp": (["192.0.2.10"], "shared", ["IPAllocated"]),
            "dns/dns-extra": (["192.0.2.11"], "shared", ["IPAllocated"]),
            "web/blue": (["192.0.2.12"], "shared", ["IPAllocated"]),
            "web/blue-admin": (["192.0.2.12"], "shared", ["IPAllocated"]),
            "web/green": (["192.0.2.13"], "shared", ["IPAllocated"]),
            "web/plain": (["192.0.2.14"], "shared", ["IPAllocated"]),
        },
        {"shared": (5, 6, 0, 0)},
    ),
    "priorities.yaml": (
        {
            "payments/checkout": (["203.0.113.1"], "gold", ["IPAllocated"]),
            "payments/ledger": (["203.0.113.2"], "gold", ["IPAllocated"]),
            "payments/reports": (["198.51.100.1"], "silver", ["IPAllocated"]),
            "team-a/app": (["192.0.2.1"], "team-a", ["IPAllocated"]),
            "team-a/canary": (["192.0.2.128"], "canary", ["IPAllocated"]),
            "default/blog": (["192.0.2.200"], "open", ["IPAllocated"]),
        },
        {
            "gold": (2, 0, 0, 0),
            "silver": (1, 253, 0, 0),
            "team-a": (1, 126, 0, 0),
            "canary": (1, 63, 0, 0),
            "open": (1, 50, 0, 0),
        },
    ),
    "restart-status.yaml": (
        {
            "prod/late": (["192.0.2.2"], "office", ["IPAllocated"]),
            "prod/db": (["192.0.2.0"], "office", []),
            "prod/old-lb": (["192.0.2.1"], "office", ["ClearAssignment", "IPAllocated"]),
            "prod/cache": (["192.0.2.5"], "office", ["deprecatedAnnotation"]),
        },
        {"office": (4, 12, 0, 0)},
    ),
}


@pytest.mark.parametrize("example", sorted(EXPECTED))
def test_plan_on_examples(example: str) -> None:
    code, document = plan_json(example)
    services, pools = EXPECTED[example]
    assert code == 0 and document["valid"] and document["errors"] == []
    assert summary(document) == services
    assert list(summary(document)) == list(services)  # manifest order
    assert counters(document) == pools


def test_plan_messages_are_metallbs() -> None:
    _, document = plan_json("ipv4.yaml")
    by_name = {s["name"]: s for s in document["services"]}
    assert by_name["web"]["events"] == [
        {"type": "Normal", "reason": "IPAllocated", "message": 'Assigned IP ["198.51.100.1"]'}
    ]
    assert by_name["metrics"]["events"] == [
        {
            "type": "Warning",
            "reason": "AllocationFailed",
            "message": 'Failed to allocate IP for "ops/metrics": ["192.0.2.99"] is not allowed in config',
        }
    ]


def test_broken_pool_exits_2_and_lists_every_problem() -> None:
    code, document = plan_json("broken-overlap.yaml")
    assert code == 2
    assert document["valid"] is False and document["services"] == [] and document["pools"] == []
    errors = document["errors"]
    assert len(errors) == 3
    assert any('"office"' in e and "overlaps" in e for e in errors)
    assert any('"lab"' in e and "198.51.100.50-198.51.100.10" in e for e in errors)
    assert any('"dmz"' in e and "203.0.113.7" in e for e in errors)
    code, out, err = plan("-f", str(EXAMPLES / "broken-overlap.yaml"))
    assert code == 2 and out == "" and "overlaps" in err


@pytest.mark.parametrize("example", sorted(p.name for p in EXAMPLES.glob("*.yaml")))
def test_plan_json_shape_on_every_example(example: str) -> None:
    code, document = plan_json(example)
    assert set(document) == {"valid", "errors", "services", "pools"}
    assert code == (0 if document["valid"] else 2)
    assert all(isinstance(e, str) for e in document["errors"])
    for service in document["services"]:
        assert {"namespace", "name", "ips", "pool", "events"} <= set(service)
        assert isinstance(service["ips"], list) and all(isinstance(i, str) for i in service["ips"])
        assert service["pool"] is None or isinstance(service["pool"], str)
        for event in service["events"]:
            assert set(event) == {"type", "reason", "message"} and event["type"] in ("Normal", "Warning")
    for pool in document["pools"]:
        assert set(pool) == {"name", "assignedIPv4", "availableIPv4", "assignedIPv6", "availableIPv6"}
    assert plan_json(example) == (code, document)  # deterministic


def test_table_output() -> None:
    code, out, _ = plan("-f", str(EXAMPLES / "sharing.yaml"))
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["SERVICE", "IPS", "POOL"]
    assert lines[1].split() == ["dns/dns-udp", "192.0.2.10", "shared"]
    assert '    Normal IPAllocated: Assigned IP ["192.0.2.10"]' in lines
    assert any(line.split() == ["shared", "5", "6", "0", "0"] for line in lines)


def test_single_stack_cluster_families() -> None:
    _, document = plan_json("dual-stack.yaml", extra=("--cluster-ip-families", "IPv4"))
    found = summary(document)
    assert found["web/frontend"] == ([], None, ["not enough clusterips"])
    # PreferDualStack on a single-stack cluster still gains an IPv6 address from a dual-stack pool, as in MetalLB
    assert found["web/search"][0] == ["198.51.100.0", "2001:db8:d5::"]
    assert plan("-f", "x.yaml", "--cluster-ip-families", "IPv5")[0] == 2


def test_lb_class_and_later_documents(tmp_path: Path) -> None:
    extra = tmp_path / "extra.yaml"
    extra.write_text(
        """
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec:
  type: LoadBalancer
  loadBalancerClass: other
  ports: [{port: 80}]
status:
  loadBalancer:
    ingress: [{ip: 203.0.113.77}]
"""
    )
    code, out, _ = plan("-f", str(EXAMPLES / "ipv4.yaml"), "-f", str(extra), "-o", "json")
    assert code == 0
    found = summary(json.loads(out))
    assert found["shop/web"] == (["203.0.113.77"], None, [])  # another controller's Service: untouched
    _, out, _ = plan("-f", str(EXAMPLES / "ipv4.yaml"), "-f", str(extra), "-o", "json", "--lb-class", "other")
    found = summary(json.loads(out))
    assert found["shop/web"][0] == ["198.51.100.1"]
    assert found["shop/api"] == ([], None, [])  # no class: not ours when --lb-class is set


def test_unreadable_manifest_exits_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("a: [unclosed\n")
    code, document = plan_json(str(bad))
    assert code == 2 and document["valid"] is False and "bad.yaml" in document["errors"][0]
    code, document = plan_json(str(tmp_path / "missing.yaml"))
    assert code == 2 and "missing.yaml" in document["errors"][0]
