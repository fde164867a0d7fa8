"""The membership I/O on loopback sockets: two members join and leave, junk and unauthenticated datagrams change
nothing (and are counted), the metrics show what the members see."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client import generate_latest

from metallb_fast.lab.waiting import wait_for
from metallb_fast.membership import wire
from metallb_fast.membership.messages import Alive, address_bytes
from metallb_fast.membership.node import MemberlistNode, MembershipError, NodeConfig
from metallb_fast.membership.speakers import SpeakerMembership
from metallb_fast.membership.swim import MemberEvent
from metallb_fast.membership.timing import TIMINGS
from metallb_fast.obs import metrics

KEYRING = wire.Keyring((wire.metallb_key(b"q8Jx0fV2mZr4Lw7TnB3yKe"),))


def config(name: str, host: str, keyring: wire.Keyring = KEYRING) -> NodeConfig:
    return NodeConfig(name=name, bind_host=host, bind_port=0, timing=TIMINGS["metallb"], keyring=keyring)


@pytest.fixture
def pair() -> Iterator[tuple[MemberlistNode, MemberlistNode, list[MemberEvent]]]:
    events: list[MemberEvent] = []
    a = MemberlistNode(config("a", "127.0.0.61"), events.append).start()
    b = MemberlistNode(config("b", "127.0.0.62"), lambda _: None).start()
    try:
        b.join([a.address])
        wait_for(lambda: len(a.members()) == 2 and len(b.members()) == 2, timeout=10, what="a and b joined")
        yield a, b, events
    finally:
        a.stop()
        b.stop()


def names(node: MemberlistNode) -> list[str]:
    return sorted(member.name for member in node.members())


def test_two_members_join_then_one_leaves(pair: tuple[MemberlistNode, MemberlistNode, list[MemberEvent]]) -> None:
    a, b, events = pair
    assert names(a) == names(b) == ["a", "b"]
    assert b.leave(timeout=2)
    wait_for(lambda: names(a) == ["a"], timeout=5, what="b's leave seen by a")
    assert [(str(e.kind), e.member.name) for e in events][-1] == ("leave", "b")
    assert "left" in events[-1].reason


def send(target: tuple[str, int], data: bytes) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.sendto(data, target)


def intruder_alive(name: str) -> Alive:
    return Alive(incarnation=1, node=name, addr=address_bytes("127.0.0.99"), port=7946)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(junk=st.lists(st.binary(max_size=300), min_size=1, max_size=8))
def test_junk_datagrams_change_nothing(
    pair: tuple[MemberlistNode, MemberlistNode, list[MemberEvent]], junk: list[bytes]
) -> None:
    a, _, _ = pair
    before = sum(a.rejected.values())
    for data in junk:
        send(a.address, data)
    # A well-formed alive, but in the clear (or under another key): also refused.
    send(a.address, wire.encode_packet([intruder_alive("mallory")], keyring=wire.Keyring.none()))
    other = wire.Keyring((wire.metallb_key(b"another-secret-of-22ch"),))
    send(a.address, wire.encode_packet([intruder_alive("mallory")], keyring=other))
    wait_for(lambda: sum(a.rejected.values()) >= before + 2, timeout=5, what="the refusals counted")
    assert names(a) == ["a", "b"]


def test_the_same_alive_under_the_shared_key_is_accepted(
    pair: tuple[MemberlistNode, MemberlistNode, list[MemberEvent]],
) -> None:
    # The control for the test above: the key, not the message, made the difference.
    a, _, _ = pair
    send(a.address, wire.encode_packet([intruder_alive("carol")], keyring=KEYRING))
    wait_for(lambda: "carol" in names(a), timeout=5, what="carol accepted")


def test_wildcard_and_unusable_bind_addresses_are_refused_with_a_clear_message() -> None:
    for host, expected in (("0.0.0.0", "wildcard"), ("node-a", "must be an IP address")):
        with pytest.raises(MembershipError, match=expected):
            MemberlistNode(config("a", host), lambda _: None).start()


def test_metrics_show_members_messages_and_refusals() -> None:
    a = SpeakerMembership(config("a", "127.0.0.63"), lambda: ["127.0.0.64"], lambda _: None)
    b = MemberlistNode(config("b", "127.0.0.64"), lambda _: None)
    b.start()
    a_port = None
    try:
        a.start()
        a_port = a.node.address
        b.join([a_port])
        wait_for(lambda: len(a.live_nodes()) == 2, timeout=10, what="a sees b")
        send(a_port, b"\x0a" + b"\x00" * 40)  # an "encrypted" packet no key opens
        metrics.watch_membership(a.figures)
        wait_for(lambda: a.figures().rejected, timeout=5, what="the refusal counted")
        wait_for(lambda: a.figures().rtt_quantiles, timeout=10, what="a probe of b answered")
        text = generate_latest(metrics.REGISTRY).decode()
        assert 'metallb_memberlist_members{state="alive"} 2.0' in text
        assert 'metallb_memberlist_messages_total{direction="received",type="PushPull"}' in text
        assert "metallb_memberlist_rejected_total" in text
        assert 'metallb_memberlist_probe_rtt_seconds{quantile="0.5"}' in text
    finally:
        metrics.watch_membership(lambda: None)
        a.leave_and_stop()
        b.stop()
