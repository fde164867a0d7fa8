"""packets.py, the oracle: every verdict of the decision order, exact reply bytes, and never an exception.

Request frames are built by hand (tests/dataplane/frames.py: struct, offsets from the RFCs) rather than with
packets.py's own builders, so the codec is checked against an independent reading of the wire format.
"""

from __future__ import annotations

import struct
from ipaddress import IPv4Address, IPv6Address

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from metallb_fast.dataplane import heartbeat, packets
from metallb_fast.dataplane.base import ANSWERING, Verdict
from metallb_fast.dataplane.heartbeat import Reflector
from metallb_fast.dataplane.packets import Answer, answer, format_mac, parse_mac
from tests.dataplane.frames import (
    BCAST,
    CLIENT4,
    CLIENT6,
    CLIENT_MAC,
    HEARTBEAT_PORT,
    NODE4,
    NODE6,
    NODE_MAC,
    OWNED_MAC,
    PEER_PORT,
    STRANGER_MAC,
    VIP4,
    VIP6,
    arp,
    heartbeat4,
    heartbeat6,
    heartbeat_payload,
    ns,
    option,
    pseudo_header_sum,
    sllao,
    udp_checksum_ok,
    vlan_tagged,
    with_udp_checksum,
)

OTHER4 = IPv4Address("192.0.2.201")
OTHER6 = IPv6Address("2001:db8::201")
OWNED = {VIP4: OWNED_MAC, VIP6: OWNED_MAC}


# ---------------------------------------------------------------------------------------------------------------
# Checksums, independently


def csum(data: bytes) -> int:
    """Independent one's complement sum (32-bit accumulation, folded once at the end)."""
    if len(data) % 2:
        data += b"\x00"
    total = 0
    for i in range(0, len(data), 2):
        total += int.from_bytes(data[i : i + 2], "big")
    while total > 0xFFFF:
        total = (total >> 16) + (total & 0xFFFF)
    return total


def icmp6_sum_ok(src: bytes, dst: bytes, message: bytes) -> bool:
    pseudo = src + dst + len(message).to_bytes(4, "big") + b"\x00\x00\x00\x3a"
    return csum(pseudo + message) == 0xFFFF


def decide(frame: bytes, alive: bool = True, elsewhere: frozenset = frozenset()) -> Answer:
    return answer(frame, OWNED, elsewhere, alive)


# ---------------------------------------------------------------------------------------------------------------
# ARP


def test_arp_request_for_owned_address_is_answered_in_place() -> None:
    request = arp(pad=b"\xa5" * 18)
    result = decide(request)
    assert result.verdict is Verdict.ANSWERED
    assert result.target == VIP4
    reply = result.reply
    assert reply is not None and len(reply) == len(request) == 60
    assert reply[0:6] == CLIENT_MAC
    assert reply[6:12] == OWNED_MAC
    assert reply[12:14] == b"\x08\x06"
    assert reply[14:20] == request[14:20]
    assert reply[20:22] == b"\x00\x02"
    assert reply[22:28] == OWNED_MAC
    assert reply[28:32] == VIP4.packed
    assert reply[32:38] == CLIENT_MAC
    assert reply[38:42] == CLIENT4.packed
    assert reply[42:] == b"\xa5" * 18, "trailing padding must be carried over unchanged"


def test_arp_unicast_to_owned_mac_is_answered_to_another_mac_is_not() -> None:
    assert decide(arp(eth_dst=OWNED_MAC)).verdict is Verdict.ANSWERED
    assert decide(arp(eth_dst=STRANGER_MAC)).verdict is Verdict.OTHER_ETH_DST


def test_another_ethernet_destination_is_its_own_reason_not_not_owned() -> None:
    # An owned address asked of another host's MAC (a bridge flooding unknown unicast) and an address nobody here
    # owns are different problems; the declined counter must tell them apart.
    for frame in (arp(eth_dst=STRANGER_MAC), ns(eth_dst=STRANGER_MAC)):
        result = decide(frame)
        assert (result.verdict, result.reply) == (Verdict.OTHER_ETH_DST, None)
        assert result.target in OWNED, "the lookup matched: it counts as a request of the address"
    assert decide(arp(tpa=OTHER4, eth_dst=STRANGER_MAC)).verdict is Verdict.NOT_OWNED, "not owned comes first"
    assert reflect(heartbeat4(eth_dst=STRANGER_MAC)).verdict is Verdict.OTHER_ETH_DST


