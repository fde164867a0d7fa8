"""The incremental plan: re-planning only the Services an event touched gives the table a whole re-plan gives."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from metallb_fast.config.model import L2Advertisement
from metallb_fast.speaker import election, layer2
from metallb_fast.speaker.planbook import PlanBook
from tests.unit.speaker_builders import make_config, make_node, make_service, make_slice, selector

NODES = {name: make_node(name, zone="a" if i % 2 else "b") for i, name in enumerate(("n0", "n1", "n2", "n3"))}
LINKS = (layer2.LinkInfo("eth0", b"\x02\x00\x00\x00\x00\x01", has_ipv4=True, has_ipv6_link_local=True),)
CONFIG = make_config(L2Advertisement(name="all"), L2Advertisement(name="zone-a", node_selectors=(selector(zone="a"),)))

# (service index, ips, endpoint nodes): shared addresses (same ips, two Services) and withdrawals both occur
EVENTS = st.lists(
    st.tuples(
        st.integers(0, 7),
        st.sampled_from([(), ("192.0.2.10",), ("192.0.2.11",), ("192.0.2.12", "2001:db8::12"), ("not-an-ip",)]),
        st.sets(st.sampled_from(sorted(NODES)), max_size=3),
        st.booleans(),  # deleted
    ),
    max_size=40,
)


@settings(max_examples=60, deadline=None)
@given(EVENTS)
def test_replanning_only_what_changed_gives_the_whole_plan(events: list) -> None:
    side = layer2.NodeSide.of("n1", LINKS)
    context = election.ElectionContext(NODES)
    book = PlanBook()
    services, slices = {}, {}
    for index, ips, endpoint_nodes, deleted in events:
        name = f"svc{index}"
        service = make_service(name, ips=ips, annotations={"metallb.io/allow-shared-ip": "k"} if index % 2 else {})
        key = service.key
        if deleted:
            services.pop(key, None)
            slices.pop(key, None)
        else:
            services[key] = service
            slices[key] = make_slice(service, *sorted(endpoint_nodes))
        plan = None
        if key in services:
            plan = layer2.plan_service(side, services[key], CONFIG, context, (slices[key],))
        book.put(key, plan)
        whole = layer2.plan_node("n1", services.values(), CONFIG, NODES, slices.values(), LINKS)
        assert book.owned == whole.owned
        assert sorted(a.service.key for a in book.announcements()) == sorted(a.service.key for a in whole.announced)


def test_a_shared_address_stays_answered_until_its_last_service_lets_go() -> None:
    side = layer2.NodeSide.of("n1", LINKS)
    context = election.ElectionContext({"n1": make_node("n1")})
    book = PlanBook()
    plans = {}
    for name in ("a", "b"):
        service = make_service(name, ips=("192.0.2.10",), annotations={"metallb.io/allow-shared-ip": "k"})
        plans[name] = layer2.plan_service(side, service, CONFIG, context, (make_slice(service, "n1"),))
        book.put(service.key, plans[name])
    assert len(book.owned) == 1
    assert book.put("default/a", None) is not None
    assert len(book.owned) == 1
    book.put("default/b", None)
    assert book.owned == {}


def test_an_unchanged_plan_is_no_change() -> None:
    side = layer2.NodeSide.of("n1", LINKS)
    context = election.ElectionContext({"n1": make_node("n1")})
    service = make_service("a")
    plan = layer2.plan_service(side, service, CONFIG, context, (make_slice(service, "n1"),))
    book = PlanBook()
    change = book.put(service.key, plan)
    assert change is not None and change.announcement_changed
    again = layer2.plan_service(side, service, CONFIG, context, (make_slice(service, "n1"),))
    assert book.put(service.key, again) is None


def test_the_context_gives_the_election_a_fresh_computation_gives() -> None:
    rng = random.Random(7)
    nodes = {f"n{i}": make_node(f"n{i}", zone=rng.choice("ab")) for i in range(30)}
    live = {name for name in nodes if rng.random() < 0.8}
    context = election.ElectionContext(nodes, live)
    for i in range(50):
        service = make_service(f"s{i}", ips=(f"192.0.2.{i + 1}",))
        pool = election.pool_name_for(CONFIG, (election.parse_ip(service.ingress_ips[0]),))
        ip = election.parse_ip(service.ingress_ips[0])
        slices = (make_slice(service, *rng.sample(sorted(nodes), 3)),)
        assert ip is not None
        shared = election.elect(service, ip, CONFIG, pool, nodes, slices, live, context=context)
        assert shared == election.elect(service, ip, CONFIG, pool, nodes, slices, live)
