"""Properties of the allocator driven through the controller's decision, over random Services, config changes and
deletions: no address is held by two Services that may not share it, every address lies in a pool the Service may
use, the same input gives the same result, and the counters always equal a recount from scratch."""

from __future__ import annotations

import dataclasses
import ipaddress
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from metallb_fast.allocator import Allocator, service_keys
from metallb_fast.allocator.usedset import is_buggy
from metallb_fast.config.model import Config, LabelSelector, Pool, ServiceAllocation
from metallb_fast.controller.decide import decide, forget
from metallb_fast.resources import Service
from tests.unit.test_allocator import pool, svc

NAMESPACES = {"a": {"team": "a"}, "b": {"team": "b"}}
CANDIDATE_RANGES = [
    "192.0.2.0/30",
    "192.0.2.254-192.0.3.1",
    "198.51.100.8/29",
    "203.0.113.5-203.0.113.6",
    "2001:db8::/126",
    "2001:db8:1::fe-2001:db8:1::101",
]
NAMES = [f"s{i}" for i in range(8)]


@st.composite
def pools(draw: Any) -> tuple[Pool, ...]:
    chosen = draw(st.lists(st.sampled_from(range(len(CANDIDATE_RANGES))), min_size=1, max_size=5, unique=True))
    groups = draw(st.lists(st.integers(0, 2), min_size=len(chosen), max_size=len(chosen)))
    result = []
    for group in sorted(set(groups)):
        entries = [CANDIDATE_RANGES[c] for c, g in zip(chosen, groups, strict=True) if g == group]
        allocation = draw(
            st.none()
            | st.builds(
                ServiceAllocation,
                priority=st.none() | st.integers(1, 3),
                namespaces=st.sampled_from([(), ("a",), ("b",)]),
                namespace_selectors=st.sampled_from([(), (LabelSelector((("team", "b"),)),)]),
                service_selectors=st.sampled_from([(), (LabelSelector((("tier", "web"),)),)]),
            )
        )
        result.append(
            pool(
                draw(st.sampled_from(["p0", "p1", "p2"])) + f"-{group}",
                *entries,
                auto_assign=draw(st.booleans()),
                avoid_buggy_ips=draw(st.booleans()),
                service_allocation=allocation,
            )
        )
    return tuple(result)


@st.composite
def services(draw: Any) -> Service:
    name = draw(st.sampled_from(NAMES))
    family = draw(st.sampled_from(["v4", "v6", "dual-require", "dual-prefer", "v4-prefer"]))
    cluster = {
        "v4": ("10.96.0.1",),
        "v6": ("fd00::1",),
        "dual-require": ("10.96.0.1", "fd00::1"),
        "dual-prefer": ("fd00::1", "10.96.0.1"),
        "v4-prefer": ("10.96.0.1",),
    }[family]
    policy = {"dual-require": "RequireDualStack", "dual-prefer": "PreferDualStack", "v4-prefer": "PreferDualStack"}
    annotations: dict[str, str] = {}
    key = draw(st.sampled_from([None, "k1", "k2"]))
    if key:
        prefix = draw(st.sampled_from(["metallb.io/", "metallb.universe.tf/"]))
        annotations[prefix + "allow-shared-ip"] = key
    request = draw(st.sampled_from([None, "pool", "ip"]))
    if request == "pool":
        annotations["metallb.io/address-pool"] = draw(st.sampled_from(["p0-0", "p1-1", "p2-2", "nope"]))
    requested_ips = st.sampled_from(["192.0.2.1", "198.51.100.9", "2001:db8::2", "203.0.113.9"])
    lb_ip = draw(requested_ips) if request == "ip" else ""
    ports = draw(
        st.lists(st.sampled_from([("TCP", 80), ("UDP", 53), ("TCP", 53)]), min_size=1, max_size=2, unique=True)
    )
    return svc(
        name,
        cluster=cluster,
        namespace=draw(st.sampled_from(["a", "b"])),
        annotations=annotations,
        labels={"tier": draw(st.sampled_from(["web", "db"]))},
        ports=tuple(ports),
        policy=policy.get(family),
        lb_ip=lb_ip,
        local=draw(st.booleans()),
        selector={"app": draw(st.sampled_from(["x", "y"]))},
        type_=draw(st.sampled_from(["LoadBalancer"] * 5 + ["ClusterIP"])),
    )


operations = st.lists(
    st.one_of(
        st.tuples(st.just("apply"), services()),
        st.tuples(st.just("delete"), st.sampled_from(NAMES)),
        st.tuples(st.just("config"), pools()),
    ),
    min_size=1,
    max_size=25,
)