def test_arp_probe_from_unspecified_sender_is_answered() -> None:
    result = decide(arp(spa=IPv4Address("0.0.0.0")))
    assert result.verdict is Verdict.ANSWERED
    assert result.reply is not None and result.reply[38:42] == b"\x00\x00\x00\x00"


ARP_DECLINES: dict[str, tuple[bytes, Verdict]] = {
    "arp-empty": (b"", Verdict.MALFORMED),
    "arp-short-eth": (b"\xff" * 13, Verdict.MALFORMED),
    "arp-short-arp": (arp()[:41], Verdict.MALFORMED),
    "arp-htype": (arp(htype=6), Verdict.MALFORMED),
    "arp-ptype": (arp(ptype=0x86DD), Verdict.MALFORMED),
    "arp-hlen": (arp(hlen=8), Verdict.MALFORMED),
    "arp-plen": (arp(plen=16), Verdict.MALFORMED),
    "arp-reply": (arp(op=2), Verdict.NOT_REQUEST),
    "arp-op3": (arp(op=3), Verdict.NOT_REQUEST),
    "arp-gratuitous": (arp(spa=VIP4), Verdict.GRATUITOUS),
    "arp-not-owned": (arp(tpa=OTHER4), Verdict.NOT_OWNED),
    "arp-vlan": (vlan_tagged(arp(), 1), Verdict.NOT_ARP_OR_NDP),
    "arp-ipv4": (BCAST + CLIENT_MAC + b"\x08\x00" + b"\x45" + bytes(45), Verdict.NOT_ARP_OR_NDP),
}


def test_arp_owned_elsewhere_is_wrong_interface() -> None:
    assert decide(arp(tpa=OTHER4), elsewhere=frozenset({OTHER4})).verdict is Verdict.WRONG_INTERFACE


def test_arp_liveness_expired_comes_after_ownership_checks() -> None:
    assert decide(arp(), alive=False).verdict is Verdict.LIVENESS_EXPIRED
    assert decide(arp(tpa=OTHER4), alive=False).verdict is Verdict.NOT_OWNED
    assert decide(arp(spa=VIP4), alive=False).verdict is Verdict.GRATUITOUS


def test_arp_minimum_42_bytes_is_answered_with_42_bytes() -> None:
    result = decide(arp(pad=b""))
    assert result.verdict is Verdict.ANSWERED
    assert result.reply is not None and len(result.reply) == 42


# ---------------------------------------------------------------------------------------------------------------
# NDP


def test_neighbor_solicitation_gets_exact_advertisement() -> None:
    result = decide(ns())
    assert result.verdict is Verdict.ANSWERED
    assert result.target == VIP6
    na = result.reply
    assert na is not None and len(na) == 86
    assert na[0:6] == CLIENT_MAC
    assert na[6:12] == OWNED_MAC
    assert na[12:14] == b"\x86\xdd"
    assert na[14:18] == b"\x60\x00\x00\x00"
    assert struct.unpack("!HBB", na[18:22]) == (32, 58, 255)
    assert na[22:38] == VIP6.packed
    assert na[38:54] == CLIENT6.packed
    assert na[54:56] == b"\x88\x00"
    assert na[58:62] == b"\x60\x00\x00\x00"
    assert na[62:78] == VIP6.packed
    assert na[78:86] == b"\x02\x01" + OWNED_MAC
    assert icmp6_sum_ok(na[22:38], na[38:54], na[54:86])


def test_ns_with_padding_and_several_options_still_gives_86_byte_na() -> None:
    nonce = b"\x0e\x01" + b"\x11" * 6
    result = decide(ns(options=nonce + b"\x01\x01" + CLIENT_MAC, trailer=b"\x00" * 10))
    assert result.verdict is Verdict.ANSWERED
    assert result.reply is not None and len(result.reply) == 86


def test_ns_unicast_to_owned_mac_is_answered_to_another_mac_is_not() -> None:
    assert decide(ns(eth_dst=OWNED_MAC)).verdict is Verdict.ANSWERED
    assert decide(ns(eth_dst=STRANGER_MAC)).verdict is Verdict.OTHER_ETH_DST


