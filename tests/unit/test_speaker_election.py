"""Layer-2 election: the node MetalLB would pick, and every other node's reason (speaker/election.py)."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from metallb_fast.config.model import Config, L2Advertisement, PreferredNodeSelector
from metallb_fast.resources import Node, Service
from metallb_fast.speaker import election
from metallb_fast.speaker.election import (
    IP_NOT_ALLOWED,
    NO_MATCHING_ADVERTISEMENT,
    NOT_OWNER,
    SHARED_IP_WITH_SERVICE_SELECTOR,
    elect,
)
from tests.unit.speaker_builders import (
    hash_order,
    make_config,
    make_node,
    make_nodes,
    make_pool,
    make_service,
    make_slice,
    selector,
)


def run(service: Service, config: Config, nodes: Mapping[str, Node], slices=None, **kw) -> election.Election:
    ip = ipaddress.ip_address(service.ingress_ips[0])
    if slices is None:
        slices = [make_slice(service, *nodes)]
    return elect(service, ip, config, election.pool_name_for(config, [ip]), nodes, slices, **kw)


NODE_NAMES = ("kind-control-plane", "kind-worker", "kind-worker2", "node-a", "node-b", "worker-7")
ALL = make_config(L2Advertisement(name="all"))


# ---- ordering --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("address", ["192.0.2.10", "192.0.2.77", "192.0.2.200", "2001:db8::5", "2001:db8::1:0"])
def test_order_is_sha256_of_node_and_first_ingress_ip(address: str) -> None:
    nodes = make_nodes(*NODE_NAMES)
    service = make_service(ips=[address])
    result = run(service, ALL, nodes)
    expected = hash_order(NODE_NAMES, address)
    assert list(result.order) == expected
    assert result.winner == expected[0]
    for name in NODE_NAMES:
        assert result.reason_for(name) == (None if name == expected[0] else NOT_OWNER)


def test_several_addresses_spread_over_nodes_as_the_hash_says() -> None:
    nodes = make_nodes(*NODE_NAMES)
    winners = {}
    for last in range(1, 40):
        addr = f"192.0.2.{last}"
        winners[addr] = run(make_service(ips=[addr]), ALL, nodes).winner
        assert winners[addr] == hash_order(NODE_NAMES, addr)[0]
    assert len(set(winners.values())) > 1  # the hash really spreads addresses


def test_dual_stack_service_elects_once_on_its_first_ingress_address() -> None:
    nodes = make_nodes(*NODE_NAMES)
    service = make_service(ips=["2001:db8::7", "192.0.2.7"])
    for ip in ("2001:db8::7", "192.0.2.7"):
        result = elect(service, ipaddress.ip_address(ip), ALL, "default", nodes, [make_slice(service, *nodes)])
        assert result.winner == hash_order(NODE_NAMES, "2001:db8::7")[0]


def test_ipv6_ingress_is_hashed_in_canonical_text() -> None:
    nodes = make_nodes(*NODE_NAMES)
    result = run(make_service(ips=["2001:DB8:0:0:0:0:0:5"]), ALL, nodes)
    assert list(result.order) == hash_order(NODE_NAMES, "2001:db8::5")


def test_ipv4_mapped_ingress_is_hashed_as_go_prints_it() -> None:
    nodes = make_nodes(*NODE_NAMES)
    service = make_service(ips=["::ffff:192.0.2.9"])
    result = elect(service, ipaddress.ip_address("192.0.2.9"), ALL, "default", nodes, [make_slice(service, *nodes)])
    assert list(result.order) == hash_order(NODE_NAMES, "192.0.2.9")


# ---- endpoints ---------------------------------------------------------------------------------------------------


def test_no_serving_endpoint_means_nobody_announces() -> None:
    nodes = make_nodes("a", "b", "c")
    service = make_service()
    result = run(service, ALL, nodes, slices=[make_slice(service, "a", "b", ready=False, serving=False)])
    assert result.winner is None
    assert {n: result.reason_for(n) for n in nodes} == {"a": NOT_OWNER, "b": NOT_OWNER, "c": NOT_OWNER}
    assert run(service, ALL, nodes, slices=[]).winner is None


def test_terminating_but_serving_endpoint_counts_and_unset_ready_counts() -> None:
    nodes = make_nodes("a", "b", "c")
    service = make_service()
    assert run(service, ALL, nodes, slices=[make_slice(service, "a", ready=False, serving=True)]).winner
    assert run(service, ALL, nodes, slices=[make_slice(service, "a", ready=None)]).winner


def test_local_policy_only_considers_nodes_with_a_serving_endpoint() -> None:
    names = ("a", "b", "c", "d")
    nodes = make_nodes(*names)
    # An address whose Cluster winner has no endpoint, so Local must pick someone else.
    addr = next(f"192.0.2.{i}" for i in range(1, 255) if hash_order(names, f"192.0.2.{i}")[0] == "a")
    cluster = make_service(ips=[addr])
    local = make_service(ips=[addr], policy="Local")
    slices_c = [make_slice(cluster, "c", "d"), make_slice(cluster, "a", ready=False)]
    slices_l = [make_slice(local, "c", "d"), make_slice(local, "a", ready=False)]
    assert run(cluster, ALL, nodes, slices=slices_c).winner == "a"
    result = run(local, ALL, nodes, slices=slices_l)
    assert list(result.order) == hash_order(["c", "d"], addr)
    assert result.reason_for("a") == NOT_OWNER


def test_local_policy_ignores_endpoint_on_a_node_that_is_not_a_candidate() -> None:
    nodes = {"a": make_node("a", **{election.EXCLUDE_FROM_LB_LABEL: ""}), "b": make_node("b")}
    service = make_service(policy="Local")
    result = run(service, ALL, nodes, slices=[make_slice(service, "a")])
    assert result.winner is None
    assert result.reason_for("b") == NOT_OWNER


# ---- node filtering --------------------------------------------------------------------------------------------


def _winner_and_next(names: tuple[str, ...], addr: str) -> tuple[str, str]:
    order = hash_order(names, addr)
    return order[0], order[1]


def test_excluded_node_is_skipped_unless_ignore_exclude_lb() -> None:
    names = ("a", "b", "c")
    first, second = _winner_and_next(names, "192.0.2.10")
    nodes = make_nodes(*names)
    nodes[first] = make_node(first, **{election.EXCLUDE_FROM_LB_LABEL: "true"})
    service = make_service()
    excluded = run(service, ALL, nodes)
    assert excluded.winner == second
    assert excluded.reason_for(first) == NOT_OWNER
    assert run(service, ALL, nodes, ignore_exclude_lb=True).winner == first


def test_network_unavailable_node_is_skipped() -> None:
    names = ("a", "b", "c")
    first, second = _winner_and_next(names, "192.0.2.10")
    nodes = make_nodes(*names)
    nodes[first] = make_node(first, network_unavailable=True)
    assert run(make_service(), ALL, nodes).winner == second


def test_membership_limits_candidates_and_none_means_every_known_node() -> None:
    names = ("a", "b", "c")
    first, second = _winner_and_next(names, "192.0.2.10")
    nodes = make_nodes(*names)
    service = make_service()
    assert run(service, ALL, nodes, live_nodes=None).winner == first
    assert run(service, ALL, nodes, live_nodes=set(names) - {first}).winner == second
    # A live speaker on a node without a Node object is never selected (MetalLB resolves selectors on Nodes).
    assert run(service, ALL, nodes, live_nodes={"ghost"}).winner is None


def test_node_selectors_restrict_candidates_and_give_other_nodes_no_matching_advertisement() -> None:
    nodes = {
        "a": make_node("a", zone="east"),
        "b": make_node("b", zone="west"),
        "c": make_node("c", zone="east"),
    }
    config = make_config(L2Advertisement(name="east", node_selectors=(selector(zone="east"),)))
    result = run(make_service(), config, nodes)
    assert list(result.order) == hash_order(["a", "c"], "192.0.2.10")
    assert result.reason_for("b") == NO_MATCHING_ADVERTISEMENT


def test_pool_selection_by_name_and_by_label() -> None:
    pools = (make_pool("web", "192.0.2.0/24", labels={"tier": "front"}), make_pool("db", "198.51.100.0/24"))
    nodes = make_nodes("a", "b")
    by_name = make_config(L2Advertisement(name="x", ip_address_pools=("db",)), pools=pools)
    by_label = make_config(
        L2Advertisement(name="x", ip_address_pool_selectors=(selector(tier="front"),)), pools=pools
    )
    service = make_service()
    assert run(service, by_name, nodes).reason_for("a") == NO_MATCHING_ADVERTISEMENT
    assert run(service, by_label, nodes).winner is not None


def test_address_in_no_pool_is_not_allowed() -> None:
    result = run(make_service(ips=["203.0.113.5"]), ALL, make_nodes("a"))
    assert result.winner is None
    assert result.reason_for("a") == IP_NOT_ALLOWED


# ---- service selectors and sharing -----------------------------------------------------------------------------


def test_service_selectors_pick_the_candidate_set() -> None:
    nodes = {
        "e1": make_node("e1", role="edge"),
        "e2": make_node("e2", role="edge"),
        "c1": make_node("c1", role="core"),
    }
    config = make_config(
        L2Advertisement(name="web", service_selectors=(selector(app="web"),), node_selectors=(selector(role="edge"),)),
        L2Advertisement(name="db", service_selectors=(selector(app="db"),), node_selectors=(selector(role="core"),)),
    )
    web = run(make_service(labels={"app": "web"}), config, nodes)
    assert list(web.order) == hash_order(["e1", "e2"], "192.0.2.10")
    assert web.reason_for("c1") == NO_MATCHING_ADVERTISEMENT
    db = run(make_service(labels={"app": "db"}), config, nodes)
    assert db.winner == "c1"
    other = run(make_service(labels={"app": "other"}), config, nodes)
    assert {n: other.reason_for(n) for n in nodes} == dict.fromkeys(nodes, NO_MATCHING_ADVERTISEMENT)


@pytest.mark.parametrize("prefix", ["metallb.io/", "metallb.universe.tf/"])
def test_shared_ip_with_service_selector_is_refused(prefix: str) -> None:
    nodes = make_nodes("a", "b")
    config = make_config(L2Advertisement(name="web", service_selectors=(selector(app="web"),)))
    shared = make_service(labels={"app": "web"}, annotations={prefix + "allow-shared-ip": "key1"})
    result = run(shared, config, nodes)
    assert result.winner is None
    assert {n: result.reason_for(n) for n in nodes} == dict.fromkeys(nodes, SHARED_IP_WITH_SERVICE_SELECTOR)
    # The same Service without sharing announces.
    assert run(make_service(labels={"app": "web"}), config, nodes).winner is not None


def test_shared_ip_without_service_selectors_announces() -> None:
    nodes = make_nodes("a", "b")
    shared = make_service(annotations={"metallb.io/allow-shared-ip": "key1"})
    assert run(shared, ALL, nodes).winner == hash_order(["a", "b"], "192.0.2.10")[0]


def test_shared_ip_guard_only_looks_at_advertisements_that_apply() -> None:
    nodes = make_nodes("a", "b")
    config = make_config(
        L2Advertisement(name="db-only", service_selectors=(selector(app="db"),)), L2Advertisement(name="all")
    )
    shared = make_service(labels={"app": "web"}, annotations={"metallb.io/allow-shared-ip": "key1"})
    assert run(shared, config, nodes).winner is not None


# ---- preferred nodes -------------------------------------------------------------------------------------------


def test_preferred_weights_sum_and_beat_the_hash() -> None:
    names = ("a", "b", "c", "d")
    nodes = {
        "a": make_node("a"),
        "b": make_node("b", zone="primary"),
        "c": make_node("c", zone="primary", gpu="true"),
        "d": make_node("d", gpu="true"),
    }
    config = make_config(
        L2Advertisement(
            name="pref",
            preferred_node_selectors=(
                PreferredNodeSelector(60, selector(zone="primary")),
                PreferredNodeSelector(50, selector(gpu="true")),
            ),
        )
    )
    result = run(make_service(), config, nodes)
    assert list(result.order) == ["c", "b", "d", "a"]  # 110, 60, 50, 0
    # Equal scores fall back to the hash.
    tie = make_config(L2Advertisement(name="p", preferred_node_selectors=(PreferredNodeSelector(10, selector()),)))
    assert list(run(make_service(), tie, nodes).order) == hash_order(names, "192.0.2.10")


def test_preferences_only_score_nodes_their_own_advertisement_selects() -> None:
    nodes = {
        "a": make_node("a", role="lb"),
        "b": make_node("b", role="lb"),
        "c": make_node("c", role="gpu", zone="primary"),
        "e": make_node("e", role="edge", zone="primary"),
    }
    config = make_config(
        L2Advertisement(name="lb", node_selectors=(selector(role="lb"),)),
        L2Advertisement(name="edge", node_selectors=(selector(role="edge"),)),
        L2Advertisement(
            name="gpu",
            node_selectors=(selector(role="gpu"),),
            preferred_node_selectors=(PreferredNodeSelector(100, selector(zone="primary")),),
        ),
    )
    order = list(run(make_service(), config, nodes).order)
    assert order[0] == "c"  # e matches zone=primary but the preferring advertisement does not select it
    assert order[1:] == hash_order(["a", "b", "e"], "192.0.2.10")


def test_preferred_node_going_away_fails_over_by_hash() -> None:
    names = ("a", "b", "c")
    nodes = {"a": make_node("a"), "b": make_node("b"), "c": make_node("c", edge="yes")}
    config = make_config(
        L2Advertisement(name="p", preferred_node_selectors=(PreferredNodeSelector(100, selector(edge="yes")),))
    )
    service = make_service()
    assert run(service, config, nodes).winner == "c"
    assert run(service, config, nodes, live_nodes={"a", "b"}).winner == hash_order(set(names) - {"c"}, "192.0.2.10")[0]


# ---- every node agrees: at most one announcer --------------------------------------------------------------------

node_names = st.lists(st.from_regex(r"[a-z][a-z0-9-]{0,12}", fullmatch=True), min_size=1, max_size=8, unique=True)


@settings(max_examples=150, deadline=None)
@given(
    names=node_names,
    last_octet=st.integers(min_value=0, max_value=255),
    excluded=st.sets(st.integers(min_value=0, max_value=7)),
    east=st.sets(st.integers(min_value=0, max_value=7)),
    endpoints=st.sets(st.integers(min_value=0, max_value=7)),
    local=st.booleans(),
)
def test_exactly_the_first_eligible_node_in_hash_order_announces(
    names: list[str], last_octet: int, excluded: set[int], east: set[int], endpoints: set[int], local: bool
) -> None:
    address = f"192.0.2.{last_octet}"
    nodes = {}
    for i, n in enumerate(names):
        labels = {"zone": "east"} if i in east else {}
        if i in excluded:
            labels[election.EXCLUDE_FROM_LB_LABEL] = ""
        nodes[n] = make_node(n, **labels)
    with_endpoint = [n for i, n in enumerate(names) if i in endpoints]
    service = make_service(ips=[address], policy="Local" if local else "Cluster")
    config = make_config(L2Advertisement(name="east", node_selectors=(selector(zone="east"),)))
    slices = [make_slice(service, *with_endpoint)]
    eligible = [
        n for i, n in enumerate(names) if i in east and i not in excluded and (not local or n in with_endpoint)
    ]
    expected = hash_order(eligible, address)[0] if eligible and with_endpoint else None
    result = elect(service, ipaddress.ip_address(address), config, "default", nodes, slices)
    announcers = [n for n in names if result.reason_for(n) is None]
    assert announcers == ([expected] if expected else [])


# ---- addresses read as the controller reads them (defect E) ------------------------------------------------------


def test_an_ipv4_mapped_ingress_is_the_ipv4_address_as_for_the_controller() -> None:
    # Go's ParseIP + To4: the controller allocates ::ffff:192.0.2.10 from an IPv4 pool; the speaker must elect it
    # in that pool too (it used to withdraw it as ipNotAllowed) and hash it as Go prints it.
    nodes = make_nodes(*NODE_NAMES)
    service = make_service(ips=["::ffff:192.0.2.10"])
    checked = election.service_addresses(service)
    assert checked.withdraw is None and [str(ip) for ip in checked.addresses] == ["192.0.2.10"]
    config = make_config(L2Advertisement(name="all"), pools=[make_pool("v4", "192.0.2.0/24")])
    ip = checked.addresses[0]
    result = elect(service, ip, config, election.pool_name_for(config, [ip]), nodes, [make_slice(service, *nodes)])
    assert result.blocked is None and result.winner == hash_order(NODE_NAMES, "192.0.2.10")[0]


def test_a_zoned_ingress_is_invalid_as_for_the_controller() -> None:
    checked = election.service_addresses(make_service(ips=["fe80::1%eth0"]))
    assert checked.withdraw == election.INVALID_IP and checked.invalid == "fe80::1%eth0"
