"""controller/reprocess.py: the full-pass policy the controller loop and `plan` share."""

from __future__ import annotations

from metallb_fast.controller.decide import SyncResult
from metallb_fast.controller.reprocess import frees_addresses, full_pass_order
from metallb_fast.resources import Service


def service(name: str, ingress: tuple[str, ...] = (), created: str = "") -> Service:
    return Service.from_dict(
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": name, "namespace": "shop", "creationTimestamp": created or None},
            "spec": {"type": "LoadBalancer", "ports": [{"port": 80, "protocol": "TCP"}]},
            "status": {"loadBalancer": {"ingress": [{"ip": ip} for ip in ingress]}},
        }
    )


def test_more_status_addresses_first_then_older_then_the_given_order() -> None:
    services = [
        service("young-waiting", created="2026-12-02T10:00:05Z"),
        service("z-tie", created="2026-12-02T10:00:01Z"),
        service("a-tie", created="2026-12-02T10:00:01Z"),
        service("one", ("192.0.2.1",), "2026-12-02T10:00:09Z"),
        service("dual", ("192.0.2.2", "2001:db8::2"), "2026-12-02T10:00:09Z"),
        service("old-waiting", created="2026-12-02T09:00:00Z"),
    ]
    assert [s.name for s in full_pass_order(services)] == [
        "dual", "one", "old-waiting", "z-tie", "a-tie", "young-waiting"
    ]


def test_only_a_decision_that_freed_addresses_makes_a_full_pass_due() -> None:
    assert [r for r in SyncResult if frees_addresses(r)] == [SyncResult.REPROCESS_ALL]