def test_ns_scan_stops_after_eight_options() -> None:
    filler = b"\x0e\x01" + b"\x00" * 6
    assert decide(ns(options=filler * 7 + b"\x01\x01" + CLIENT_MAC)).verdict is Verdict.ANSWERED
    assert decide(ns(options=filler * 8 + b"\x01\x01" + CLIENT_MAC)).verdict is Verdict.NO_SOURCE_LLADDR


NS_DECLINES: dict[str, tuple[bytes, Verdict]] = {
    "ns-short": (ns()[:53], Verdict.MALFORMED),
    "ns-version": (ns(version=4), Verdict.MALFORMED),
    "ns-tcp": (ns(next_header=6), Verdict.NOT_ARP_OR_NDP),
    "ns-hop-by-hop": (ns(next_header=0), Verdict.NOT_ARP_OR_NDP),
    "ns-payload-short": (ns(payload_len=23), Verdict.MALFORMED),
    "ns-payload-past-end": (ns(payload_len=33), Verdict.MALFORMED),
    "ns-truncated": (ns()[:-1], Verdict.MALFORMED),
    "ns-na": (ns(icmp_type=136), Verdict.NOT_REQUEST),
    "ns-echo": (ns(icmp_type=128), Verdict.NOT_ARP_OR_NDP),
    "ns-rs": (ns(icmp_type=133), Verdict.NOT_ARP_OR_NDP),
    "ns-code": (ns(code=1), Verdict.MALFORMED),
    "ns-hop-limit": (ns(hop_limit=254), Verdict.BAD_HOP_LIMIT),
    "ns-hop-limit-before-code": (ns(hop_limit=64, code=1), Verdict.MALFORMED),
    "ns-multicast-target": (ns(target=IPv6Address("ff02::1")), Verdict.MALFORMED),
    "ns-dad": (ns(src=IPv6Address("::")), Verdict.GRATUITOUS),
    "ns-dad-no-opt": (ns(src=IPv6Address("::"), options=b""), Verdict.GRATUITOUS),
    "ns-no-options": (ns(options=b""), Verdict.NO_SOURCE_LLADDR),
    "ns-target-lla-only": (ns(options=b"\x02\x01" + CLIENT_MAC), Verdict.NO_SOURCE_LLADDR),
    "ns-slla-len2": (ns(options=b"\x01\x02" + CLIENT_MAC + bytes(8)), Verdict.NO_SOURCE_LLADDR),
    "ns-opt-len0": (ns(options=b"\x01\x00" + CLIENT_MAC), Verdict.MALFORMED),
    "ns-opt-past-end": (ns(options=b"\x01\x02" + CLIENT_MAC), Verdict.MALFORMED),
    "ns-opt-1-byte": (ns(options=b"\x01"), Verdict.MALFORMED),
    "ns-len0-before-slla": (ns(options=b"\x0e\x00" + bytes(6) + b"\x01\x01" + CLIENT_MAC), Verdict.MALFORMED),
    "ns-not-owned": (ns(target=OTHER6), Verdict.NOT_OWNED),
    "ns-vlan": (vlan_tagged(ns(), 1), Verdict.NOT_ARP_OR_NDP),
}


# Frames the RFCs say to ignore (defect M): declined, each under its reason, before anything is looked up.
GROUP_MAC = bytes.fromhex("01005e000001")
IGNORED: dict[str, tuple[bytes, Verdict]] = {
    "ns-bad-checksum": (ns(checksum=0x1234), Verdict.BAD_CHECKSUM),
    "ns-zero-checksum": (ns(checksum=0), Verdict.BAD_CHECKSUM),
    "ns-damaged-past-the-scanned-option": (ns(options=sllao() + option(14, 1))[:-1] + b"\x00", Verdict.BAD_CHECKSUM),
    "ns-multicast-source": (ns(src=IPv6Address("ff02::1")), Verdict.BAD_SOURCE),
    "ns-loopback-source": (ns(src=IPv6Address("::1")), Verdict.BAD_SOURCE),
    "ns-group-eth-source": (ns(eth_src=GROUP_MAC), Verdict.BAD_SOURCE),
    "ns-longer-than-verified": (ns(options=sllao() + option(14, 152)), Verdict.MALFORMED),
    "arp-broadcast-sender-ip": (arp(spa=IPv4Address("255.255.255.255")), Verdict.BAD_SOURCE),
    "arp-multicast-eth-source": (arp(eth_src=GROUP_MAC), Verdict.BAD_SOURCE),
    "arp-broadcast-eth-source": (arp(eth_src=BCAST), Verdict.BAD_SOURCE),
}

