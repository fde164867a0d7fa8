"""The allocator, rule by rule, with MetalLB's error messages (internal/allocator, controller allocateIPs)."""

from __future__ import annotations

import ipaddress

import pytest

from metallb_fast.allocator import AllocationError, Allocator, Family, PoolCounters
from metallb_fast.allocator.allocator import MAX_INT64
from metallb_fast.allocator.usedset import UsedAddresses
from metallb_fast.config.model import (
    AddressRange,
    Config,
    LabelSelector,
    Pool,
    SelectorOperator,
    SelectorRequirement,
    ServiceAllocation,
)
from metallb_fast.resources import Service, ServicePort


def addresses(text: str) -> AddressRange:
    if "-" in text:
        first, last = (ipaddress.ip_address(p.strip()) for p in text.split("-"))
        return AddressRange(first, last, text)
    net = ipaddress.ip_network(text)
    return AddressRange(net[0], net[-1], text, net.prefixlen)


def pool(name: str, *entries: str, **kwargs: object) -> Pool:
    return Pool(name, tuple(addresses(e) for e in entries), **kwargs)  # type: ignore[arg-type]


def allocator_for(*pools: Pool, namespaces: dict[str, dict[str, str]] | None = None) -> Allocator:
    allocator = Allocator()
    allocator.set_config(Config(pools=pools), namespaces)
    return allocator


def svc(
    name: str,
    cluster: tuple[str, ...] = ("10.96.0.1",),
    namespace: str = "default",
    annotations: dict[str, str] | None = None,
    labels: dict[str, str] | None = None,
    ports: tuple[tuple[str, int], ...] = (("TCP", 80),),
    policy: str | None = None,
    lb_ip: str = "",
    local: bool = False,
    selector: dict[str, str] | None = None,
    ingress: tuple[str, ...] = (),
    lb_class: str | None = None,
    type_: str = "LoadBalancer",
) -> Service:
    return Service(
        namespace=namespace,
        name=name,
        type=type_,
        labels=tuple(sorted((labels or {}).items())),
        annotations=tuple(sorted((annotations or {}).items())),
        cluster_ips=cluster,
        ip_family_policy=policy,
        load_balancer_ip=lb_ip,
        load_balancer_class=lb_class,
        external_traffic_policy="Local" if local else "Cluster",
        selector=tuple(sorted((selector or {"app": name}).items())),
        ports=tuple(ServicePort(p, n) for p, n in ports),
        ingress_ips=ingress,
    )


def ips(*texts: str) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    return [ipaddress.ip_address(t) for t in texts]


def allocate(allocator: Allocator, service: Service) -> list[str]:
    return [str(ip) for ip in allocator.allocate_for_service(service)]


# ------------------------------------------------------------------------------------------- used addresses
def test_used_addresses_find_lowest_free_across_runs() -> None:
    used = UsedAddresses()
    for value in (1, 2, 3, 7):
        used.add(value)
    assert used.runs == 2
    assert used.lowest_free(1, 10) == 4
    assert used.lowest_free(7, 10) == 8
    assert used.lowest_free(7, 7) is None
    used.discard(2)
    assert used.lowest_free(1, 10) == 2
    assert list(used) == [1, 3, 7]


def test_used_addresses_runs_continue_across_buggy_addresses() -> None:
    used = UsedAddresses(skip_buggy=True)
    base = int(ipaddress.IPv4Address("192.0.2.0"))
    for last in range(1, 255):
        used.add(base + last)
    used.add(base + 257)  # 192.0.3.1
    assert used.runs == 1
    assert used.lowest_free(base, base + 1000) == base + 258
    used.discard(base + 254)
    assert used.lowest_free(base, base + 1000) == base + 254
    assert used.runs == 2


# ------------------------------------------------------------------------------------------------ families
def test_single_stack_service_gets_its_cluster_ip_family() -> None:
    allocator = allocator_for(pool("p", "192.0.2.0/30", "2001:db8::/126"))
    assert allocate(allocator, svc("v4")) == ["192.0.2.0"]
    assert allocate(allocator, svc("v6", cluster=("fd00::1",))) == ["2001:db8::"]


def test_require_dual_stack_gets_both_families_ipv4_first() -> None:
    allocator = allocator_for(pool("p", "2001:db8::/126", "192.0.2.0/30"))
    service = svc("d", cluster=("fd00::1", "10.96.0.1"), policy="RequireDualStack")
    assert allocate(allocator, service) == ["192.0.2.0", "2001:db8::"]


