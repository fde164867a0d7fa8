"""The ring backend (Cython AF_PACKET loop) against the oracle, packets.answer().

Two levels: the C decision on single frames (no root needed), and the running responder in the lab's veth pair
between two network namespaces: a peer sends a corpus with AF_PACKET and captures what comes back.
"""

from __future__ import annotations

import contextlib
import os
import socket
import struct
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from metallb_fast.dataplane import floodlimit, packets
from metallb_fast.dataplane.base import ANSWERING, AddressCounters, IPAddress, ResponderError, Verdict
from metallb_fast.dataplane.floodlimit import FloodLimit, TokenBuckets
from metallb_fast.dataplane.heartbeat import Reflector
from metallb_fast.dataplane.ring import STOP_TIMEOUT_S, RingResponder, table_for
from metallb_fast.lab import Lab
from tests.conftest import IN_CI, require, require_root
from tests.dataplane.frames import (
    BCAST,
    CLIENT_MAC,
    HEARTBEAT_PORT,
    NODE_MAC,
    OTHER_MAC,
    OWNED_MAC,
    STRANGER_MAC,
    VIP4,
    VIP6,
    arp,
    heartbeat4,
    heartbeat_corpus,
    ns,
    sllao,
    vlan_tagged,
)

try:
    from metallb_fast.dataplane import _ring as ring_ext
except ImportError:  # in CI a missing extension is a failure, not a skip
    if IN_CI:
        raise
    pytest.skip("the Cython extension metallb_fast.dataplane._ring is not built", allow_module_level=True)

VIP4_B = IPv4Address("192.0.2.11")
ELSEWHERE4 = IPv4Address("192.0.2.20")
STRANGER4 = IPv4Address("192.0.2.99")
ELSEWHERE6 = IPv6Address("2001:db8::20")
STRANGER6 = IPv6Address("2001:db8::99")
IFACE = "eth0"  # the lab node's end of the veth pair
PEER_IFACE = "eth0"  # the lab client's end
OTHER_IFACE = "eth9"  # owns ELSEWHERE*, never opened by the decision tests

OWNED = {
    (VIP4, IFACE): OWNED_MAC,
    (VIP6, IFACE): OWNED_MAC,
    (ELSEWHERE4, OTHER_IFACE): OTHER_MAC,
    (ELSEWHERE6, OTHER_IFACE): OTHER_MAC,
}
HERE = {address: mac for (address, name), mac in OWNED.items() if name == IFACE}
ELSEWHERE = frozenset(address for (address, name) in OWNED if name != IFACE)


def corpus() -> list[bytes]:
    """Every decision branch of docs/fastpath.md at least once, plus padding and boundary lengths."""
    return [
        arp(),
        arp(pad=b""),
        arp(pad=bytes(22)),
        arp(pad=bytes(258)),
        arp(VIP4, spa=IPv4Address("0.0.0.0")),
        arp(spa=IPv4Address("255.255.255.255")),
        arp(eth_src=bytes.fromhex("01005e000001")),
        arp(eth_dst=OWNED_MAC),
        arp(eth_dst=STRANGER_MAC),
        arp(op=2),
        arp(op=3),
        arp(spa=VIP4),
        arp(ELSEWHERE4),
        arp(STRANGER4),
        arp()[:41],
        arp()[:30],
        arp()[:20],
        arp(htype=6),
        arp(plen=16),
        vlan_tagged(arp()),
        BCAST + CLIENT_MAC + b"\x08\x00" + bytes(46),
        ns(),
        ns(hop_limit=64),
        ns(icmp_type=136),
        ns(icmp_type=128),
        ns(code=1),
        ns(next_header=17),
        ns(ELSEWHERE6),
        ns(STRANGER6),
        ns(src=IPv6Address("::")),
        ns(src=IPv6Address("ff02::1")),
        ns(src=IPv6Address("::1")),
        ns(eth_src=bytes.fromhex("333300000001")),
        ns(checksum=0x1234),
        ns(options=sllao() + b"\x0e\x01" + bytes(6))[:-1] + b"\x01",
        ns(options=sllao() + b"\x0e\x01" + bytes(1205)),  # 1239 bytes of ICMPv6: odd
        ns(options=sllao() + b"\x0e\x01" + bytes(1206)),  # 1240: the longest verified (packets.MAX_NS_LEN)
        ns(options=sllao() + b"\x0e\x01" + bytes(1207)),  # 1241: longer than verified
        ns(IPv6Address("ff01:db8::10")),
        ns(version=4),
        ns(payload_len=200),
        ns(payload_len=16),
        ns()[:60],
        ns()[:53],
        ns(trailer=bytes(40)),
        ns(options=b""),
        ns(options=b"\x0e\x01" + bytes(6)),
        ns(options=b"\x01\x00" + bytes(6)),
        ns(options=b"\x01\x02" + bytes(6)),
        ns(options=b"\x05\x01" + bytes(6) + sllao()),
        ns(options=b"\x05\x01" + bytes(6) * 9 + sllao()),
        ns(options=(b"\x05\x01" + bytes(6)) * 8 + sllao()),
        ns(options=b"\x01"),
        ns(options=sllao() + b"\x00\x00" + bytes(6)),
        ns()[:-2] + bytes(2),
        bytes(13),
        b"",
    ]


