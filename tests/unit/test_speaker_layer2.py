"""The node's announcement plan: the exact `owned` table for Responder.sync() (speaker/layer2.py)."""

from __future__ import annotations

import ipaddress

import pytest

from metallb_fast.config.model import L2Advertisement
from metallb_fast.resources import Service
from metallb_fast.speaker.explain import explain
from metallb_fast.speaker.layer2 import (
    DEFAULT_EXCLUDED_INTERFACES,
    InterfaceExclusion,
    LinkInfo,
    can_answer,
    interface_choice,
    plan_node,
)
from tests.unit.speaker_builders import (
    hash_order,
    make_config,
    make_node,
    make_nodes,
    make_service,
    make_slice,
    selector,
)

V4 = ipaddress.ip_address("192.0.2.10")
V6 = ipaddress.ip_address("2001:db8::10")
MAC = {name: bytes([2, 0, 0, 0, 0, i + 1]) for i, name in enumerate(["eth0", "eth1", "eth2", "bond0", "veth1"])}


def link(name: str, **kw) -> LinkInfo:
    defaults = {"up": True, "broadcast": True, "has_ipv4": True, "has_ipv6_link_local": True}
    defaults.update(kw)
    return LinkInfo(name=name, mac=MAC.get(name, b"\x02\x00\x00\x00\x00\xff"), **defaults)


LINKS = (link("eth0"), link("eth1"), link("eth2"))
EXCLUDE = InterfaceExclusion()


def only_node_wins(names: tuple[str, ...], address: str) -> str:
    return hash_order(names, address)[0]


# ---- interface eligibility -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("info", "v4", "v6"),
    [
        (link("eth0"), True, True),
        (link("eth0", up=False), False, False),
        (link("eth0", enslaved=True), False, False),
        (link("eth0", noarp=True), False, False),
        (link("eth0", broadcast=False), False, True),
        (link("eth0", has_ipv6_link_local=False), True, False),
        # ARP needs an IPv4 address on the link (MetalLB would answer without one).
        (link("eth0", has_ipv4=False), False, True),
        (link("veth1"), False, False),
        (link("docker0"), False, False),
        (link("lo", broadcast=False), False, False),
    ],
)
def test_interface_eligibility(info: LinkInfo, v4: bool, v6: bool) -> None:
    assert can_answer(info, V4, EXCLUDE) is v4
    assert can_answer(info, V6, EXCLUDE) is v6


def test_default_exclusion_patterns() -> None:
    assert len(DEFAULT_EXCLUDED_INTERFACES) == 14
    excluded = [
        "docker0", "cbr0", "dummy0", "virbr0", "lxcbr0", "veth12ab", "lo", "cali1234", "tunl0",
        "flannel.1", "kube-ipvs0", "cni0", "nodelocaldns", "lxc00aa",
    ]
    for name in excluded:
        assert EXCLUDE.excludes(name), name
    for name in ("eth0", "ens3", "bond0", "br-lan", "lo0", "vlan.100", "mylo"):
        assert not EXCLUDE.excludes(name), name


def test_exclusion_patterns_are_overridable() -> None:
    custom = InterfaceExclusion(patterns=(r"^eth1$",))
    assert custom.excludes("eth1") and not custom.excludes("eth10")
    assert not custom.excludes("veth0")
    assert not InterfaceExclusion(patterns=()).excludes("docker0")
    with pytest.raises(ValueError, match=r"announcedInterfacesToExclude: pattern '\(' is not a valid regexp"):
        InterfaceExclusion(patterns=("(",))


# ---- interface unions ------------------------------------------------------------------------------------------


def test_interfaces_are_the_union_of_advertisements_selecting_this_node() -> None:
    nodes = {"a": make_node("a", zone="x")}
    ads = (
        L2Advertisement(name="1", interfaces=("eth0",)),
        L2Advertisement(name="2", interfaces=("eth1",)),
        L2Advertisement(name="3", interfaces=("eth2",), node_selectors=(selector(zone="other"),)),
    )
    choice = interface_choice("a", ads, nodes)
    assert not choice.all_interfaces
    assert choice.listed == ["eth0", "eth1"]
    everything = interface_choice("a", (*ads, L2Advertisement(name="4")), nodes)
    assert everything.all_interfaces and everything.listed == []


def test_owned_table_for_the_winner_with_interface_union() -> None:
    nodes = make_nodes("a")
    config = make_config(
        L2Advertisement(name="1", interfaces=("eth0",)), L2Advertisement(name="2", interfaces=("eth2",))
    )
    service = make_service(ips=["192.0.2.10", "2001:db8::10"])
    links = (link("eth0"), link("eth1"), link("eth2", has_ipv6_link_local=False))
    plan = plan_node("a", [service], config, nodes, [make_slice(service, "a")], links)
    assert plan.owned == {(V4, "eth0"): MAC["eth0"], (V4, "eth2"): MAC["eth2"], (V6, "eth0"): MAC["eth0"]}
    assert plan.warnings == ()
    assert [a.service.key for a in plan.announced] == ["default/web"]
    assert plan.announced[0].interfaces.listed == ["eth0", "eth2"]
    assert plan.announced[0].addresses == (V4, V6)