DECLINES = {**ARP_DECLINES, **NS_DECLINES, **IGNORED}


@pytest.mark.parametrize(("frame", "verdict"), IGNORED.values(), ids=IGNORED.keys())
def test_frames_the_rfcs_say_to_ignore_are_declined_before_the_lookup(frame: bytes, verdict: Verdict) -> None:
    assert decide(frame) == Answer(verdict, target=VIP6 if frame[12:14] == b"\x86\xdd" else VIP4)


def test_ns_checksum_is_verified_over_the_whole_message_up_to_the_bound() -> None:
    longest = ns(options=sllao() + option(14, 151))  # 1240 bytes of ICMPv6: packets.MAX_NS_LEN
    assert (longest[18:20], len(longest)) == (packets.MAX_NS_LEN.to_bytes(2, "big"), 54 + packets.MAX_NS_LEN)
    odd = ns(options=sllao() + option(14, 150) + bytes(7))  # 1239: the last byte counts as its word's high half
    for frame in (longest, odd, ns(trailer=b"\xa5" * 9)):  # the trailer is not part of the message
        assert decide(frame).verdict is Verdict.ANSWERED
        assert decide(frame[:56] + bytes([frame[56] ^ 1]) + frame[57:]).verdict is Verdict.BAD_CHECKSUM
    assert decide(ns(checksum=0x1234, hop_limit=64)).verdict is Verdict.BAD_HOP_LIMIT, "cheap checks come first"
    assert decide(ns(checksum=0x1234, options=b"")).verdict is Verdict.NO_SOURCE_LLADDR


def test_only_the_sources_named_are_refused() -> None:
    for frame in (arp(spa=IPv4Address("0.0.0.0")), arp(spa=IPv4Address("192.0.2.255")), ns(src=IPv6Address("::2")),
                  ns(src=IPv6Address("fe80::1")), arp(eth_src=bytes.fromhex("02005e000001"))):
        assert decide(frame).verdict is Verdict.ANSWERED, frame.hex()
    assert decide(arp(spa=IPv4Address("255.255.255.255"), tpa=IPv4Address("255.255.255.255"))).verdict is (
        Verdict.GRATUITOUS
    )


@pytest.mark.parametrize(("frame", "verdict"), DECLINES.values(), ids=DECLINES.keys())
def test_declines(frame: bytes, verdict: Verdict) -> None:
    result = decide(frame)
    assert result.verdict is verdict
    assert result.reply is None


def test_ns_owned_elsewhere_and_liveness() -> None:
    assert decide(ns(target=OTHER6), elsewhere=frozenset({OTHER6})).verdict is Verdict.WRONG_INTERFACE
    assert decide(ns(), alive=False).verdict is Verdict.LIVENESS_EXPIRED
    assert decide(ns(eth_dst=STRANGER_MAC), alive=False).verdict is Verdict.OTHER_ETH_DST


def test_bytes_like_input_is_accepted() -> None:
    assert decide(bytearray(arp())).verdict is Verdict.ANSWERED  # type: ignore[arg-type]
    assert decide(memoryview(ns())).verdict is Verdict.ANSWERED  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------------------------
# Heartbeats

REFLECTOR = Reflector(HEARTBEAT_PORT, NODE_MAC)


def reflect(frame: bytes, alive: bool = True) -> Answer:
    return answer(frame, OWNED, frozenset(), alive, heartbeats=REFLECTOR)


