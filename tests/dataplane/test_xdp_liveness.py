"""The liveness deadline: past it the XDP program answers nothing (fail-safe); refreshed, it answers again.

The deadline is CLOCK_MONOTONIC in ns on both sides (time.monotonic_ns() == bpf_ktime_get_ns()).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from ipaddress import IPv4Address, IPv6Address

import pytest

from metallb_fast.dataplane import bpfsys, packets
from metallb_fast.dataplane.base import AddressCounters, Verdict
from metallb_fast.dataplane.heartbeat import Reflector
from metallb_fast.dataplane.xdp import MapKey, XdpProgram
from tests.dataplane.frames import HEARTBEAT_PORT, NODE_MAC, heartbeat4, heartbeat6
from tests.dataplane.xdp_testing import INGRESS_IFINDEX, loaded_program, run_frame

pytestmark = pytest.mark.root

MAC = bytes.fromhex("02005e00000a")
CLIENT_MAC = bytes.fromhex("02005e000101")
V4 = IPv4Address("192.0.2.10")
V6 = IPv6Address("2001:db8::10")
DESIRED: dict[MapKey, bytes] = {(V4, INGRESS_IFINDEX): MAC, (V6, INGRESS_IFINDEX): MAC}
MINUTE_NS = 60 * 10**9

REQUESTS = {
    V4: packets.arp_request(CLIENT_MAC, IPv4Address("192.0.2.1"), V4),
    V6: packets.neighbor_solicitation(CLIENT_MAC, IPv6Address("2001:db8::1"), V6),
}


@pytest.fixture
def program() -> Iterator[XdpProgram]:
    with loaded_program(DESIRED) as prog:
        yield prog


def assert_answered(program: XdpProgram, address: IPv4Address | IPv6Address) -> None:
    frame = REQUESTS[address]
    run = run_frame(program, frame, DESIRED)
    assert run.action == bpfsys.XDP_TX
    assert run.frame == packets.answer(frame, {address: MAC}).reply
    assert run.verdicts == {Verdict.ANSWERED: 1}
    assert run.counters == {(address, INGRESS_IFINDEX): AddressCounters(requests=1, replies=1)}


def assert_expired(program: XdpProgram, address: IPv4Address | IPv6Address) -> None:
    frame = REQUESTS[address]
    run = run_frame(program, frame, DESIRED)
    assert run.action == bpfsys.XDP_PASS and run.frame == frame
    assert run.verdicts == {Verdict.LIVENESS_EXPIRED: 1}
    # Still a request for the address (it matched the key), but no reply.
    assert run.counters == {(address, INGRESS_IFINDEX): AddressCounters(requests=1, replies=0)}
    assert packets.answer(frame, {address: MAC}, alive=False).verdict is Verdict.LIVENESS_EXPIRED


@pytest.mark.parametrize("address", [V4, V6], ids=["arp", "ndp"])
def test_deadline_in_the_past_answers_nothing_and_refresh_restores(
    program: XdpProgram, address: IPv4Address | IPv6Address
) -> None:
    assert_answered(program, address)  # no deadline set: answered

    program.set_deadline(time.monotonic_ns() - 1)
    assert_expired(program, address)
    assert_expired(program, address)

    program.set_deadline(time.monotonic_ns() + MINUTE_NS)
    assert_answered(program, address)

    program.set_deadline(None)
    assert_answered(program, address)


def test_deadline_at_zero_is_in_the_past_not_unset(program: XdpProgram) -> None:
    # 0 in the map means "no deadline"; a caller's explicit deadline of 0 must still mean "expired".
    program.set_deadline(0)
    assert_expired(program, V4)


def test_expiry_only_affects_owned_requests(program: XdpProgram) -> None:
    program.set_deadline(time.monotonic_ns() - 1)
    not_owned = packets.arp_request(CLIENT_MAC, IPv4Address("192.0.2.1"), IPv4Address("203.0.113.9"))
    assert run_frame(program, not_owned, DESIRED).verdicts == {Verdict.NOT_OWNED: 1}
    gratuitous = packets.gratuitous_arp(V4, CLIENT_MAC)[0]
    assert run_frame(program, gratuitous, DESIRED).verdicts == {Verdict.GRATUITOUS: 1}


@pytest.mark.parametrize("request_frame", [heartbeat4(), heartbeat6()], ids=["v4", "v6"])
def test_heartbeats_pass_the_same_gate(program: XdpProgram, request_frame: bytes) -> None:
    # "alive" means this node's kernel answers: a reflection stops exactly when ARP/NDP answers do.
    program.set_heartbeats(HEARTBEAT_PORT, {INGRESS_IFINDEX: NODE_MAC})
    reflected = packets.answer(request_frame, {}, heartbeats=Reflector(HEARTBEAT_PORT, NODE_MAC)).reply
    run = run_frame(program, request_frame, DESIRED)
    assert (run.action, run.frame, run.verdicts) == (bpfsys.XDP_TX, reflected, {Verdict.HEARTBEAT: 1})

    program.set_deadline(time.monotonic_ns() - 1)
    run = run_frame(program, request_frame, DESIRED)
    assert (run.action, run.frame, run.verdicts) == (bpfsys.XDP_PASS, request_frame, {Verdict.LIVENESS_EXPIRED: 1})
    assert_expired(program, V4)

    program.set_deadline(time.monotonic_ns() + MINUTE_NS)
    assert run_frame(program, request_frame, DESIRED).verdicts == {Verdict.HEARTBEAT: 1}
