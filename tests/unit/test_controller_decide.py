"""The controller's per-Service decision: status, pool annotation, events and reasons as MetalLB words them."""

from __future__ import annotations

import dataclasses

import pytest

from metallb_fast.allocator import Allocator
from metallb_fast.config.model import Config
from metallb_fast.controller.decide import Decision, SyncResult, apply_config, decide, forget
from metallb_fast.controller.events import Event
from metallb_fast.resources import Service
from tests.unit.test_allocator import allocator_for, pool, svc

POOL = "metallb.io/ip-allocated-from-pool"


def written(service: Service, decision: Decision) -> Service:
    return dataclasses.replace(service, ingress_ips=decision.ingress_ips, annotations=decision.annotations)


def default_allocator() -> Allocator:
    return allocator_for(
        pool("main", "192.0.2.0/30", "2001:db8::/126"),
        pool("v4-only", "198.51.100.0/30", auto_assign=False),
    )


def test_new_service_gets_the_lowest_address_annotation_and_event() -> None:
    decision = decide(default_allocator(), svc("web"))
    assert decision.handled and decision.changed
    assert decision.ingress_ips == ("192.0.2.0",)
    assert decision.pool == "main"
    assert decision.events == (Event("Normal", "IPAllocated", 'Assigned IP ["192.0.2.0"]'),)
    assert decision.result is SyncResult.SUCCESS


def test_converged_service_is_left_alone_without_events() -> None:
    allocator = default_allocator()
    service = written(svc("web"), decide(allocator, svc("web")))
    again = decide(allocator, service)
    assert not again.changed and again.events == () and again.ingress_ips == ("192.0.2.0",)


def test_restart_keeps_addresses_already_in_status() -> None:
    allocator = default_allocator()
    service = svc("db", ingress=("192.0.2.3",), annotations={POOL: "main"})
    decision = decide(allocator, service)
    assert decision.ingress_ips == ("192.0.2.3",) and not decision.changed and decision.events == ()
    assert decide(allocator, svc("new")).ingress_ips == ("192.0.2.0",)


def test_status_outside_every_pool_is_cleared_and_reassigned() -> None:
    decision = decide(default_allocator(), svc("old", ingress=("203.0.113.40",)))
    assert decision.ingress_ips == ("192.0.2.0",)
    assert decision.events == (
        Event(
            "Normal",
            "ClearAssignment",
            'current IP for "default/old" not allowed by config, will attempt for new IP assignment: '
            '["203.0.113.40"] is not allowed in config',
        ),
        Event("Normal", "IPAllocated", 'Assigned IP ["192.0.2.0"]'),
    )


def test_allocation_failure_is_a_warning_and_clears_the_status() -> None:
    allocator = allocator_for(pool("one", "192.0.2.0/32"))
    written(svc("a"), decide(allocator, svc("a")))
    decision = decide(allocator, svc("b"))
    assert decision.ingress_ips == () and decision.pool is None
    assert decision.events == (
        Event("Warning", "AllocationFailed", 'Failed to allocate IP for "default/b": no available IPs'),
    )
    assert decision.result is SyncResult.ERROR_NO_RETRY


def test_both_requested_forms_is_load_balancer_failed_and_status_stays() -> None:
    both = {"metallb.io/loadBalancerIPs": "192.0.2.1"}
    service = svc("x", ingress=("192.0.2.1",), lb_ip="192.0.2.1", annotations=both)
    decision = decide(default_allocator(), service)
    assert decision.ingress_ips == ("192.0.2.1",)
    assert decision.events == (
        Event(
            "Warning",
            "LoadBalancerFailed",
            "invalid requested loadbalancer IPs: service can not have both metallb.io/loadBalancerIPs and "
            "svc.Spec.LoadBalancerIP",
        ),
    )
    assert decision.result is SyncResult.ERROR_NO_RETRY


def test_require_dual_stack_with_one_cluster_ip() -> None:
    decision = decide(default_allocator(), svc("x", policy="RequireDualStack"))
    assert decision.ingress_ips == ()
    assert decision.events == (
        Event("Warning", "not enough clusterips", "Service requires dual stack but not enough clusterips [10.96.0.1]"),
    )


def test_status_with_no_family_is_reported_and_replaced() -> None:
    service = svc("x", ingress=("192.0.2.0", "192.0.2.1", "192.0.2.2"))
    decision = decide(default_allocator(), service)
    assert decision.ingress_ips == ("192.0.2.0",)
    assert decision.events[0] == Event(
        "Warning",
        "nolbIPsIPFamily",
        'Failed to retrieve LBIPs IPFamily for ["192.0.2.0" "192.0.2.1" "192.0.2.2"]: '
        'IPFamilyForAddresses: invalid ips length 3 ["192.0.2.0" "192.0.2.1" "192.0.2.2"]',
    )


def test_status_of_the_wrong_family_is_replaced() -> None:
    decision = decide(default_allocator(), svc("x", ingress=("2001:db8::1",)))
    assert decision.ingress_ips == ("192.0.2.0",)