@pytest.mark.parametrize("family", [4, 6])
def test_heartbeat_request_is_reflected_in_place(family: int) -> None:
    request = heartbeat4(trailer=b"\xa5" * 4) if family == 4 else heartbeat6()
    result = reflect(request)
    assert result.verdict is Verdict.HEARTBEAT and result.target is None
    reply = result.reply
    assert reply is not None and len(reply) == len(request)
    assert reply[0:6] == CLIENT_MAC and reply[6:12] == NODE_MAC and reply[12:14] == request[12:14]
    if family == 4:
        assert reply[14:26] == request[14:26], "version, lengths, id, flags, TTL and header checksum unchanged"
        assert reply[26:30] == NODE4.packed and reply[30:34] == CLIENT4.packed
        udp = 34
    else:
        assert reply[14:22] == request[14:22], "hop limit and the rest of the header unchanged"
        assert reply[22:38] == NODE6.packed and reply[38:54] == CLIENT6.packed
        udp = 54
    assert struct.unpack("!HHH", reply[udp : udp + 6]) == (HEARTBEAT_PORT, PEER_PORT, 32)
    payload = reply[udp + 8 : udp + 32]
    assert payload == heartbeat_payload(kind=2), "only the kind changes"
    assert reply[udp + 32 :] == request[udp + 32 :], "trailing bytes carried over"
    assert udp_checksum_ok(reply)
    assert heartbeat.parse_reply(payload) == heartbeat.Heartbeat(0x0123456789ABCDEF, 7, heartbeat.Kind.REPLY)


def test_heartbeat_checksums_follow_the_request() -> None:
    unchecked = reflect(heartbeat4(checksum=0)).reply
    assert unchecked is not None and unchecked[40:42] == b"\x00\x00", "IPv4 without a checksum stays without"
    damaged = reflect(with_udp_checksum(heartbeat6(), 0x1234)).reply
    assert damaged is not None and damaged[60:62] == b"\x12\x33", "updated, not recomputed: damage stays visible"
    for request in (heartbeat4(), heartbeat6()):
        partial = with_udp_checksum(request, pseudo_header_sum(request))  # as it arrives over veth with offload
        reply = reflect(partial).reply
        assert reply is not None and udp_checksum_ok(reply), "completed: nothing else would complete it"
        assert reply == reflect(request).reply


HEARTBEAT_DECLINES: dict[str, tuple[bytes, Verdict]] = {
    "hb-v4-reply": (heartbeat4(heartbeat_payload(kind=2)), Verdict.NOT_REQUEST),
    "hb-v6-reply": (heartbeat6(heartbeat_payload(kind=2)), Verdict.NOT_REQUEST),
    "hb-other-port": (heartbeat4(dst_port=HEARTBEAT_PORT + 1), Verdict.NOT_ARP_OR_NDP),
    "hb-tcp": (heartbeat4(protocol=6), Verdict.NOT_ARP_OR_NDP),
    "hb-other-mac": (heartbeat4(eth_dst=STRANGER_MAC), Verdict.OTHER_ETH_DST),
    "hb-broadcast": (heartbeat6(eth_dst=BCAST), Verdict.OTHER_ETH_DST),
    "hb-magic": (heartbeat4(heartbeat_payload(magic=b"MLBG")), Verdict.MALFORMED_HEARTBEAT),
    "hb-version": (heartbeat6(heartbeat_payload(version=2)), Verdict.MALFORMED_HEARTBEAT),
    "hb-kind-0": (heartbeat4(heartbeat_payload(kind=0)), Verdict.MALFORMED_HEARTBEAT),
    "hb-kind-3": (heartbeat6(heartbeat_payload(kind=3)), Verdict.MALFORMED_HEARTBEAT),
    "hb-short-payload": (heartbeat4(heartbeat_payload()[:20]), Verdict.MALFORMED_HEARTBEAT),
    "hb-long-payload": (heartbeat6(heartbeat_payload() + b"\x00"), Verdict.MALFORMED_HEARTBEAT),
    "hb-udp-length": (heartbeat4(udp_length=40), Verdict.MALFORMED_HEARTBEAT),
    "hb-truncated": (heartbeat4()[:65], Verdict.MALFORMED_HEARTBEAT),
    "hb-no-udp-header": (heartbeat4()[:41], Verdict.NOT_ARP_OR_NDP),
    "hb-ip-options": (heartbeat4(options=b"\x01\x01\x01\x00"), Verdict.MALFORMED_HEARTBEAT),
    "hb-first-fragment": (heartbeat4(flags_fragment=0x2000), Verdict.MALFORMED_HEARTBEAT),
    "hb-later-fragment": (heartbeat4(flags_fragment=0x0001), Verdict.NOT_ARP_OR_NDP),
    "hb-v6-hop-by-hop": (heartbeat6(extension=b"\x11\x00" + bytes(6), extension_type=0), Verdict.MALFORMED_HEARTBEAT),
    "hb-v6-fragment": (heartbeat6(extension=b"\x11\x00\x00\x01" + bytes(4), extension_type=44),
                       Verdict.MALFORMED_HEARTBEAT),
    "hb-v6-later-fragment": (heartbeat6(extension=b"\x11\x00\x00\x08" + bytes(4), extension_type=44),
                             Verdict.NOT_ARP_OR_NDP),
    "hb-v6-payload-length": (heartbeat6(payload_length=33, trailer=b"\x00"), Verdict.MALFORMED_HEARTBEAT),
    "hb-vlan": (vlan_tagged(heartbeat4()), Verdict.NOT_ARP_OR_NDP),
}