def test_require_dual_stack_fails_without_a_dual_pool() -> None:
    allocator = allocator_for(pool("v4", "192.0.2.0/30"), pool("v6", "2001:db8::/126"))
    service = svc("d", cluster=("10.96.0.1", "fd00::1"), policy="RequireDualStack")
    with pytest.raises(AllocationError, match=r"^no available IPs$"):
        allocate(allocator, service)


def test_prefer_dual_stack_takes_one_family_when_no_pool_has_both() -> None:
    allocator = allocator_for(pool("v6", "2001:db8::/126"))
    service = svc("d", cluster=("10.96.0.1", "fd00::1"), policy="PreferDualStack")
    assert allocate(allocator, service) == ["2001:db8::"]


def test_prefer_dual_stack_prefers_a_pool_with_both_families() -> None:
    allocator = allocator_for(pool("a-v4", "192.0.2.0/30"), pool("b-dual", "198.51.100.0/30", "2001:db8::/126"))
    service = svc("d", cluster=("10.96.0.1", "fd00::1"), policy="PreferDualStack")
    assert allocate(allocator, service) == ["198.51.100.0", "2001:db8::"]


def test_additional_family_comes_from_the_same_pool() -> None:
    allocator = allocator_for(pool("dual", "192.0.2.0/30", "2001:db8::/126"))
    service = svc("d", policy="PreferDualStack")
    assert allocate(allocator, service) == ["192.0.2.0"]
    added = allocator.allocate_additional_family(service, ipaddress.ip_address("192.0.2.0"), "dual")
    assert str(added) == "2001:db8::"
    assert [str(i) for i in allocator.ips_of(service.key)] == ["192.0.2.0", "2001:db8::"]


def test_additional_family_missing_from_the_pool_is_metallbs_nil_message() -> None:
    allocator = allocator_for(pool("v4", "192.0.2.0/30"))
    service = svc("d", policy="PreferDualStack")
    allocate(allocator, service)
    with pytest.raises(AllocationError) as err:
        allocator.allocate_additional_family(service, ipaddress.ip_address("192.0.2.0"), "v4")
    assert str(err.value) == '["192.0.2.0" "<nil>"] is not allowed in config'


# ------------------------------------------------------------------------------------- requested addresses
def test_requested_addresses_by_annotation_and_spec() -> None:
    allocator = allocator_for(pool("p", "192.0.2.0/24", "2001:db8::/120", auto_assign=False))
    assert allocate(allocator, svc("a", annotations={"metallb.io/loadBalancerIPs": "192.0.2.7"})) == ["192.0.2.7"]
    assert allocate(allocator, svc("b", lb_ip="192.0.2.8")) == ["192.0.2.8"]
    dual = svc(
        "c",
        cluster=("10.96.0.3", "fd00::3"),
        policy="RequireDualStack",
        annotations={"metallb.io/loadBalancerIPs": "192.0.2.9, 2001:db8::9"},
    )
    assert allocate(allocator, dual) == ["192.0.2.9", "2001:db8::9"]


@pytest.mark.parametrize(
    ("service", "message"),
    [
        (
            svc("x", annotations={"metallb.io/loadBalancerIPs": "192.0.2.1"}, lb_ip="192.0.2.2"),
            "service can not have both metallb.io/loadBalancerIPs and svc.Spec.LoadBalancerIP",
        ),
        (
            svc("x", annotations={"metallb.io/loadBalancerIPs": "192.0.2.1,nope"}),
            'invalid metallb.io/loadBalancerIPs: "192.0.2.1,nope"',
        ),
        (svc("x", lb_ip="please"), 'invalid spec.loadBalancerIP "please"'),
        (
            svc("x", annotations={"metallb.io/loadBalancerIPs": "192.0.2.1,192.0.2.2"}),
            'IPFamilyForAddresses: same address family ["192.0.2.1" "192.0.2.2"]',
        ),
        (
            svc("x", cluster=("fd00::1",), lb_ip="192.0.2.1"),
            'requested loadBalancer IP(s) ["192.0.2.1"] does not match the ipFamily of the service',
        ),
        (svc("x", lb_ip="203.0.113.1"), '["203.0.113.1"] is not allowed in config'),
        (
            svc("x", lb_ip="192.0.2.1", annotations={"metallb.io/address-pool": "other"}),
            'requested loadBalancer IP(s) ["192.0.2.1"] is not compatible with requested address pool other',
        ),
        (svc("x", annotations={"metallb.io/address-pool": "nope"}), 'unknown pool "nope"'),
    ],
)
def test_request_errors_use_metallbs_messages(service: Service, message: str) -> None:
    allocator = allocator_for(pool("p", "192.0.2.0/24"), pool("other", "198.51.100.0/24"))
    with pytest.raises(AllocationError) as err:
        allocate(allocator, service)
    assert str(err.value) == message
    assert allocator.ips_of(service.key) == ()


