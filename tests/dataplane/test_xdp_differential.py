"""The XDP program against the oracle: same verdict, same output frame, same counters, for every frame.

Each frame goes through BPF_PROG_TEST_RUN once (repeat=1, ingress ifindex set in the xdp_md context) and through
packets.answer(); ANSWERED and HEARTBEAT must be XDP_TX with the oracle's bytes, anything else XDP_PASS with the
frame untouched, and exactly one per-Verdict counter must move: the oracle's. The ingress interface reflects
heartbeats (HEARTBEAT_PORT, NODE_MAC), so every ARP/NDP frame is also checked with heartbeats served.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from ipaddress import IPv4Address, IPv6Address, ip_address

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from metallb_fast.dataplane import bpfsys, floodlimit, packets
from metallb_fast.dataplane.base import ANSWERING, AddressCounters, IPAddress, Verdict
from metallb_fast.dataplane.floodlimit import FloodLimit, TokenBuckets
from metallb_fast.dataplane.heartbeat import Reflector
from metallb_fast.dataplane.xdp import MapKey, XdpProgram
from tests.dataplane.frames import (
    BCAST,
    CLIENT4,
    CLIENT6,
    CLIENT_MAC,
    HEARTBEAT_PORT,
    NODE_MAC,
    arp,
    heartbeat4,
    heartbeat6,
    heartbeat_corpus,
    heartbeat_payload,
    ns,
    option,
    sllao,
    vlan_tagged,
)
from tests.dataplane.xdp_testing import INGRESS_IFINDEX, OTHER_IFINDEX, loaded_program, run_frame

MAC_A = bytes.fromhex("02005e00000a")
MAC_B = bytes.fromhex("02005e00000b")
OTHER_MAC = bytes.fromhex("02005e0001ff")
GROUP_MAC = bytes.fromhex("01005e000001")  # an IPv4 multicast MAC: never a station's source

V4_HERE, V4_BOTH, V4_ELSEWHERE, V4_NOBODY = (IPv4Address(a) for a in
                                             ("192.0.2.10", "192.0.2.11", "198.51.100.20", "203.0.113.5"))
V6_HERE, V6_HERE_B, V6_ELSEWHERE, V6_NOBODY = (IPv6Address(a) for a in
                                               ("2001:db8::10", "2001:db8::12", "2001:db8::11", "2001:db8::99"))

DESIRED: dict[MapKey, bytes] = {
    (V4_HERE, INGRESS_IFINDEX): MAC_A,
    (V4_BOTH, INGRESS_IFINDEX): MAC_B,
    (V4_BOTH, OTHER_IFINDEX): MAC_A,
    (V4_ELSEWHERE, OTHER_IFINDEX): MAC_A,
    (V6_HERE, INGRESS_IFINDEX): MAC_A,
    (V6_HERE_B, INGRESS_IFINDEX): MAC_B,
    (V6_ELSEWHERE, OTHER_IFINDEX): MAC_B,
}
OWNED_HERE: dict[IPAddress, bytes] = {a: m for (a, i), m in DESIRED.items() if i == INGRESS_IFINDEX}
OWNED_ELSEWHERE = frozenset(a for a, _ in DESIRED) - OWNED_HERE.keys()
REFLECTOR = Reflector(HEARTBEAT_PORT, NODE_MAC)
# Counted per address: frames that matched the key, whether answered or declined after the lookup.
AFTER_LOOKUP = {Verdict.ANSWERED, Verdict.OTHER_ETH_DST, Verdict.LIVENESS_EXPIRED, Verdict.RATE_LIMITED}


def corpus() -> Iterator[tuple[str, bytes]]:
    yield "arp broadcast padded", arp()
    yield "arp broadcast unpadded", arp(pad=b"")
    yield "arp long trailer", arp(pad=bytes(158))
    yield "arp unicast to our mac", arp(eth_dst=MAC_A)
    yield "arp unicast to another mac", arp(eth_dst=OTHER_MAC)
    yield "arp unicast to the other address's mac", arp(eth_dst=MAC_B)
    yield "arp second address", arp(V4_BOTH)
    yield "arp second address unicast", arp(V4_BOTH, eth_dst=MAC_B)
    yield "arp probe from 0.0.0.0", arp(spa=IPv4Address("0.0.0.0"))
    yield "arp from 255.255.255.255", arp(spa=IPv4Address("255.255.255.255"))
    yield "arp from a multicast ethernet source", arp(eth_src=GROUP_MAC)
    yield "arp from the broadcast ethernet source", arp(eth_src=BCAST)
    yield "arp from 255.255.255.255 for itself", arp(IPv4Address("255.255.255.255"), spa=IPv4Address("255.255.255.255"))
    yield "arp sha differs from eth src", arp(sha=OTHER_MAC)
    yield "gratuitous arp request", packets.gratuitous_arp(V4_HERE, CLIENT_MAC)[0]
    yield "gratuitous arp reply", packets.gratuitous_arp(V4_HERE, CLIENT_MAC)[1]
    yield "arp reply", arp(op=2)
    yield "arp op 3", arp(op=3)
    yield "arp op 0x0101", arp(op=0x0101)
    yield "arp not owned", arp(V4_NOBODY)
    yield "arp owned on another interface", arp(V4_ELSEWHERE)
    yield "arp wrong htype", arp(htype=6)
    yield "arp wrong ptype", arp(ptype=0x86DD)
    yield "arp wrong hlen", arp(hlen=8)
    yield "arp wrong plen", arp(plen=16)
    yield "arp vlan tagged", vlan_tagged(arp())
    for length in range(60):
        yield f"arp truncated to {length}", arp()[:length]
    yield "ipv4 frame", CLIENT_MAC + OTHER_MAC + b"\x08\x00" + bytes(46)

    yield "ns valid", ns()
    yield "ns link-local source", ns(src=IPv6Address("fe80::1"))
    yield "ns bad checksum", ns(checksum=0x1234)
    yield "ns zero checksum", ns(checksum=0)
    yield "ns checksum off by one", ns(checksum=int.from_bytes(ns()[56:58], "big") ^ 1)
    yield "ns damaged past the scanned option", ns(options=sllao() + option(14, 1))[:-1] + b"\x00"
    yield "ns bad checksum and hop limit 64", ns(checksum=0x1234, hop_limit=64)
    yield "ns longest verified", ns(options=sllao() + option(14, 151))
    yield "ns longest verified, odd length", ns(options=sllao() + option(14, 150) + bytes(7))
    yield "ns longest verified, damaged at the end", ns(options=sllao() + option(14, 151))[:-1] + b"\x00"
    yield "ns longer than verified", ns(options=sllao() + option(14, 152))
    yield "ns from a multicast source", ns(src=IPv6Address("ff02::1"))
    yield "ns from ::1", ns(src=IPv6Address("::1"))
    yield "ns from ::2", ns(src=IPv6Address("::2"))
    yield "ns from a multicast ethernet source", ns(eth_src=GROUP_MAC)
    yield "ns second address", ns(V6_HERE_B)
    yield "ns unicast to our mac", ns(eth_dst=MAC_A)
    yield "ns unicast to another mac", ns(eth_dst=OTHER_MAC)
    yield "ns to broadcast mac", ns(eth_dst=BCAST)
    yield "ns without options", ns(options=b"")
    yield "ns with a target link-layer option only", ns(options=option(2, 1))
    yield "ns source option of length 2", ns(options=option(1, 2))
    yield "ns nonce before source option", ns(options=option(14, 1) + sllao())
    yield "ns extra options after source option", ns(options=sllao() + option(14, 1) + option(99, 3))
    yield "ns malformed option after source option", ns(options=sllao() + bytes([14, 0, 0, 0]))
    yield "ns zero-length option", ns(options=bytes([14, 0]) + bytes(6) + sllao())
    yield "ns option past payload", ns(options=sllao() + bytes([14, 2]) + bytes(6))
    yield "ns odd byte after source option", ns(options=sllao() + b"\x01")
    yield "ns odd byte before source option", ns(options=b"\x0e")
    yield "ns source option as 8th option", ns(options=option(14, 1) * 7 + sllao())
    yield "ns source option as 9th option", ns(options=option(14, 1) * 8 + sllao())
    yield "ns ethernet trailer after payload", ns(trailer=bytes(40))
    yield "ns payload_len short of options", ns(payload_len=24)
    yield "ns payload_len beyond frame", ns(payload_len=40)
    yield "ns payload_len below 24", ns(options=b"", payload_len=16)
    yield "ns dad probe from ::", ns(src=IPv6Address("::"))
    yield "ns hop limit 254", ns(hop_limit=254)
    yield "ns hop limit 64", ns(hop_limit=64)
    yield "ns multicast target", ns(IPv6Address("ff02::1"))
    yield "ns not owned", ns(V6_NOBODY)
    yield "ns owned on another interface", ns(V6_ELSEWHERE)
    yield "ns code 1", ns(code=1)
    yield "neighbor advertisement", ns(icmp_type=136)
    yield "unsolicited na", packets.unsolicited_na(V6_HERE, CLIENT_MAC)
    yield "icmpv6 echo request", ns(icmp_type=128)
    yield "ipv6 udp", ns(next_header=17)
    yield "ipv6 version 4", ns(version=4)
    yield "ns vlan tagged", vlan_tagged(ns())
    yield "ns large with trailer", ns(options=sllao() + option(14, 100), trailer=bytes(100))
    for length in range(86):
        yield f"ns truncated to {length}", ns()[:length]
    yield from heartbeat_corpus()


CORPUS = list(corpus())


# --------------------------------------------------------------------------------------------------- the check


@pytest.fixture(scope="module")
def program() -> Iterator[XdpProgram]:
    with loaded_program(DESIRED) as prog:
        prog.set_heartbeats(HEARTBEAT_PORT, {INGRESS_IFINDEX: NODE_MAC, OTHER_IFINDEX: CLIENT_MAC})
        yield prog


def oracle(frame: bytes) -> packets.Answer:
    return packets.answer(frame, OWNED_HERE, OWNED_ELSEWHERE, alive=True, heartbeats=REFLECTOR)


def assert_same_as_oracle(program: XdpProgram, frame: bytes) -> Verdict:
    return assert_decided(program, frame, oracle(frame))


def assert_decided(
    program: XdpProgram, frame: bytes, expected: packets.Answer, over_limit: int = bpfsys.XDP_PASS, repeat: int = 1
) -> Verdict:
    """The program decides `frame` as `expected` says: action, output frame, the one verdict counter, the
    per-address counters (each `repeat` times: only for frames the program leaves untouched)."""
    if len(frame) < packets.ETH_HLEN:
        # No driver hands XDP less than an Ethernet header, and test_run refuses such input (EINVAL).
        assert expected.verdict is Verdict.MALFORMED
        with pytest.raises(bpfsys.BpfSyscallError):
            bpfsys.xdp_test_run(program.fd, frame, ingress_ifindex=INGRESS_IFINDEX)
        return expected.verdict
    run = run_frame(program, frame, DESIRED, repeat=repeat)
    context = f"frame {frame.hex()} (oracle: {expected.verdict.name})"
    if expected.verdict in ANSWERING:
        assert repeat == 1, "test_run would answer its own reply"
        assert run.action == bpfsys.XDP_TX, context
        assert run.frame == expected.reply, f"{context}\n   xdp {run.frame.hex()}\noracle {expected.reply!r}"
    else:
        action = over_limit if expected.verdict is Verdict.RATE_LIMITED else bpfsys.XDP_PASS
        assert run.action == action, context
        assert run.frame == frame, f"{context}: a declined frame must be left untouched, got {run.frame.hex()}"
    assert run.verdicts == {expected.verdict: repeat}, context
    counted: dict[MapKey, AddressCounters] = {}
    if expected.target in OWNED_HERE and expected.verdict in AFTER_LOOKUP:
        answered = int(expected.verdict is Verdict.ANSWERED)
        counted[(expected.target, INGRESS_IFINDEX)] = AddressCounters(requests=repeat, replies=answered)
    assert run.counters == counted, context
    return expected.verdict


@pytest.mark.root
@pytest.mark.parametrize(("name", "frame"), CORPUS, ids=[name for name, _ in CORPUS])
def test_corpus_frame_matches_oracle(program: XdpProgram, name: str, frame: bytes) -> None:
    assert_same_as_oracle(program, frame)


def test_corpus_reaches_every_verdict_but_liveness_and_the_limit() -> None:
    # Without this, a builder bug could quietly turn the corpus into 150 copies of NOT_ARP_OR_NDP. The liveness
    # deadline and the flood limit are state, not frame contents: their own tests below reach them.
    seen = {oracle(f).verdict for _, f in CORPUS}
    assert seen == set(Verdict) - {Verdict.LIVENESS_EXPIRED, Verdict.RATE_LIMITED}


@pytest.mark.root
def test_heartbeats_are_reflected_only_where_served(program: XdpProgram) -> None:
    try:
        program.set_heartbeats(HEARTBEAT_PORT, {OTHER_IFINDEX: NODE_MAC})  # served elsewhere only
        assert run_frame(program, heartbeat4(), DESIRED).verdicts == {Verdict.NOT_ARP_OR_NDP: 1}
        program.set_heartbeats(HEARTBEAT_PORT + 1, {INGRESS_IFINDEX: NODE_MAC})  # another port
        assert run_frame(program, heartbeat6(), DESIRED).verdicts == {Verdict.NOT_ARP_OR_NDP: 1}
        program.set_heartbeats(0, {INGRESS_IFINDEX: NODE_MAC})  # off
        assert program.heartbeats() == (0, {})
        assert run_frame(program, heartbeat4(), DESIRED).action == bpfsys.XDP_PASS
    finally:
        program.set_heartbeats(HEARTBEAT_PORT, {INGRESS_IFINDEX: NODE_MAC, OTHER_IFINDEX: CLIENT_MAC})
    assert program.heartbeats() == (HEARTBEAT_PORT, {INGRESS_IFINDEX: NODE_MAC, OTHER_IFINDEX: CLIENT_MAC})
    assert run_frame(program, heartbeat4(), DESIRED).verdicts == {Verdict.HEARTBEAT: 1}


@pytest.mark.root
def test_reply_bytes_are_what_a_client_expects(program: XdpProgram) -> None:
    """Independent of the oracle: spot-check the reply fields a real ARP/NDP client reads."""
    reply = run_frame(program, arp(), DESIRED).frame
    assert reply[0:6] == CLIENT_MAC and reply[6:12] == MAC_A and reply[20:22] == b"\x00\x02"
    assert reply[22:28] == MAC_A and ip_address(reply[28:32]) == V4_HERE and reply[32:38] == CLIENT_MAC
    na = run_frame(program, ns(options=sllao() + option(14, 2)), DESIRED).frame
    assert len(na) == 86 and na[54] == 136 and na[-8:] == b"\x02\x01" + MAC_A
    assert ip_address(na[22:38]) == V6_HERE and ip_address(na[38:54]) == CLIENT6
    assert packets.icmpv6_checksum(na[22:38], na[38:54], na[54:56] + b"\x00\x00" + na[58:]) == int.from_bytes(
        na[56:58], "big"
    )


# -------------------------------------------------------------------------------------------------- hypothesis

V4_CHOICES = [V4_HERE, V4_BOTH, V4_ELSEWHERE, V4_NOBODY, CLIENT4, IPv4Address("0.0.0.0"),
              IPv4Address("255.255.255.255")]
V6_CHOICES = [V6_HERE, V6_HERE_B, V6_ELSEWHERE, V6_NOBODY, CLIENT6, IPv6Address("::"), IPv6Address("ff02::1"),
              IPv6Address("::1")]
SOURCE_MACS = [CLIENT_MAC, CLIENT_MAC, CLIENT_MAC, GROUP_MAC, BCAST]
MAC_CHOICES = [BCAST, MAC_A, MAC_B, OTHER_MAC, b"\x33\x33\xff\x00\x00\x10", b"\x01" + bytes(5)]
VALID = [f for _, f in CORPUS if oracle(f).verdict in ANSWERING]

arp_frames = st.builds(
    arp,
    tpa=st.sampled_from(V4_CHOICES),
    op=st.sampled_from([1, 1, 2, 3]),
    spa=st.sampled_from(V4_CHOICES),
    eth_dst=st.sampled_from(MAC_CHOICES),
    eth_src=st.sampled_from(SOURCE_MACS),
    htype=st.sampled_from([1, 1, 1, 1, 0]),
    plen=st.sampled_from([4, 4, 4, 4, 5]),
    pad=st.integers(0, 54).map(bytes),
)
options = st.one_of(
    st.just(sllao()),
    st.builds(option, st.integers(0, 20), st.integers(0, 3)),
    st.binary(min_size=1, max_size=12),
)
ns_frames = st.builds(
    ns,
    target=st.sampled_from(V6_CHOICES),
    options=st.lists(options, max_size=10).map(b"".join),
    src=st.sampled_from(V6_CHOICES),
    eth_dst=st.one_of(st.none(), st.sampled_from(MAC_CHOICES)),
    hop_limit=st.sampled_from([255, 255, 255, 254, 1]),
    icmp_type=st.sampled_from([135, 135, 135, 136, 133]),
    code=st.sampled_from([0, 0, 0, 1]),
    payload_len=st.one_of(st.none(), st.none(), st.integers(0, 200)),
    trailer=st.binary(max_size=40),
    checksum=st.one_of(st.none(), st.none(), st.none(), st.integers(0, 0xFFFF)),
    eth_src=st.sampled_from(SOURCE_MACS),
)


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    frame = bytearray(draw(st.sampled_from(VALID)))
    for _ in range(draw(st.integers(1, 4))):
        index = draw(st.integers(0, len(frame) - 1))
        frame[index] = draw(st.integers(0, 255))
    cut = draw(st.one_of(st.none(), st.integers(0, len(frame))))
    return bytes(frame[:cut]) + draw(st.binary(max_size=16))


HYPOTHESIS = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


heartbeat_frames = st.one_of(
    st.builds(
        heartbeat4,
        st.builds(heartbeat_payload, kind=st.sampled_from([1, 1, 2, 0]), version=st.sampled_from([1, 1, 2]),
                  nonce=st.integers(0, 2**64 - 1), seq=st.integers(0, 2**32 - 1)),
        eth_dst=st.sampled_from([NODE_MAC, NODE_MAC, BCAST, MAC_A]),
        options=st.sampled_from([b"", b"", b"\x01\x01\x01\x00"]),
        flags_fragment=st.sampled_from([0x4000, 0, 0x2000, 0x0001]),
        checksum=st.one_of(st.none(), st.integers(0, 0xFFFF)),
        trailer=st.binary(max_size=8),
    ),
    st.builds(
        heartbeat6,
        st.builds(heartbeat_payload, kind=st.sampled_from([1, 1, 2, 3]), nonce=st.integers(0, 2**64 - 1)),
        eth_dst=st.sampled_from([NODE_MAC, NODE_MAC, BCAST]),
        dst_port=st.sampled_from([HEARTBEAT_PORT, HEARTBEAT_PORT, 7946]),
        checksum=st.one_of(st.none(), st.integers(0, 0xFFFF)),
        payload_length=st.one_of(st.none(), st.none(), st.integers(0, 40)),
        trailer=st.binary(max_size=8),
    ),
)


@pytest.mark.root
@HYPOTHESIS
@given(frame=st.one_of(arp_frames, ns_frames, heartbeat_frames))
def test_generated_requests_match_oracle(program: XdpProgram, frame: bytes) -> None:
    assert_same_as_oracle(program, frame)


@pytest.mark.root
@HYPOTHESIS
@given(frame=mutated())
def test_mutated_requests_match_oracle(program: XdpProgram, frame: bytes) -> None:
    assert_same_as_oracle(program, frame)


def steered(raw: bytes) -> bytes:
    """Random bytes almost never carry an ARP/IPv6/IPv4 EtherType; steer these into one of those parsers, and half
    the IP ones onto the heartbeat port (where an option-less IPv4 / extension-less IPv6 header puts it)."""
    ethertype = (b"\x08\x06", b"\x86\xdd", b"\x08\x00", b"\x86\xdd")[raw[0] & 3]
    frame = bytearray(raw[:12] + ethertype + raw[14:])
    at = 36 if ethertype == b"\x08\x00" else 56
    if raw[1] & 1 and ethertype != b"\x08\x06" and len(frame) >= at + 2:
        frame[at : at + 2] = HEARTBEAT_PORT.to_bytes(2, "big")
    return bytes(frame)


random_frames = st.one_of(st.binary(max_size=128), st.builds(steered, st.binary(min_size=12, max_size=100)))


@pytest.mark.root
@HYPOTHESIS
@given(frame=random_frames)
def test_random_bytes_match_oracle(program: XdpProgram, frame: bytes) -> None:
    assert_same_as_oracle(program, frame)


# ------------------------------------------------------------------------------------------------- flood limit
# The kernel's clock cannot be injected. Instead: a rate of one frame per 1,000 s, so that nothing refills within a
# test (N + k frames in a row are the burst, then the limit), and bucket states written relative to
# time.monotonic_ns() (bpf_ktime_get_ns reads the same clock) with margins of seconds around every boundary.
# The model is floodlimit.py's: limit_answer(frame, packets.answer(...), TokenBuckets, now).

SLOW = 0.001  # frames per second: one per 1,000 s
_sources = iter(range(1, 0x8000))


def new_source() -> bytes:
    """A source MAC no other test used: buckets live as long as the module's program."""
    n = next(_sources)
    return bytes((0x02, 0xF1, 0x00, 0x00, n >> 8, n & 0xFF))