@pytest.mark.parametrize(("frame", "verdict"), HEARTBEAT_DECLINES.values(), ids=HEARTBEAT_DECLINES.keys())
def test_heartbeat_declines(frame: bytes, verdict: Verdict) -> None:
    result = reflect(frame)
    assert result.verdict is verdict and result.reply is None


def test_heartbeats_are_ordinary_traffic_where_not_served() -> None:
    for frame in (heartbeat4(), heartbeat6(), heartbeat4(options=b"\x01" * 4), heartbeat6(heartbeat_payload(kind=9))):
        assert decide(frame) == Answer(Verdict.NOT_ARP_OR_NDP)
    other_port = Reflector(HEARTBEAT_PORT + 1, NODE_MAC)
    assert answer(heartbeat4(), {}, heartbeats=other_port).verdict is Verdict.NOT_ARP_OR_NDP


def test_heartbeat_liveness_comes_last() -> None:
    assert reflect(heartbeat4(), alive=False) == Answer(Verdict.LIVENESS_EXPIRED)
    assert reflect(heartbeat6(), alive=False) == Answer(Verdict.LIVENESS_EXPIRED)
    assert reflect(heartbeat4(eth_dst=STRANGER_MAC), alive=False).verdict is Verdict.OTHER_ETH_DST
    assert reflect(heartbeat4(heartbeat_payload(kind=2)), alive=False).verdict is Verdict.NOT_REQUEST


def test_serving_heartbeats_changes_nothing_for_arp_and_ndp() -> None:
    for frame, _ in DECLINES.values():
        assert reflect(frame) == decide(frame)
    assert reflect(arp()) == decide(arp()) and reflect(ns()) == decide(ns())


@settings(max_examples=300)
@given(nonce=st.integers(0, 2**64 - 1), seq=st.integers(0, 2**32 - 1), family=st.sampled_from([4, 6]),
       src_port=st.integers(1, 65535), partial=st.booleans())
def test_reflections_verify_and_read_back_as_replies(
    nonce: int, seq: int, family: int, src_port: int, partial: bool
) -> None:
    payload = heartbeat_payload(nonce=nonce, seq=seq)
    request = heartbeat4(payload, src_port=src_port) if family == 4 else heartbeat6(payload, src_port=src_port)
    if partial:
        request = with_udp_checksum(request, pseudo_header_sum(request))
    result = reflect(request)
    assert result.verdict is Verdict.HEARTBEAT and result.reply is not None
    assert udp_checksum_ok(result.reply)
    at_the_sender = Reflector(src_port, CLIENT_MAC)  # its own fast path, should it serve heartbeats on that port
    assert answer(result.reply, {}, heartbeats=at_the_sender).verdict is Verdict.NOT_REQUEST, "never reflected back"
    udp = 34 if family == 4 else 54
    assert heartbeat.parse_reply(result.reply[udp + 8 :]) == heartbeat.Heartbeat(nonce, seq, heartbeat.Kind.REPLY)


