"""`plan` reads manifests as the cluster would hold them: a `kubectl get -o yaml` export (a List, nested Lists)
like separate documents (L), and only the metallb.io objects of the controller's namespace (J)."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from tests.unit.plan_cli import plan

POOLS_AND_SERVICE = """
apiVersion: v1
kind: List
items:
- apiVersion: metallb.io/v1beta1
  kind: IPAddressPool
  metadata: {name: mine, namespace: metallb-system}
  spec: {addresses: [192.0.2.0/30]}
- apiVersion: v1
  kind: List
  items:
  - apiVersion: metallb.io/v1beta1
    kind: IPAddressPool
    metadata: {name: theirs, namespace: elsewhere}
    spec: {addresses: [198.51.100.0/30]}
  - apiVersion: v1
    kind: Service
    metadata: {name: asks-theirs, namespace: shop, annotations: {metallb.io/address-pool: theirs}}
    spec: {type: LoadBalancer, ports: [{port: 443}]}
- apiVersion: v1
  kind: Service
  metadata: {name: web, namespace: shop}
  spec: {type: LoadBalancer, ports: [{port: 80}]}
metadata: {resourceVersion: ""}
"""


def as_documents(export: str) -> str:
    """The same objects as separate YAML documents."""
    objects = yaml.safe_load(export)["items"]
    flat = [o for item in objects for o in (item["items"] if item["kind"] == "List" else [item])]
    return yaml.safe_dump_all(flat)


def run(
    tmp_path: Path, *extra: str, text: str = POOLS_AND_SERVICE
) -> tuple[int, dict[str, tuple[list[str], str | None, list[str]]], str]:
    manifest = tmp_path / "manifest.yaml"
    manifest.write_text(text)
    code, out, err = plan("-f", str(manifest), "-o", "json", *extra)
    document = json.loads(out)
    services = {
        f"{s['namespace']}/{s['name']}": (s["ips"], s["pool"], [e["reason"] for e in s["events"]])
        for s in document["services"]
    }
    return code, services, err


def test_the_services_of_a_list_export_are_planned(tmp_path: Path) -> None:
    code, services, err = run(tmp_path)
    assert code == 0
    assert services["shop/web"] == (["192.0.2.0"], "mine", ["IPAllocated"])
    assert "shop/asks-theirs" in services  # from the nested List
    assert (code, services, err) == run(tmp_path, text=as_documents(POOLS_AND_SERVICE))


def test_metallb_objects_of_another_namespace_are_ignored_with_a_warning(tmp_path: Path) -> None:
    code, services, err = run(tmp_path, text=as_documents(POOLS_AND_SERVICE))
    assert code == 0
    # The controller never reads pool "theirs" (namespace elsewhere): the Service asking for it gets nothing.
    ips, pool, reasons = services["shop/asks-theirs"]
    assert (ips, pool, reasons) == ([], None, ["AllocationFailed"])
    assert err.splitlines() == [
        "metallb-fast plan: warning: IPAddressPool elsewhere/theirs ignored: it is in namespace 'elsewhere', and "
        "the controller and the speakers read metallb.io objects only from 'metallb-system' (--namespace)"
    ]


def test_namespace_option_reads_that_namespace_instead(tmp_path: Path) -> None:
    code, services, err = run(tmp_path, "--namespace", "elsewhere", text=as_documents(POOLS_AND_SERVICE))
    assert code == 0
    assert services["shop/asks-theirs"] == (["198.51.100.0"], "theirs", ["IPAllocated"])
    assert services["shop/web"] == (["198.51.100.1"], "theirs", ["IPAllocated"])
    assert "IPAddressPool metallb-system/mine ignored" in err