def from_source(frame: bytes, mac: bytes) -> bytes:
    return frame[:6] + mac + frame[12:]


@contextmanager
def flood_limited(program: XdpProgram, limit: FloodLimit) -> Iterator[TokenBuckets]:
    """The program limited by `limit` (off again afterwards), and the model's buckets for the same limit."""
    program.set_flood_limit(limit)
    try:
        yield TokenBuckets(limit)
    finally:
        program.set_flood_limit(None)


def limited_oracle(frame: bytes, model: TokenBuckets, now_ns: int) -> packets.Answer:
    return floodlimit.limit_answer(frame, oracle(frame), model, now_ns)


def over_limit_action(limit: FloodLimit) -> int:
    return bpfsys.XDP_DROP if limit.drops else bpfsys.XDP_PASS


KINDS = {
    "arp": (arp, lambda: arp(spa=IPv4Address("198.51.100.8"))),
    "ns": (ns, lambda: ns(src=IPv6Address("2001:db8:1::8"))),
}


@pytest.mark.root
@pytest.mark.parametrize("action", floodlimit.ACTIONS)
@pytest.mark.parametrize("kind", KINDS)
def test_a_burst_is_answered_then_the_source_is_limited(program: XdpProgram, action: str, kind: str) -> None:
    limit = FloodLimit(rate=SLOW, burst=5, action=action)
    build, from_other_address = KINDS[kind]
    mac = new_source()
    frame = from_source(build(), mac)
    with flood_limited(program, limit) as model:
        now = time.monotonic_ns()
        decided = [
            assert_decided(program, frame, limited_oracle(frame, model, now), over_limit_action(limit))
            for _ in range(limit.burst + 3)
        ]
        assert decided == [Verdict.ANSWERED] * limit.burst + [Verdict.RATE_LIMITED] * 3
        # Then a flood: 100,000 more in one test_run, each over the limit (so the buffer stays a request).
        expected = limited_oracle(frame, model, now)
        flood = assert_decided(program, frame, expected, over_limit_action(limit), repeat=100_000)
        assert flood is Verdict.RATE_LIMITED
        # Other sources are unaffected: another MAC from the same address, the same MAC from another address.
        for other in (from_source(build(), new_source()), from_source(from_other_address(), mac)):
            assert assert_decided(program, other, limited_oracle(other, model, now)) is Verdict.ANSWERED
        assert floodlimit.source_key(frame) in program.flood_buckets()