HEARTBEATS = [frame for _, frame in heartbeat_corpus()]
REFLECTOR = Reflector(HEARTBEAT_PORT, NODE_MAC)  # IFACE reflects heartbeats in the decision tests


def decision_corpus() -> list[bytes]:
    return corpus() + HEARTBEATS


def entries() -> list:
    return table_for(IFACE, OWNED)


def ring_decides(
    frame: bytes, alive: bool = True, flood: ring_ext.FloodBuckets | None = None, now_ns: int = 0
) -> tuple[Verdict, bytes | None]:
    name, reply = ring_ext.decide(frame, entries(), alive, HEARTBEAT_PORT, NODE_MAC, flood, now_ns)
    return Verdict(name), reply


def oracle(frame: bytes, alive: bool = True) -> tuple[Verdict, bytes | None]:
    answer = packets.answer(frame, HERE, ELSEWHERE, alive, heartbeats=REFLECTOR)
    return answer.verdict, answer.reply


# --- the C decision, frame by frame --------------------------------------------------------------------------


@pytest.mark.parametrize("index", range(len(decision_corpus())))
@pytest.mark.parametrize("alive", [True, False])
def test_c_decision_equals_oracle_on_corpus(index: int, alive: bool) -> None:
    frame = decision_corpus()[index]
    assert ring_decides(frame, alive) == oracle(frame, alive)


def test_corpus_reaches_every_verdict() -> None:
    seen = {oracle(frame)[0] for frame in decision_corpus()} | {oracle(arp(), alive=False)[0]}
    assert seen | {Verdict.RATE_LIMITED} == set(Verdict), "RATE_LIMITED: the flood limit tests below"


def test_c_decision_without_heartbeats_is_the_oracle_without_them() -> None:
    for frame in HEARTBEATS:
        answer = packets.answer(frame, HERE, ELSEWHERE)
        assert ring_ext.decide(frame, entries()) == (answer.verdict.value, answer.reply)
    with pytest.raises(ValueError, match="6-byte heartbeat_mac"):
        ring_ext.decide(heartbeat4(), [], True, HEARTBEAT_PORT, None)


def test_verdict_names_follow_base_verdict_order() -> None:
    # The loop's counters are indexed by its own enum; ring.py maps them back by this tuple.
    assert tuple(v.value for v in Verdict) == ring_ext.VERDICTS


MUTATION_BASES = corpus()[:40] + HEARTBEATS[:20]


@settings(max_examples=400, deadline=None)
@given(
    base=st.sampled_from(MUTATION_BASES),
    edits=st.lists(st.tuples(st.integers(0, 127), st.integers(0, 255)), max_size=4),
    cut=st.integers(0, 140),
    alive=st.booleans(),
)
def test_c_decision_equals_oracle_on_mutations(
    base: bytes, edits: list[tuple[int, int]], cut: int, alive: bool
) -> None:
    frame = bytearray(base[:cut] if cut < len(base) else base)
    for offset, value in edits:
        if offset < len(frame):
            frame[offset] = value
    assert ring_decides(bytes(frame), alive) == oracle(bytes(frame), alive)


@settings(max_examples=300, deadline=None)
@given(frame=st.binary(max_size=120), alive=st.booleans())
def test_c_decision_equals_oracle_on_random_bytes(frame: bytes, alive: bool) -> None:
    assert ring_decides(frame, alive) == oracle(frame, alive)


# --- the per-source flood limit (floodlimit.py), with a controlled clock -------------------------------------------


