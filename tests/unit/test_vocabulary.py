"""The API vocabulary: Go's reading of an address, the same in every component; class and sharing rules."""

from __future__ import annotations

import pytest

from metallb_fast.config import parse_config
from metallb_fast.controller.decide import decide
from metallb_fast.vocabulary import class_matches, ip_text, parse_ip, shares_address
from tests.unit.test_allocator import allocate, allocator_for, pool, svc

# What Go 1.19's net.ParseIP followed by To4 returns for each text ("4 a.b.c.d", "6 x::y" or None), as printed by
# net.IP.String(); checked against a Go build of the same table.
GO_PARSE_IP = [
    ("192.0.2.1", "4 192.0.2.1"),
    ("010.0.2.1", None),  # leading zeros
    ("192.0.2", None),
    ("1.2.3.4.5", None),
    ("255.255.255.256", None),
    ("0.0.0.0", "4 0.0.0.0"),
    ("2001:0db8::1", "6 2001:db8::1"),
    ("2001:DB8::A", "6 2001:db8::a"),
    ("::ffff:192.0.2.10", "4 192.0.2.10"),  # IPv4-mapped: IPv4
    ("0:0:0:0:0:ffff:192.0.2.10", "4 192.0.2.10"),
    ("::ffff:c000:20a", "4 192.0.2.10"),
    ("::192.0.2.10", "6 ::c000:20a"),  # IPv4-compatible: still IPv6
    ("::ffff:01.2.3.4", None),
    ("::ffff:1.2.3", None),
    ("1:2:3:4:5:6:1.2.3.4", "6 1:2:3:4:5:6:102:304"),
    ("1:2:3:4:5:6:7:1.2.3.4", None),
    ("1:2:3:4:5:6:7::", "6 1:2:3:4:5:6:7:0"),
    ("1:2:3:4:5:6:7:8::", None),  # :: must stand for at least one group
    ("2001:db8::12345", None),
    ("::1:", None),
    ("::", "6 ::"),
    ("fe80::1%eth0", None),  # zones are refused
    ("192.0.2.1%eth0", None),
    (" 192.0.2.1", None),
    ("192.0.2.1 ", None),
    ("1.2.3.4:80", None),
    ("[::1]", None),
    ("192.0.2.\x001", None),
    ("", None),
]


@pytest.mark.parametrize(("text", "expected"), GO_PARSE_IP)
def test_parse_ip_is_go_parse_ip_then_to4(text: str, expected: str | None) -> None:
    ip = parse_ip(text)
    assert (None if ip is None else f"{ip.version} {ip_text(ip)}") == expected


def test_nil_address_prints_as_go_does() -> None:
    assert ip_text(None) == "<nil>"


def test_a_mapped_address_is_ipv4_to_the_config_the_allocator_and_the_controller() -> None:
    # A pool written with mapped ends is an IPv4 pool.
    config = parse_config(
        [
            {
                "apiVersion": "metallb.io/v1beta1",
                "kind": "IPAddressPool",
                "metadata": {"name": "mapped", "namespace": "metallb-system"},
                "spec": {"addresses": ["::ffff:192.0.2.10-::ffff:192.0.2.11"]},
            }
        ]
    )
    assert [(str(r.first), str(r.last)) for r in config.pools[0].ranges] == [("192.0.2.10", "192.0.2.11")]
    allocator = allocator_for(pool("v4", "192.0.2.0/24"))
    # A requested mapped address is the IPv4 address, of an IPv4 Service.
    requested = svc("asks", annotations={"metallb.io/loadBalancerIPs": "::ffff:192.0.2.10"})
    assert allocate(allocator, requested) == ["192.0.2.10"]
    # A status holding the mapped form is the Service's IPv4 address: kept, and written back as Go prints it.
    held = svc("held", ingress=("::ffff:192.0.2.20",))
    decision = decide(allocator, held)
    assert decision.ingress_ips == ("192.0.2.20",) and decision.pool == "v4"
    assert [e.reason for e in decision.events] == []


def test_the_primary_family_of_a_dual_stack_service_is_go_s_reading_of_its_first_cluster_ip() -> None:
    # PreferDualStack, and no pool has both families: the pool of the primary family (clusterIPs[0]'s) wins.
    # `::ffff:10.96.0.1` is IPv4 to Go, so the IPv4 pool is the Service's, as ipfamily.ForService says.
    allocator = allocator_for(pool("a-v6", "2001:db8::/120"), pool("b-v4", "192.0.2.0/24"))
    service = svc("dual", cluster=("::ffff:10.96.0.1", "fd00::1"), policy="PreferDualStack")
    assert allocate(allocator, service) == ["192.0.2.0"]
    assert allocator.pool_of(service.key) == "b-v4"
    plain = svc("plain", cluster=("10.96.0.2", "fd00::2"), policy="PreferDualStack")
    assert allocate(allocator, plain) == ["192.0.2.1"]


@pytest.mark.parametrize(
    ("service_class", "lb_class", "ours"),
    [(None, None, True), (None, "", True), (None, "x", False), ("x", "x", True), ("x", None, False), ("", None, True)],
)
def test_class_matches(service_class: str | None, lb_class: str | None, ours: bool) -> None:
    assert class_matches(svc("s", lb_class=service_class), lb_class) is ours


@pytest.mark.parametrize(
    ("annotations", "shares"),
    [
        ({}, False),
        ({"metallb.io/allow-shared-ip": "k"}, True),
        ({"metallb.universe.tf/allow-shared-ip": "k"}, True),
        ({"metallb.io/allow-shared-ip": ""}, False),
    ],
)
def test_shares_address(annotations: dict[str, str], shares: bool) -> None:
    assert shares_address(svc("s", annotations=annotations)) is shares