@settings(max_examples=500)
@given(
    ethertype=st.sampled_from([b"\x08\x00", b"\x86\xdd"]),
    body=st.binary(max_size=100),
    port=st.sampled_from([b"\x1f\x0b", b"\x00\x00"]),
    alive=st.booleans(),
)
def test_random_ip_bodies_with_heartbeats_served_never_raise(ethertype: bytes, body: bytes, port: bytes,
                                                             alive: bool) -> None:
    # The UDP destination port of an option-less IPv4 / extension-less IPv6 datagram set to 7947 half the time.
    frame = bytearray(NODE_MAC + CLIENT_MAC + ethertype + body)
    at = 36 if ethertype == b"\x08\x00" else 56
    frame[at : at + 2] = port
    result = reflect(bytes(frame), alive)
    assert (result.reply is not None) == (result.verdict in ANSWERING)


# ---------------------------------------------------------------------------------------------------------------
# Announcements and client-side builders


def test_gratuitous_arp_pair_is_metallbs() -> None:
    request, reply = packets.gratuitous_arp(VIP4, OWNED_MAC)
    for frame, op in ((request, 1), (reply, 2)):
        assert len(frame) == 60
        assert frame[0:6] == BCAST and frame[6:12] == OWNED_MAC and frame[12:14] == b"\x08\x06"
        assert struct.unpack("!HHBBH", frame[14:22]) == (1, 0x0800, 6, 4, op)
        assert frame[22:28] == OWNED_MAC and frame[28:32] == VIP4.packed
        assert frame[32:38] == BCAST and frame[38:42] == VIP4.packed
        assert frame[42:] == bytes(18)
    assert decide(request).verdict is Verdict.GRATUITOUS
    assert decide(reply).verdict is Verdict.NOT_REQUEST


def test_unsolicited_na() -> None:
    na = packets.unsolicited_na(VIP6, OWNED_MAC)
    assert len(na) == 86
    assert na[0:6] == b"\x33\x33\x00\x00\x00\x01" and na[6:12] == OWNED_MAC
    assert struct.unpack("!IHBB", na[14:22]) == (0x60000000, 32, 58, 255)
    assert na[22:38] == VIP6.packed and na[38:54] == IPv6Address("ff02::1").packed
    assert na[54:56] == b"\x88\x00" and na[58:62] == b"\x20\x00\x00\x00"
    assert na[62:78] == VIP6.packed and na[78:86] == b"\x02\x01" + OWNED_MAC
    assert icmp6_sum_ok(na[22:38], na[38:54], na[54:86])
    assert decide(na).verdict is Verdict.NOT_REQUEST


def test_request_builders_match_hand_built_frames() -> None:
    assert packets.arp_request(CLIENT_MAC, CLIENT4, VIP4) == arp()
    built = packets.neighbor_solicitation(CLIENT_MAC, CLIENT6, VIP6)
    hand = ns()
    assert built[:56] == hand[:56] and built[58:] == hand[58:]  # hand-built one has a zero checksum
    assert icmp6_sum_ok(built[22:38], built[38:54], built[54:])
    assert decide(built).verdict is Verdict.ANSWERED


@given(src=st.binary(min_size=16, max_size=16), dst=st.binary(min_size=16, max_size=16), body=st.binary(max_size=64))
def test_checksum_agrees_with_independent_sum(src: bytes, dst: bytes, body: bytes) -> None:
    message = b"\x87\x00\x00\x00" + body
    checksum = packets.icmpv6_checksum(src, dst, message)
    filled = message[:2] + checksum.to_bytes(2, "big") + message[4:]
    assert icmp6_sum_ok(src, dst, filled)


# ---------------------------------------------------------------------------------------------------------------
# MAC text


def test_mac_round_trip_and_errors() -> None:
    assert parse_mac("02:AA:bb:cc:dd:01") == OWNED_MAC
    assert parse_mac("02-aa-bb-cc-dd-01") == OWNED_MAC
    assert format_mac(OWNED_MAC) == "02:aa:bb:cc:dd:01"
    for bad in ("", "02:aa:bb:cc:dd", "02:aa:bb:cc:dd:01:02", "02:aa-bb:cc:dd:01", "zz:aa:bb:cc:dd:01", "2:a:b:c:d:e"):
        with pytest.raises(ValueError, match="MAC address"):
            parse_mac(bad)
    with pytest.raises(ValueError, match="6 bytes"):
        format_mac(b"\x01\x02")