def test_requested_address_in_a_pool_with_avoid_buggy_ips_must_not_be_buggy() -> None:
    allocator = allocator_for(pool("p", "192.0.2.0/24", avoid_buggy_ips=True))
    with pytest.raises(AllocationError, match="not allowed in config"):
        allocate(allocator, svc("x", lb_ip="192.0.2.255"))


def test_address_pool_annotation_reaches_a_pool_without_auto_assign() -> None:
    allocator = allocator_for(pool("auto", "192.0.2.0/30"), pool("manual", "198.51.100.0/30", auto_assign=False))
    assert allocate(allocator, svc("a")) == ["192.0.2.0"]
    assert allocate(allocator, svc("b", annotations={"metallb.io/address-pool": "manual"})) == ["198.51.100.0"]
    deprecated = svc("c", annotations={"metallb.universe.tf/address-pool": "manual"})
    assert allocate(allocator, deprecated) == ["198.51.100.1"]


def test_full_requested_pool_reports_metallbs_message() -> None:
    allocator = allocator_for(pool("tiny", "192.0.2.0/32", auto_assign=False))
    allocate(allocator, svc("a", annotations={"metallb.io/address-pool": "tiny"}))
    with pytest.raises(AllocationError) as err:
        allocate(allocator, svc("b", annotations={"metallb.io/address-pool": "tiny"}))
    assert str(err.value) == '["<nil>"] is not allowed in config'


def test_auto_assign_false_pools_are_never_picked_automatically() -> None:
    allocator = allocator_for(pool("manual", "192.0.2.0/30", auto_assign=False))
    with pytest.raises(AllocationError, match=r"^no available IPs$"):
        allocate(allocator, svc("a"))


# ---------------------------------------------------------------------------------------- serviceAllocation
def by_labels(**labels: str) -> LabelSelector:
    return LabelSelector(match_labels=tuple(sorted(labels.items())))


def test_pools_for_the_namespace_come_first_by_priority_then_open_pools() -> None:
    allocator = allocator_for(
        pool("open", "192.0.2.0/30"),
        pool("low", "198.51.100.0/30", service_allocation=ServiceAllocation(priority=20, namespaces=("prod",))),
        pool("high", "203.0.113.0/31", service_allocation=ServiceAllocation(priority=10, namespaces=("prod",))),
        pool("unset", "203.0.113.8/30", service_allocation=ServiceAllocation(namespaces=("prod",))),
    )
    got = [allocate(allocator, svc(f"s{i}", namespace="prod"))[0] for i in range(9)]
    assert got == [
        "203.0.113.0", "203.0.113.1",  # high, priority 10
        "198.51.100.0", "198.51.100.1", "198.51.100.2", "198.51.100.3",  # low, priority 20
        "203.0.113.8", "203.0.113.9", "203.0.113.10",  # unset priority: after every positive one
    ]  # fmt: skip
    assert allocate(allocator, svc("elsewhere", namespace="dev")) == ["192.0.2.0"]


def test_namespace_selectors_and_service_selectors_must_both_match() -> None:
    both = ServiceAllocation(namespace_selectors=(by_labels(team="a"),), service_selectors=(by_labels(tier="web"),))
    allocator = allocator_for(
        pool("open", "192.0.2.0/30"),
        pool("team-a-web", "198.51.100.0/30", service_allocation=both),
        namespaces={"a": {"team": "a"}, "b": {"team": "b"}},
    )
    assert allocate(allocator, svc("x", namespace="a", labels={"tier": "web"})) == ["198.51.100.0"]
    assert allocate(allocator, svc("y", namespace="a", labels={"tier": "db"})) == ["192.0.2.0"]
    assert allocate(allocator, svc("z", namespace="b", labels={"tier": "web"})) == ["192.0.2.1"]