def run(initial: tuple[Pool, ...], ops: list[tuple[str, Any]]) -> tuple[Allocator, dict[str, Service], list[Any]]:
    """Play the operations like the controller: every config change reprocesses all Services, assigned first."""
    allocator = Allocator()
    allocator.set_config(Config(pools=initial), NAMESPACES)
    current: dict[str, Service] = {}
    trace: list[Any] = []

    def converge(service: Service) -> None:
        decision = decide(allocator, service)
        trace.append((decision.ingress_ips, decision.annotations, decision.events, decision.result))
        current[service.key] = dataclasses.replace(
            service, ingress_ips=decision.ingress_ips, annotations=decision.annotations
        )

    def reprocess_all() -> None:
        for key in sorted(current, key=lambda k: -len(current[k].ingress_ips)):
            converge(current[key])

    for op, arg in ops:
        if op == "apply":
            previous = current.get(arg.key)
            if previous is not None:  # an update keeps the status the controller wrote
                arg = dataclasses.replace(arg, ingress_ips=previous.ingress_ips)
            converge(arg)
            converge(current[arg.key])  # the status write triggers one more pass, as in a cluster
        elif op == "delete":
            for ns in ("a", "b"):
                key = f"{ns}/{arg}"
                if current.pop(key, None) is not None:
                    trace.append(forget(allocator, key))
                    reprocess_all()
        else:
            allocator.set_config(Config(pools=arg), NAMESPACES)
            reprocess_all()
    return allocator, current, trace


def may_use(p: Pool, service: Service) -> bool:
    """The serviceAllocation rule, recomputed independently of the allocator."""
    allocation = p.service_allocation
    if allocation is None:
        return True
    selected = {n for n, labels in NAMESPACES.items() if any(s.matches(labels) for s in allocation.namespace_selectors)}
    namespaces = set(allocation.namespaces) | selected
    if namespaces and service.namespace not in namespaces:
        return False
    if allocation.service_selectors:
        return any(s.matches(service.label_map) for s in allocation.service_selectors)
    return True


def holds(p: Pool, ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if p.avoid_buggy_ips and ip.version == 4 and is_buggy(int(ip)):
        return False
    return p.contains(ip)


def check(allocator: Allocator, current: dict[str, Service]) -> None:
    config = allocator.config
    assert config is not None
    holders: dict[Any, list[Service]] = {}
    for key in [k for k in current if allocator.ips_of(k)]:  # a leaked allocation shows in the counters
        service = current[key]
        assigned = allocator.ips_of(key)
        p = config.pool(allocator.pool_of(key))
        assert p is not None
        assert all(holds(p, ip) for ip in assigned), (key, assigned, p.name)
        assert may_use(p, service), (key, p.name)
        assert len({ip.version for ip in assigned}) == len(assigned)
        requested = service_keys.desired_pool(service)
        if requested and service.ingress_ips:
            assert p.name == requested
        for ip in assigned:
            holders.setdefault(ip, []).append(service)
    for ip, sharing in holders.items():
        for i, first in enumerate(sharing):
            for second in sharing[i + 1 :]:
                a, b = service_keys.sharing_key(first), service_keys.sharing_key(second)
                assert a.sharing and a == b, (ip, first.key, second.key)
                assert not set(service_keys.ports(first)) & set(service_keys.ports(second)), (ip, first.key)
    for p in config.pools:
        expected = {4: 0, 6: 0}
        total = {4: 0, 6: 0}
        for r in p.ranges:
            skip_buggy = p.avoid_buggy_ips and r.version == 4
            total[r.version] += sum(1 for v in range(int(r.first), int(r.last) + 1) if not (skip_buggy and is_buggy(v)))
        for ip in holders:
            if allocator.pool_for_ips([ip]) == p.name:
                expected[ip.version] += 1
        counters = allocator.counters(p.name)
        assert (counters.assigned_ipv4, counters.assigned_ipv6) == (expected[4], expected[6])
        assert counters.available_ipv4 == total[4] - expected[4]
        assert counters.available_ipv6 == total[6] - expected[6]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pools(), operations)
def test_invariants_hold_after_any_sequence(initial: tuple[Pool, ...], ops: list[tuple[str, Any]]) -> None:
    allocator, current, _ = run(initial, ops)
    check(allocator, current)
    # status and allocator agree: what the Services show is what the allocator holds
    for key, service in current.items():
        if service.ingress_ips:
            assert tuple(str(ip) for ip in allocator.ips_of(key)) == service.ingress_ips, key


@settings(max_examples=100, deadline=None)
@given(pools(), operations)
def test_same_input_same_result(initial: tuple[Pool, ...], ops: list[tuple[str, Any]]) -> None:
    assert run(initial, ops)[2] == run(initial, ops)[2]