# ---------------------------------------------------------------------------------------------------------------
# Properties

owned_maps = st.dictionaries(
    st.one_of(
        st.builds(IPv4Address, st.integers(0, 2**32 - 1)),
        st.builds(IPv6Address, st.integers(0, 2**128 - 1)),
    ),
    st.binary(min_size=6, max_size=6),
    max_size=4,
)


@settings(max_examples=500)
@given(frame=st.binary(max_size=200), owned=owned_maps, alive=st.booleans())
def test_random_bytes_never_raise(frame: bytes, owned: dict, alive: bool) -> None:
    result = answer(frame, owned, frozenset(), alive)
    assert isinstance(result.verdict, Verdict)
    assert (result.reply is not None) == (result.verdict is Verdict.ANSWERED)


@settings(max_examples=500)
@given(
    ethertype=st.sampled_from([b"\x08\x06", b"\x86\xdd"]),
    head=st.binary(min_size=12, max_size=12),
    body=st.binary(max_size=120),
    alive=st.booleans(),
)
def test_random_arp_and_ipv6_bodies_never_raise(ethertype: bytes, head: bytes, body: bytes, alive: bool) -> None:
    result = decide(head + ethertype + body, alive=alive)
    assert (result.reply is not None) == (result.verdict is Verdict.ANSWERED)


@settings(max_examples=300)
@given(index=st.integers(0, 85), value=st.integers(0, 255), which=st.sampled_from(["arp", "ns"]))
def test_one_byte_mutations_of_valid_requests_never_raise(index: int, value: int, which: str) -> None:
    frame = bytearray(arp(pad=bytes(44)) if which == "arp" else ns())
    frame[index % len(frame)] = value
    result = decide(bytes(frame))
    assert (result.reply is not None) == (result.verdict is Verdict.ANSWERED)


# A station's address (the I/G bit clear): a group address as the source is declined (BAD_SOURCE), as is an ARP
# sender IP of 255.255.255.255.
station_macs = st.binary(min_size=6, max_size=6).map(lambda mac: bytes([mac[0] & 0xFE]) + mac[1:])


@given(
    client_mac=station_macs,
    owned_mac=st.binary(min_size=6, max_size=6),
    client=st.integers(1, 2**32 - 2),
    target=st.integers(1, 2**32 - 1),
    pad=st.integers(0, 40),
)
def test_built_arp_reply_parses_back(client_mac: bytes, owned_mac: bytes, client: int, target: int, pad: int) -> None:
    vip, sender = IPv4Address(target), IPv4Address(client)
    if vip == sender:
        return
    request = packets.arp_request(client_mac, sender, vip) + bytes(pad)
    result = answer(request, {vip: owned_mac})
    assert result.verdict is Verdict.ANSWERED and result.reply is not None
    reply = result.reply
    assert len(reply) == len(request)
    back = answer(reply, {sender: client_mac})
    assert back.verdict is Verdict.NOT_REQUEST and back.target == sender
    assert reply[22:28] == owned_mac and IPv4Address(reply[28:32]) == vip and reply[0:6] == client_mac


@given(
    client_mac=station_macs,
    owned_mac=st.binary(min_size=6, max_size=6),
    client=st.integers(1, 2**64 - 1),
    target=st.integers(1, 2**64 - 1),
)
def test_built_na_parses_back_with_valid_checksum(
    client_mac: bytes, owned_mac: bytes, client: int, target: int
) -> None:
    vip = IPv6Address(int(IPv6Address("2001:db8::")) + target)
    sender = IPv6Address(int(IPv6Address("2001:db8:1::")) + client)
    request = packets.neighbor_solicitation(client_mac, sender, vip)
    result = answer(request, {vip: owned_mac})
    assert result.verdict is Verdict.ANSWERED and result.reply is not None
    na = result.reply
    assert icmp6_sum_ok(na[22:38], na[38:54], na[54:86])
    back = answer(na, {})
    assert back.verdict is Verdict.NOT_REQUEST
    assert IPv6Address(na[62:78]) == vip and na[80:86] == owned_mac and na[0:6] == client_mac
