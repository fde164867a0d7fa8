"""The incremental plan: re-planning only the Services an event touched gives the table a whole re-plan gives."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from metallb_fast.config.model import L2Advertisement, PreferredNodeSelector
from metallb_fast.resources import Node
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
        owned_before, revision_before = dict(book.owned), book.revision
        book.put(key, plan)
        # The revision moves when the table does, and only then: the speaker syncs on it without comparing tables.
        assert (book.revision != revision_before) == (book.owned != owned_before)
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


PREFERRING = make_config(
    L2Advertisement(
        name="prefer-fast",
        preferred_node_selectors=(PreferredNodeSelector(weight=10, preference=selector(disk="fast")),),
    ),
    L2Advertisement(name="zone-a", node_selectors=(selector(zone="a"),)),
)
NODE_CHANGES = st.lists(
    st.tuples(st.integers(0, 11), st.sampled_from(["die", "live", "relabel", "delete"])), min_size=1, max_size=4
)


@settings(max_examples=80, deadline=None)
@given(NODE_CHANGES, st.integers(0, 2**16))
def test_replanning_what_changed_nodes_can_move_gives_the_whole_plan(changes: list, seed: int) -> None:
    rng = random.Random(seed)
    names = [f"n{i}" for i in range(12)]

    def node(name: str, **labels: str) -> Node:
        return make_node(name, **labels)

    nodes = {n: node(n, zone=rng.choice("ab"), disk=rng.choice(["fast", "slow"])) for n in names}
    live = {n for n in names if rng.random() < 0.8} | {"n1"}
    services = [
        make_service(f"s{i}", ips=(f"192.0.2.{i + 1}",), policy=rng.choice(["Cluster", "Local"])) for i in range(25)
    ]
    slices = {s.key: make_slice(s, *rng.sample(names, 3)) for s in services}
    side = layer2.NodeSide.of("n1", LINKS)
    before = election.ElectionContext(nodes, live)
    book = PlanBook()
    for s in services:
        book.put(s.key, layer2.plan_service(side, s, PREFERRING, before, (slices[s.key],)))

    nodes = dict(nodes)
    for index, change in changes:
        name = names[index]
        if name == "n1":
            continue  # this node changing re-plans everything: not the delta path
        if change == "die":
            live.discard(name)
        elif change == "live":
            live.add(name)
        elif change == "relabel":
            nodes[name] = node(name, zone=rng.choice("ab"), disk=rng.choice(["fast", "slow"]))
        else:
            nodes.pop(name, None)
    after = election.ElectionContext(nodes, live)
    changed = {
        n for n in names if n != "n1" and (nodes.get(n) != before.nodes.get(n) or (n in live) != (n in before.live))
    }
    for key in book.affected_by(changed, after):
        book.put(
            key, layer2.plan_service(side, next(s for s in services if s.key == key), PREFERRING, after, (slices[key],))
        )
    for s in services:
        fresh = layer2.plan_service(side, s, PREFERRING, after, (slices[s.key],))
        kept = book.get(s.key)
        assert kept is not None
        assert (kept.owned, kept.reason, kept.standing and kept.standing.winner) == (
            fresh.owned,
            fresh.reason,
            fresh.standing and fresh.standing.winner,
        ), s.key


def test_a_plan_swapped_for_one_owning_the_same_leaves_the_revision() -> None:
    """A Local Service's endpoints change (a new Standing) while this node still answers the same pairs."""
    side = layer2.NodeSide.of("n1", LINKS)
    context = election.ElectionContext({"n1": make_node("n1")})
    service = make_service("a", policy="Local")
    book = PlanBook()
    book.put(service.key, layer2.plan_service(side, service, CONFIG, context, (make_slice(service, "n1"),)))
    owned, revision = dict(book.owned), book.revision
    assert owned
    change = book.put(service.key, layer2.plan_service(side, service, CONFIG, context,
                                                       (make_slice(service, "n1", "n9"),)))
    assert change is not None and change.before != change.after  # the plan did change
    assert (book.owned, book.revision) == (owned, revision)