@pytest.mark.root
def test_rate_zero_never_limits_and_keeps_no_state(program: XdpProgram) -> None:
    frame = from_source(arp(), new_source())
    with flood_limited(program, FloodLimit(rate=SLOW, burst=1)):
        assert [assert_decided(program, frame, oracle(frame)), run_frame(program, frame, DESIRED).verdicts] == [
            Verdict.ANSWERED,
            {Verdict.RATE_LIMITED: 1},
        ]
    program.set_flood_limit(FloodLimit(rate=0, burst=1, action="drop"))  # rate 0 is off, whatever else it says
    before = program.flood_buckets()
    for candidate in (frame, from_source(ns(), new_source())):
        for _ in range(20):  # well past the burst of 1 set before
            assert assert_same_as_oracle(program, candidate) is Verdict.ANSWERED
    assert program.flood_buckets() == before, "off: no bucket is created or charged"
    program.set_flood_limit(None)


@pytest.mark.root
@pytest.mark.parametrize("ahead_s", [-3600, -1, 0, 50, 150, 195, 205, 300, 10**6])
def test_bucket_states_decide_as_the_model(program: XdpProgram, ahead_s: int) -> None:
    """A controlled clock: the source's bucket is set `ahead_s` ahead of now in the kernel and in the model;
    both decide alike and leave the same state (T = 100 s, tau = 200 s: conforming up to 200 s ahead)."""
    limit = FloodLimit(rate=0.01, burst=3)
    assert (limit.interval_ns, limit.tolerance_ns) == (100 * 10**9, 200 * 10**9)
    frame = from_source(arp(), new_source())
    key = floodlimit.source_key(frame)
    with flood_limited(program, limit) as model:
        now = time.monotonic_ns()
        tat = max(0, now + ahead_s * 10**9)  # the clock starts at boot
        program.set_flood_bucket(key, tat)
        model.set(key, tat)
        expected = limited_oracle(frame, model, now)
        assert expected.verdict is (Verdict.ANSWERED if ahead_s <= 200 else Verdict.RATE_LIMITED)
        assert_decided(program, frame, expected)
        kernel, modelled = program.flood_buckets()[key], model.state()[key]
        if ahead_s > 0:
            assert kernel == modelled, "tat + T when answered, unchanged when limited"
        else:  # a bucket in the past restarts from the kernel's now, a few microseconds after ours
            assert modelled <= kernel <= time.monotonic_ns() + limit.interval_ns