def from_mac(frame: bytes, mac: bytes) -> bytes:
    return frame[:6] + mac + frame[12:]


SOURCE_MACS = [bytes.fromhex(f"02112233aa0{i}") for i in range(1, 4)]
OTHER_CLIENT4 = IPv4Address("198.51.100.8")
OTHER_CLIENT6 = IPv6Address("2001:db8:1::8")
# Sources differ by MAC and by sender address; declined frames and heartbeats are mixed in (never charged).
FLOOD_FRAMES = [
    from_mac(frame, mac)
    for mac in SOURCE_MACS
    for frame in (arp(), arp(spa=OTHER_CLIENT4), ns(), ns(src=OTHER_CLIENT6), arp(STRANGER4), heartbeat4())
]
MS = 1_000_000


def limited(limit: FloodLimit, capacity: int = floodlimit.DEFAULT_SOURCES) -> ring_ext.FloodBuckets:
    buckets = ring_ext.FloodBuckets(capacity)
    buckets.configure(limit.interval_ns, limit.tolerance_ns)
    return buckets


def test_flood_limit_answers_a_burst_then_the_rate_per_source() -> None:
    buckets = limited(FloodLimit(rate=1000.0, burst=3))  # one per ms after three back to back
    t = 10**12
    assert [ring_decides(arp(), flood=buckets, now_ns=t)[0] for _ in range(4)] == [Verdict.ANSWERED] * 3 + [
        Verdict.RATE_LIMITED
    ]
    assert ring_decides(from_mac(arp(), SOURCE_MACS[1]), flood=buckets, now_ns=t)[0] is Verdict.ANSWERED
    assert ring_decides(arp(spa=OTHER_CLIENT4), flood=buckets, now_ns=t)[0] is Verdict.ANSWERED, "another sender IP"
    assert ring_decides(heartbeat4(), flood=buckets, now_ns=t)[0] is Verdict.HEARTBEAT, "peers are never limited"
    assert ring_decides(arp(), flood=buckets, now_ns=t + MS - 1)[0] is Verdict.RATE_LIMITED
    assert ring_decides(arp(), flood=buckets, now_ns=t + MS) == oracle(arp())
    buckets.configure(0, 0)  # off: answered whatever the buckets say
    assert ring_decides(arp(), flood=buckets, now_ns=t + MS)[0] is Verdict.ANSWERED


@settings(max_examples=300, deadline=None)
@given(
    steps=st.lists(st.tuples(st.integers(0, len(FLOOD_FRAMES) - 1), st.integers(0, 3 * MS)), max_size=80),
    rate=st.sampled_from([1000.0, 333.0, 1e6, 0.5]),
    burst=st.integers(1, 4),
    capacity=st.integers(1, 5),
    alive=st.booleans(),
)
def test_flood_limit_equals_floodlimit_py(
    steps: list[tuple[int, int]], rate: float, burst: int, capacity: int, alive: bool
) -> None:
    # Same verdicts, same replies, and the same buckets in the same least-recently-used order (eviction included).
    limit = FloodLimit(rate=rate, burst=burst)
    expected_buckets = TokenBuckets(limit, capacity)
    buckets = limited(limit, capacity)
    now = 10**12
    for index, gap in steps:
        now += gap
        frame = FLOOD_FRAMES[index]
        answer = packets.answer(frame, HERE, ELSEWHERE, alive, heartbeats=REFLECTOR)
        expected = floodlimit.limit_answer(frame, answer, expected_buckets, now)
        assert ring_decides(frame, alive, buckets, now) == (expected.verdict, expected.reply)
    assert list(buckets.state().items()) == list(expected_buckets.state().items())


def test_flood_buckets_key_is_floodlimit_source_key() -> None:
    buckets = limited(FloodLimit(rate=1.0, burst=1))
    frames = [from_mac(arp(spa=OTHER_CLIENT4), SOURCE_MACS[2]), from_mac(ns(src=OTHER_CLIENT6), SOURCE_MACS[0])]
    for frame in frames:
        ring_decides(frame, flood=buckets, now_ns=5)
    assert list(buckets.state()) == [floodlimit.source_key(frame) for frame in frames]