def test_service_selector_expressions_select_pools() -> None:
    not_canary = LabelSelector(
        match_expressions=(SelectorRequirement("release", SelectorOperator.NOT_IN, ("canary",)),)
    )
    allocator = allocator_for(
        pool("open", "192.0.2.0/30"),
        pool("stable", "198.51.100.0/30", service_allocation=ServiceAllocation(service_selectors=(not_canary,))),
    )
    assert allocate(allocator, svc("a", labels={"release": "canary"})) == ["192.0.2.0"]
    assert allocate(allocator, svc("b", labels={"release": "ga"})) == ["198.51.100.0"]


def test_requested_address_in_a_pool_pinned_elsewhere_is_refused() -> None:
    allocator = allocator_for(
        pool("prod-only", "192.0.2.0/30", service_allocation=ServiceAllocation(namespaces=("prod",)))
    )
    with pytest.raises(AllocationError) as err:
        allocate(allocator, svc("x", namespace="dev", lb_ip="192.0.2.1"))
    assert str(err.value) == "pool prod-only not compatible for ip assignment"


def test_a_pool_with_service_allocation_is_not_an_open_pool() -> None:
    allocator = allocator_for(pool("pinned", "192.0.2.0/30", service_allocation=ServiceAllocation(priority=1)))
    with pytest.raises(AllocationError, match=r"^no available IPs$"):
        allocate(allocator, svc("x"))


# ------------------------------------------------------------------------------------------- within a pool
def test_ranges_in_order_lowest_free_address() -> None:
    allocator = allocator_for(pool("p", "198.51.100.10-198.51.100.11", "192.0.2.0/31"))
    got = [allocate(allocator, svc(f"s{i}"))[0] for i in range(4)]
    assert got == ["198.51.100.10", "198.51.100.11", "192.0.2.0", "192.0.2.1"]
    allocator.release("default/s1")
    assert allocate(allocator, svc("s4")) == ["198.51.100.11"]


def test_avoid_buggy_ips_skips_dot_zero_and_dot_255() -> None:
    allocator = allocator_for(pool("p", "192.0.2.254-192.0.3.1", avoid_buggy_ips=True))
    got = [allocate(allocator, svc(f"s{i}"))[0] for i in range(2)]
    assert got == ["192.0.2.254", "192.0.3.1"]
    with pytest.raises(AllocationError):
        allocate(allocator, svc("s2"))


# ------------------------------------------------------------------------------------------------- sharing
def test_services_with_the_same_key_share_when_ports_differ() -> None:
    allocator = allocator_for(pool("p", "192.0.2.0/30"))
    key = {"metallb.io/allow-shared-ip": "k"}
    a = allocate(allocator, svc("udp", annotations=key, ports=(("UDP", 53),)))
    b = allocate(allocator, svc("tcp", annotations=key, ports=(("TCP", 53),)))
    c = allocate(allocator, svc("tcp2", annotations=key, ports=(("TCP", 53),)))
    assert a == b == ["192.0.2.0"]
    assert c == ["192.0.2.1"]
    assert allocator.counters("p").assigned_ipv4 == 2


def test_sharing_needs_both_keys_equal_and_non_empty() -> None:
    allocator = allocator_for(pool("p", "192.0.2.0/30"))
    allocate(allocator, svc("a", annotations={"metallb.io/allow-shared-ip": "k"}))
    assert allocate(allocator, svc("b", ports=(("TCP", 81),))) == ["192.0.2.1"]
    other = svc("c", annotations={"metallb.io/allow-shared-ip": "other"}, ports=(("TCP", 82),))
    assert allocate(allocator, other) == ["192.0.2.2"]
    deprecated = svc("d", annotations={"metallb.universe.tf/allow-shared-ip": "k"}, ports=(("TCP", 83),))
    assert allocate(allocator, deprecated) == ["192.0.2.0"]


def test_local_policy_shares_only_with_the_same_selector() -> None:
    allocator = allocator_for(pool("p", "192.0.2.0/30"))
    key = {"metallb.io/allow-shared-ip": "k"}
    allocate(allocator, svc("a", annotations=key, local=True, selector={"app": "x"}))
    same = svc("b", annotations=key, local=True, selector={"app": "x"}, ports=(("TCP", 81),))
    other = svc("c", annotations=key, local=True, selector={"app": "y"}, ports=(("TCP", 82),))
    assert allocate(allocator, same) == ["192.0.2.0"]
    assert allocate(allocator, other) == ["192.0.2.1"]