def test_advertisement_without_interfaces_means_every_eligible_interface() -> None:
    nodes = make_nodes("a")
    service = make_service()
    links = (link("eth0"), link("eth1", up=False), link("bond0"), link("eth2", enslaved=True), link("veth1"))
    plan = plan_node("a", [service], make_config(L2Advertisement(name="all")), nodes, [make_slice(service, "a")], links)
    assert plan.owned == {(V4, "eth0"): MAC["eth0"], (V4, "bond0"): MAC["bond0"]}


def test_non_winner_owns_nothing_and_says_why() -> None:
    names = ("a", "b", "c")
    nodes = make_nodes(*names)
    service = make_service()
    winner = only_node_wins(names, "192.0.2.10")
    loser = next(n for n in names if n != winner)
    config = make_config(L2Advertisement(name="all"))
    slices = [make_slice(service, *names)]
    assert plan_node(winner, [service], config, nodes, slices, LINKS).owned
    plan = plan_node(loser, [service], config, nodes, slices, LINKS)
    assert plan.owned == {} and plan.announced == ()
    assert plan.reasons == {"default/web": "notOwner"}


def test_named_interface_that_does_not_exist_warns_and_does_not_fail_over() -> None:
    names = ("a", "b")
    nodes = make_nodes(*names)
    service = make_service(ips=["192.0.2.10"])
    config = make_config(L2Advertisement(name="x", interfaces=("eth9",)))
    slices = [make_slice(service, *names)]
    winner = only_node_wins(names, "192.0.2.10")
    other = next(n for n in names if n != winner)
    plan = plan_node(winner, [service], config, nodes, slices, LINKS)
    assert plan.owned == {}
    assert plan.announced == ()
    assert plan.reasons == {"default/web": "announceFailed"}
    assert [(e.type, e.reason, e.message) for e in plan.warnings] == [
        (
            "Warning",
            "announceFailed",
            f'the interfaces specified by LB IP "192.0.2.10" doesn\'t exist in assigned node "{winner}" '
            'with protocol "layer2"',
        )
    ]
    # No failover: the other node still loses the election and announces nothing.
    other_plan = plan_node(other, [service], config, nodes, slices, LINKS)
    assert other_plan.owned == {} and other_plan.reasons == {"default/web": "notOwner"}


def test_named_interface_that_is_excluded_counts_as_missing() -> None:
    nodes = make_nodes("a")
    service = make_service()
    config = make_config(L2Advertisement(name="x", interfaces=("veth1",)))
    plan = plan_node("a", [service], config, nodes, [make_slice(service, "a")], (*LINKS, link("veth1")))
    assert plan.owned == {} and [e.reason for e in plan.warnings] == ["announceFailed"]


def test_named_interface_that_exists_but_is_down_is_not_a_failure() -> None:
    nodes = make_nodes("a")
    service = make_service()
    config = make_config(L2Advertisement(name="x", interfaces=("eth1", "eth9")))
    links = (link("eth0"), link("eth1", up=False))
    plan = plan_node("a", [service], config, nodes, [make_slice(service, "a")], links)
    assert plan.owned == {} and plan.warnings == ()
    assert [a.service.key for a in plan.announced] == ["default/web"]


def test_services_sharing_an_address_merge_their_interfaces() -> None:
    nodes = make_nodes("a")
    shared = {"metallb.io/allow-shared-ip": "k"}
    tcp = make_service("tcp", labels={"proto": "tcp"}, annotations=shared)
    udp = make_service("udp", labels={"proto": "udp"}, annotations=shared)
    config = make_config(L2Advertisement(name="all", interfaces=("eth0", "eth1")))
    plan = plan_node("a", [tcp, udp], config, nodes, [make_slice(tcp, "a"), make_slice(udp, "a")], LINKS)
    assert set(plan.owned) == {(V4, "eth0"), (V4, "eth1")}
    assert [a.service.name for a in plan.announced] == ["tcp", "udp"]


def test_services_that_are_not_announceable_get_metallb_reasons() -> None:
    nodes = make_nodes("a")
    cluster_ip = Service(namespace="default", name="internal", type="ClusterIP")
    pending = make_service("pending", ips=[])
    broken = make_service("broken", ips=["not-an-ip"])
    config = make_config(L2Advertisement(name="all"))
    plan = plan_node("a", [cluster_ip, pending, broken], config, nodes, [], LINKS)
    assert plan.reasons == {
        "default/internal": "notLoadBalancer",
        "default/pending": "noIPAllocated",
        "default/broken": "invalidIP",
    }
    assert plan.owned == {}
    # `plan` must tell the same story as the speaker.
    for service in (cluster_ip, pending, broken):
        assert explain(service, config, nodes, []).reasons == (("a", plan.reasons[service.key]),)


def test_endpoint_slices_of_other_services_do_not_count() -> None:
    nodes = make_nodes("a")
    web, db = make_service("web"), make_service("db", ips=["192.0.2.11"])
    plan = plan_node("a", [web, db], make_config(L2Advertisement(name="all")), nodes, [make_slice(db, "a")], LINKS)
    assert plan.reasons == {"default/web": "notOwner"}
    assert {k[0] for k in plan.owned} == {ipaddress.ip_address("192.0.2.11")}