def test_table_rejects_duplicates_and_bad_lengths() -> None:
    with pytest.raises(ValueError, match="twice"):
        ring_ext.decide(arp(), [(4, VIP4.packed, OWNED_MAC), (4, VIP4.packed, None)])
    with pytest.raises(ValueError, match="MAC length"):
        ring_ext.decide(arp(), [(4, VIP4.packed, b"\x01")])


# --- the running responder in a namespace pair -----------------------------------------------------------------

PACKET_OUTGOING = 4


def _ip(*argv: str) -> None:
    subprocess.run(["ip", *argv], check=True, capture_output=True, text=True)


@dataclass(frozen=True)
class Pair:
    node: str  # namespace of the responder, interface IFACE
    peer: str  # namespace of the client, interface PEER_IFACE


@pytest.fixture
def pair() -> Iterator[Pair]:
    """The lab's direct topology (one veth pair; stale labs of dead runs removed as it starts), made quiet: no
    addresses (the node's kernel would answer ARP for VIP4, its own address) and no IPv6 chatter (MLD, RS) in
    the capture."""
    require_root()
    require(os.path.isdir("/proc/sys/net"), "network namespaces")
    with Lab(nodes=1, clients=1, direct=True) as lab:
        names = Pair(node=lab.nodes[0].netns, peer=lab.clients[0].netns)
        for netns, interface in ((names.node, IFACE), (names.peer, PEER_IFACE)):
            lab.run(netns, ["sysctl", "-qw", f"net.ipv6.conf.{interface}.disable_ipv6=1"])
            lab.run(netns, ["ip", "addr", "flush", "dev", interface])
        yield names


@contextlib.contextmanager
def in_ns(name: str) -> Iterator[None]:
    from metallb_fast.dataplane.netns import in_netns

    with in_netns(name):
        yield


class Peer:
    """The client end: sends frames and collects what arrives, with AF_PACKET."""

    def __init__(self, netns: str) -> None:
        with in_ns(netns):
            self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))
            self.sock.bind((PEER_IFACE, 0))
        self.sock.settimeout(0.05)

    def send(self, frames: list[bytes]) -> None:
        for frame in frames:
            self.sock.send(frame)

    def collect(self, expected: int, wait_s: float = 3.0, quiet_s: float = 0.3) -> list[bytes]:
        """Frames from the node, until `expected` arrived (or wait_s passed), then quiet_s more for extras."""
        got: list[bytes] = []
        deadline = time.monotonic() + wait_s
        extra_until: float | None = None
        while True:
            now = time.monotonic()
            if extra_until is None and len(got) >= expected:
                extra_until = now + quiet_s
            if now > (extra_until if extra_until is not None else deadline):
                return got
            try:
                frame, address = self.sock.recvfrom(65535)
            except TimeoutError:
                continue
            if address[2] != PACKET_OUTGOING:
                got.append(frame)

    def drain(self, quiet_s: float = 0.3, limit_s: float = 10.0) -> None:
        """Discard arrivals until none came for quiet_s (bounded by limit_s)."""
        limit = time.monotonic() + limit_s
        quiet_until = time.monotonic() + quiet_s
        while time.monotonic() < min(quiet_until, limit):
            with contextlib.suppress(TimeoutError):
                self.sock.recv(65535)
                quiet_until = time.monotonic() + quiet_s

    def close(self) -> None:
        self.sock.close()


@contextlib.contextmanager
def running(
    pair: Pair, owned: dict, interfaces: tuple[str, ...] = (), flood_limit: FloodLimit | None = None
) -> Iterator[tuple[RingResponder, Peer]]:
    with in_ns(pair.node):
        responder = RingResponder(interfaces, flood_limit=flood_limit)
        try:
            responder.sync(owned)
        except BaseException:
            responder.close()
            raise
    peer = Peer(pair.peer)
    try:
        yield responder, peer
    finally:
        peer.close()
        responder.close()


def sendable(frames: list[bytes]) -> list[bytes]:
    return [frame for frame in frames if len(frame) >= 14]  # AF_PACKET refuses to send less than a header


LOCAL_OWNED = {
    (VIP4, IFACE): OWNED_MAC,
    (VIP6, IFACE): OWNED_MAC,
    (ELSEWHERE4, "lo"): OTHER_MAC,
    (ELSEWHERE6, "lo"): OTHER_MAC,
}