@pytest.mark.parametrize(
    ("second", "message"),
    [
        (
            svc("b", ports=(("TCP", 81),), lb_ip="192.0.2.0"),
            'can\'t change sharing key for "default/b", address also in use by default/a',
        ),
        (
            svc("b", annotations={"metallb.io/allow-shared-ip": "k"}, lb_ip="192.0.2.0"),
            'port TCP/80 is already in use on "192.0.2.0"',
        ),
    ],
)
def test_sharing_refusals_use_metallbs_messages(second: Service, message: str) -> None:
    allocator = allocator_for(pool("p", "192.0.2.0/30"))
    allocate(allocator, svc("a", annotations={"metallb.io/allow-shared-ip": "k"}))
    with pytest.raises(AllocationError) as err:
        allocate(allocator, second)
    assert str(err.value) == message


def test_the_only_user_may_change_its_sharing_key() -> None:
    allocator = allocator_for(pool("p", "192.0.2.0/30"))
    allocate(allocator, svc("a", lb_ip="192.0.2.0"))
    allocator.assign(svc("a", annotations={"metallb.io/allow-shared-ip": "k"}), ips("192.0.2.0"))
    assert allocate(allocator, svc("b", annotations={"metallb.io/allow-shared-ip": "k"}, ports=(("TCP", 9),))) == [
        "192.0.2.0"
    ]


def test_two_addresses_of_one_family_are_refused() -> None:
    allocator = allocator_for(pool("p", "192.0.2.0/30"))
    with pytest.raises(AllocationError) as err:
        allocator.assign(svc("a"), ips("192.0.2.0", "192.0.2.1"))
    assert str(err.value) == '"192.0.2.0" "192.0.2.1" has the same family'


# ------------------------------------------------------------------------------------------ config changes
def test_config_change_keeps_addresses_still_in_a_pool_and_follows_renames() -> None:
    allocator = allocator_for(pool("old", "192.0.2.0/29"))
    allocate(allocator, svc("a"))
    allocate(allocator, svc("b"))
    allocator.set_config(Config(pools=(pool("renamed", "192.0.2.0/30"),)))
    assert allocator.pool_of("default/a") == "renamed"
    assert allocator.counters("renamed") == PoolCounters(2, 2, 0, 0)
    allocator.set_config(Config(pools=(pool("moved", "198.51.100.0/30"),)))
    assert allocator.ips_of("default/a") == ()
    assert allocator.counters("moved") == PoolCounters(0, 4, 0, 0)


def test_avoid_buggy_ips_turned_on_releases_a_dot_zero() -> None:
    allocator = allocator_for(pool("p", "192.0.2.0/30"))
    allocate(allocator, svc("a"))
    allocator.set_config(Config(pools=(pool("p", "192.0.2.0/30", avoid_buggy_ips=True),)))
    assert allocator.ips_of("default/a") == ()


def test_release_frees_the_address_for_the_next_service() -> None:
    allocator = allocator_for(pool("p", "192.0.2.0/32"))
    allocate(allocator, svc("a"))
    with pytest.raises(AllocationError):
        allocate(allocator, svc("b"))
    assert allocator.release("default/a")
    assert not allocator.release("default/a")
    assert allocate(allocator, svc("b")) == ["192.0.2.0"]


# ------------------------------------------------------------------------------------------------- counts
def test_counts_per_pool_and_family() -> None:
    allocator = allocator_for(pool("p", "192.0.2.0/24", "198.51.100.10-198.51.100.19", "2001:db8::/120"))
    allocate(allocator, svc("a"))
    allocate(allocator, svc("b", cluster=("fd00::1",)))
    assert allocator.counters("p") == PoolCounters(1, 265, 1, 255)


def test_counts_with_avoid_buggy_ips_and_huge_ipv6() -> None:
    allocator = allocator_for(
        pool("buggy", "192.0.2.0/23", "198.51.100.250-198.51.101.5", avoid_buggy_ips=True),
        pool("huge", "2001:db8::/64"),
    )
    # /23: 512 - 4 buggy; .250-.5 across a boundary: 12 - 2 (.255 and .0)
    assert allocator.counters("buggy") == PoolCounters(0, 508 + 10, 0, 0)
    assert allocator.counters("huge") == PoolCounters(0, 0, 0, MAX_INT64)


def test_family_enum_prints_like_metallb() -> None:
    assert f"{Family.DUAL}" == "dual"