def test_prefer_dual_stack_gains_the_other_family_and_then_settles() -> None:
    allocator = default_allocator()
    service = svc("x", policy="PreferDualStack")
    first = decide(allocator, service)
    assert first.ingress_ips == ("192.0.2.0",)
    service = written(service, first)
    second = decide(allocator, service)
    assert second.ingress_ips == ("192.0.2.0", "2001:db8::")
    assert second.events == (Event("Normal", "IPAllocated", 'Assigned additional IP "2001:db8::"'),)
    third = decide(allocator, written(service, second))
    assert not third.changed and third.events == ()


def test_prefer_dual_stack_in_a_single_family_pool_reports_additional_assign_failed() -> None:
    allocator = default_allocator()
    service = svc("x", policy="PreferDualStack", annotations={"metallb.io/address-pool": "v4-only"})
    service = written(service, decide(allocator, service))
    decision = decide(allocator, service)
    assert decision.ingress_ips == ("198.51.100.0",) and not decision.changed
    assert decision.events == (
        Event(
            "Normal",
            "AdditionalAssignFailed",
            'cannot assign additional IP in PreferDualStack: ["198.51.100.0" "<nil>"] is not allowed in config',
        ),
    )


def test_changing_the_requested_pool_or_address_moves_the_service() -> None:
    allocator = default_allocator()
    service = written(svc("x"), decide(allocator, svc("x")))
    moved = dataclasses.replace(service, annotations=(*service.annotations, ("metallb.io/address-pool", "v4-only")))
    decision = decide(allocator, moved)
    assert decision.ingress_ips == ("198.51.100.0",) and decision.pool == "v4-only"
    pinned = dataclasses.replace(written(moved, decision), load_balancer_ip="198.51.100.2")
    assert decide(allocator, pinned).ingress_ips == ("198.51.100.2",)


def test_not_a_load_balancer_clears_status_and_annotation_and_reprocesses() -> None:
    allocator = default_allocator()
    service = written(svc("x"), decide(allocator, svc("x")))
    decision = decide(allocator, dataclasses.replace(service, type="NodePort"))
    assert decision.ingress_ips == () and decision.pool is None and decision.changed
    assert decision.result is SyncResult.REPROCESS_ALL
    assert allocator.ips_of("default/x") == ()


@pytest.mark.parametrize(
    ("service_class", "lb_class", "handled"),
    [(None, None, True), ("other", None, False), (None, "ours", False), ("ours", "ours", True), ("x", "ours", False)],
)
def test_load_balancer_class(service_class: str | None, lb_class: str | None, handled: bool) -> None:
    service = svc("x", lb_class=service_class, ingress=("203.0.113.9",), annotations={POOL: "theirs"})
    decision = decide(default_allocator(), service, lb_class)
    assert decision.handled is handled
    if not handled:  # another controller's Service: nothing is written
        assert not decision.changed and decision.ingress_ips == ("203.0.113.9",) and decision.pool == "theirs"


def test_deprecated_annotations_warn_only_when_something_is_written() -> None:
    allocator = default_allocator()
    service = svc(
        "x",
        annotations={"metallb.universe.tf/allow-shared-ip": "k", "metallb.universe.tf/ip-allocated-from-pool": "main"},
    )
    decision = decide(allocator, service)
    assert decision.events[1:] == (
        Event(
            "Warning", "deprecatedAnnotation", "Service uses deprecated annotation metallb.universe.tf/allow-shared-ip"
        ),
        Event(
            "Warning",
            "deprecatedAnnotation",
            "Service uses deprecated annotation metallb.universe.tf/ip-allocated-from-pool",
        ),
    )
    assert dict(decision.annotations) == {"metallb.universe.tf/allow-shared-ip": "k", POOL: "main"}
    again = decide(allocator, written(service, decision))
    assert not again.changed and again.events == ()


def test_deleting_a_service_frees_its_address_and_asks_for_reprocessing() -> None:
    allocator = allocator_for(pool("one", "192.0.2.0/32"))
    decide(allocator, svc("a"))
    assert decide(allocator, svc("b")).ingress_ips == ()
    assert forget(allocator, "default/a") is SyncResult.REPROCESS_ALL
    assert forget(allocator, "default/a") is SyncResult.SUCCESS
    assert decide(allocator, svc("b")).ingress_ips == ("192.0.2.0",)


def test_without_configuration_nothing_is_decided() -> None:
    decision = decide(Allocator(), svc("x", ingress=("192.0.2.1",)))
    assert not decision.handled and not decision.changed


def test_empty_configuration_and_missing_cluster_ips_clear_state() -> None:
    allocator = Allocator()
    assert apply_config(allocator, Config()) is SyncResult.REPROCESS_ALL
    assert apply_config(allocator, None) is SyncResult.ERROR_NO_RETRY
    decision = decide(allocator, svc("x", ingress=("192.0.2.1",), annotations={POOL: "main"}))
    assert decision.ingress_ips == () and decision.pool is None and decision.result is SyncResult.ERROR_NO_RETRY
    decision = decide(default_allocator(), svc("y", cluster=(), ingress=("192.0.2.1",)))
    assert decision.ingress_ips == () and decision.result is SyncResult.ERROR_NO_RETRY and decision.events == ()