def test_answers_exactly_what_the_oracle_answers(pair: Pair) -> None:
    frames = sendable(corpus())
    here = {address: mac for (address, name), mac in LOCAL_OWNED.items() if name == IFACE}
    elsewhere = frozenset(address for (address, name) in LOCAL_OWNED if name != IFACE)
    answers = [packets.answer(frame, here, elsewhere) for frame in frames]
    expected = [a.reply for a in answers if a.reply is not None]
    with running(pair, LOCAL_OWNED) as (responder, peer):
        peer.send(frames)
        replies = peer.collect(len(expected))
        stats = responder.stats()
    assert replies == expected  # same bytes, same order: one loop, batches processed in arrival order
    assert stats.backend == "ring"
    for key in ((VIP4, IFACE), (VIP6, IFACE)):
        # "Ethernet dst is another MAC" comes after the lookup matched, so it counts.
        requests = sum(
            1
            for a in answers
            if a.target == key[0] and a.verdict in (Verdict.ANSWERED, Verdict.OTHER_ETH_DST, Verdict.LIVENESS_EXPIRED)
        )
        replied = sum(1 for a in answers if a.target == key[0] and a.verdict is Verdict.ANSWERED)
        assert stats.per_address[key] == AddressCounters(requests, replied), key
    oracle_declined = Counter(a.verdict for a in answers)
    for verdict in (
        Verdict.GRATUITOUS,
        Verdict.BAD_HOP_LIMIT,
        Verdict.NO_SOURCE_LLADDR,
        Verdict.NOT_OWNED,
        Verdict.OTHER_ETH_DST,
        Verdict.WRONG_INTERFACE,
    ):
        assert stats.declined[verdict] == oracle_declined[verdict], verdict
    # The socket filter keeps replies, other EtherTypes, VLAN-tagged frames and other ICMPv6 in the kernel.
    assert stats.declined[Verdict.NOT_REQUEST] == 0
    assert stats.declined[Verdict.NOT_ARP_OR_NDP] == 0


def test_reflects_heartbeats_as_the_oracle_does(pair: Pair) -> None:
    # The hand-assembled socket filter lets every reflectable request through, and replies leave in order.
    _ip("-n", pair.node, "link", "set", IFACE, "address", packets.format_mac(NODE_MAC))
    frames = sendable(HEARTBEATS)
    answers = [packets.answer(frame, {}, heartbeats=REFLECTOR) for frame in frames]
    expected = [a.reply for a in answers if a.verdict in ANSWERING]
    assert len(expected) >= 10
    with running(pair, {}, interfaces=(IFACE,)) as (responder, peer):
        responder.serve_heartbeats(HEARTBEAT_PORT, [IFACE])
        peer.send(frames)
        replies = peer.collect(len(expected))
        stats = responder.stats()
        responder.serve_heartbeats(0, ())
        peer.send(frames)
        assert peer.collect(0, quiet_s=0.5) == [], "off: the filter keeps heartbeats in the kernel again"
    assert replies == expected
    assert stats.heartbeats == len(expected)
    assert (
        0
        < stats.declined[Verdict.MALFORMED_HEARTBEAT]
        <= sum(a.verdict is Verdict.MALFORMED_HEARTBEAT for a in answers)
    ), "the filter passes malformed heartbeats it cannot tell apart (options, first fragments), no others"


def test_table_replaced_while_running(pair: Pair) -> None:
    # Both addresses stay owned through every swap (their MACs change), so their counters add up across tables.
    first = {(VIP4, IFACE): OWNED_MAC, (VIP4_B, IFACE): OTHER_MAC}
    second = {(VIP4, IFACE): OTHER_MAC, (VIP4_B, IFACE): OWNED_MAC}
    with running(pair, first) as (responder, peer):
        peer.send([arp(VIP4), arp(STRANGER4)])
        assert peer.collect(1) == [packets.answer(arp(VIP4), {VIP4: OWNED_MAC}).reply]

        # Swap tables many times while a sender keeps requests flowing: the loop must never stall or crash,
        # and every counted request for an owned target is either answered or declined, never lost.
        stop = threading.Event()

        def flood() -> None:
            while not stop.is_set():
                peer.send([arp(VIP4), arp(VIP4_B)] * 16)

        sender = threading.Thread(target=flood)
        sender.start()
        try:
            for i in range(100_000):  # bounded; normally ends after a few hundred swaps
                responder.sync(first if i % 2 else second)
                if i % 50 == 49 and i >= 300:
                    counted = responder.stats().per_address
                    if all(counted[key].replies > 100 for key in ((VIP4, IFACE), (VIP4_B, IFACE))):
                        break
        finally:
            stop.set()
            sender.join()
        swapped = responder.stats().per_address
        responder.sync({(VIP4_B, IFACE): OTHER_MAC})  # VIP4 withdrawn, VIP4_B kept with a new MAC
        peer.drain()  # requests still queued from the flood are answered (for VIP4_B) before the final check

        peer.send([arp(VIP4), arp(VIP4_B)])
        assert peer.collect(1) == [packets.answer(arp(VIP4_B), {VIP4_B: OTHER_MAC}).reply]
        stats = responder.stats()
    a, b = swapped[(VIP4, IFACE)], stats.per_address[(VIP4_B, IFACE)]
    assert a.requests == a.replies > 100
    assert b.requests == b.replies > swapped[(VIP4_B, IFACE)].replies > 100
    assert (VIP4, IFACE) not in stats.per_address, "withdrawn while its requests were being counted"