@pytest.mark.root
def test_only_frames_this_node_would_answer_are_charged(program: XdpProgram) -> None:
    limit = FloodLimit(rate=SLOW, burst=1)
    mac = new_source()
    declined = [arp(V4_NOBODY), arp(V4_ELSEWHERE), arp(eth_dst=OTHER_MAC), arp(op=2), arp(spa=V4_HERE),
                ns(V6_NOBODY), ns(hop_limit=64), ns(options=b"")]
    with flood_limited(program, limit) as model:
        now = time.monotonic_ns()
        for frame in (from_source(f, mac) for f in declined):
            for _ in range(3):
                assert assert_decided(program, frame, limited_oracle(frame, model, now)) is oracle(frame).verdict
        try:
            program.set_deadline(now - 1)
            expired = from_source(arp(), mac)
            expected = packets.answer(expired, OWNED_HERE, OWNED_ELSEWHERE, alive=False, heartbeats=REFLECTOR)
            assert assert_decided(program, expired, expected) is Verdict.LIVENESS_EXPIRED
        finally:
            program.set_deadline(None)
        beats = [from_source(heartbeat4(), mac), from_source(heartbeat6(), mac)]
        for frame in beats * 3:
            assert assert_decided(program, frame, limited_oracle(frame, model, now)) is Verdict.HEARTBEAT, "peers"
        assert not [key for key in program.flood_buckets() if key[:6] == mac], "nothing above cost a bucket"
        frame = from_source(arp(), mac)
        assert [assert_decided(program, frame, limited_oracle(frame, model, now)) for _ in range(2)] == [
            Verdict.ANSWERED,
            Verdict.RATE_LIMITED,
        ], "the source's whole burst was still there"


@pytest.mark.root
def test_the_source_table_is_bounded_and_an_evicted_source_starts_full() -> None:
    capacity = 64
    with loaded_program(DESIRED, flood_sources=capacity) as small:
        small.set_flood_limit(FloodLimit(rate=SLOW, burst=1))
        first = from_source(arp(), bytes.fromhex("02f2000000ff"))
        # Answered once: its one token spent, and (unlike a source looked up again, which the kernel's two-list
        # LRU keeps on its active list) nothing marks it as used since.
        assert run_frame(small, first, DESIRED).verdicts == {Verdict.ANSWERED: 1}
        assert floodlimit.source_key(first) in small.flood_buckets()
        for n in range(20 * capacity):  # new sources, each answered once: the first one is the least recent
            result = bpfsys.xdp_test_run(
                small.fd, from_source(arp(), bytes((0x02, 0xF3, 0, 0, n >> 8, n & 0xFF))), ingress_ifindex=1
            )
            assert result.action == bpfsys.XDP_TX
        buckets = small.flood_buckets()
        assert len(buckets) <= capacity
        assert floodlimit.source_key(first) not in buckets
        assert run_frame(small, first, DESIRED).verdicts == {Verdict.ANSWERED: 1}