def test_liveness_deadline(pair: Pair) -> None:
    with running(pair, {(VIP4, IFACE): OWNED_MAC}) as (responder, peer):
        responder.set_liveness_deadline(time.monotonic_ns() - 1)
        peer.send([arp()])
        assert peer.collect(0, quiet_s=0.5) == []
        responder.set_liveness_deadline(time.monotonic_ns() + 60 * 10**9)
        peer.send([arp()])
        assert peer.collect(1) == [packets.answer(arp(), {VIP4: OWNED_MAC}).reply]
        responder.set_liveness_deadline(None)
        peer.send([arp()])
        assert len(peer.collect(1)) == 1
        stats = responder.stats()
    assert stats.declined[Verdict.LIVENESS_EXPIRED] == 1
    assert stats.per_address[(VIP4, IFACE)] == AddressCounters(requests=3, replies=2)


def test_announce_sends_metallbs_gratuitous_frames(pair: Pair) -> None:
    owned: dict[tuple[IPAddress, str], bytes] = {(VIP4, IFACE): OWNED_MAC, (VIP6, IFACE): OWNED_MAC}
    with running(pair, owned) as (responder, peer):
        responder.announce(VIP4, IFACE)
        responder.announce(VIP6, IFACE)
        seen = peer.collect(3)
        with pytest.raises(ResponderError, match="not owned"):
            responder.announce(STRANGER4, IFACE)
        stats = responder.stats()
    assert seen == [*packets.gratuitous_arp(VIP4, OWNED_MAC), packets.unsolicited_na(VIP6, OWNED_MAC)]
    assert stats.declined[Verdict.GRATUITOUS] == 0  # our own transmissions are not read back


def test_withdrawn_address_stops_replies_and_leaves_stats(pair: Pair) -> None:
    # Issue 12, B: as with xdp, a withdrawn address's counters go with it (no metric series kept forever), and
    # one owned again starts from zero. IFACE given at construction: the loop keeps listening with nothing owned.
    owned = {(VIP4, IFACE): OWNED_MAC}
    with running(pair, owned, interfaces=(IFACE,)) as (responder, peer):
        peer.send([arp()])
        assert len(peer.collect(1)) == 1
        assert responder.stats().per_address[(VIP4, IFACE)] == AddressCounters(requests=1, replies=1)
        responder.sync({})
        peer.send([arp()])
        assert peer.collect(0, quiet_s=0.5) == []
        withdrawn = responder.stats()
        responder.sync(owned)
        owned_again = responder.stats()
    assert (VIP4, IFACE) not in withdrawn.per_address
    assert withdrawn.declined[Verdict.NOT_OWNED] == 1, "the loop still counts what it declines"
    assert owned_again.per_address[(VIP4, IFACE)] == AddressCounters()


def test_answers_again_after_the_link_went_down_and_up(pair: Pair) -> None:
    # A link going down reports ENETDOWN on the socket; the kernel hooks it in again when the link comes back.
    with running(pair, {(VIP4, IFACE): OWNED_MAC}) as (responder, peer):
        peer.send([arp()])
        assert len(peer.collect(1)) == 1
        _ip("-n", pair.node, "link", "set", IFACE, "down")
        _ip("-n", pair.node, "link", "set", IFACE, "up")
        answered: list[bytes] = []
        deadline = time.monotonic() + 5.0
        while not answered and time.monotonic() < deadline:  # carrier comes back asynchronously
            peer.send([arp()])
            answered = peer.collect(1, wait_s=0.3, quiet_s=0.0)
        stats = responder.stats()
    assert answered == [packets.answer(arp(), {VIP4: OWNED_MAC}).reply]
    assert stats.per_address[(VIP4, IFACE)].replies >= 2


def test_a_full_ring_drops_in_the_kernel_and_counts_it(pair: Pair) -> None:
    # Two 16 KiB blocks hold ~220 requests. While nothing reads the ring the kernel drops the rest (counted, at no
    # cost to the loop); once the loop runs it answers exactly what the ring held.
    sent = 500
    with in_ns(pair.node):
        loop = ring_ext.RingLoop(socket.if_nametoindex(IFACE), 2 * 16384, 16384)
    peer = Peer(pair.peer)
    try:
        loop.replace_table(table_for(IFACE, {(VIP4, IFACE): OWNED_MAC}))
        peer.send([arp()] * sent)
        time.sleep(0.1)  # every block retired (1 ms timeout)
        thread = threading.Thread(target=loop.run)
        thread.start()
        replies = peer.collect(sent, wait_s=1.0)
        loop.stop()
        thread.join(STOP_TIMEOUT_S)
        _, verdicts, refused, dropped = loop.counters()
    finally:
        peer.close()
        loop.close()
    answered = verdicts[ring_ext.VERDICTS.index(Verdict.ANSWERED.value)]
    assert 100 < answered < sent
    assert answered + dropped == sent
    assert refused == 0
    assert replies == [packets.answer(arp(), {VIP4: OWNED_MAC}).reply] * answered


def test_unknown_interface_is_a_responder_error(pair: Pair) -> None:
    with in_ns(pair.node):
        with pytest.raises(ResponderError, match="'nope0' does not exist"):
            RingResponder(["nope0"])
        responder = RingResponder()
        try:
            with pytest.raises(ResponderError, match="nope0"):
                responder.sync({(VIP4, "nope0"): OWNED_MAC})
        finally:
            responder.close()
        responder.close()  # idempotent


def test_frame_layout_helpers_are_what_they_claim() -> None:
    # Guards the corpus builders themselves: the NS edits land on the fields they name.
    frame = ns(hop_limit=64, icmp_type=135, code=0)
    assert frame[21] == 64 and struct.unpack_from("!BB", frame, 54) == (135, 0)
    assert arp(op=2)[20:22] == b"\x00\x02" and len(arp(pad=b"")) == 42 and len(arp()) == 60


def test_interface_left_out_of_owned_is_no_longer_read(pair: Pair) -> None:
    # Not given at construction: once nothing is owned on IFACE the loop there closes (nothing is counted).
    with running(pair, {(VIP4, IFACE): OWNED_MAC}) as (responder, peer):
        responder.sync({})
        peer.send([arp(), arp(STRANGER4)])
        assert peer.collect(0, quiet_s=0.5) == []
        stats = responder.stats()
    assert stats.declined[Verdict.NOT_OWNED] == 0
    assert (VIP4, IFACE) not in stats.per_address


def test_flood_limit_in_the_running_loop(pair: Pair) -> None:
    # One source over its limit is declined as RATE_LIMITED (counted as a request, not a reply); the limit can be
    # lifted while the loop runs.
    owned = {(VIP4, IFACE): OWNED_MAC}
    with running(pair, owned, flood_limit=FloodLimit(rate=0.01, burst=2)) as (responder, peer):
        assert responder.flood_limit == FloodLimit(rate=0.01, burst=2)
        peer.send([arp()] * 5)
        limited_replies = peer.collect(2, quiet_s=0.5)
        peer.send([from_mac(arp(), SOURCE_MACS[1])])  # another source has its own bucket
        other_source = peer.collect(1)
        limited_stats = responder.stats()
        responder.set_flood_limit(None)
        peer.send([arp()] * 3)
        unlimited_replies = peer.collect(3)
        stats = responder.stats()
    assert limited_replies == [packets.answer(arp(), {VIP4: OWNED_MAC}).reply] * 2
    assert len(other_source) == 1
    assert limited_stats.declined[Verdict.RATE_LIMITED] == 3
    assert limited_stats.per_address[(VIP4, IFACE)] == AddressCounters(requests=6, replies=3)
    assert len(unlimited_replies) == 3
    assert stats.declined[Verdict.RATE_LIMITED] == 3
